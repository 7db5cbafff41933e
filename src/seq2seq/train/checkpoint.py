"""Checkpoints: written atomically, read without unpickling arbitrary objects.

A checkpoint is a dict of tensors and plain data (config, vocabularies, tokenizer models as bytes),
so ``torch.load(weights_only=True)`` reads it and a checkpoint alone is enough to translate.
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..config import SCHEMA_VERSION


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, unsafe or of an unknown schema; names the path."""


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> None:
    """Writes to a temporary file in the same directory, syncs it, then renames it over ``path``:
    a crash at any moment leaves either the old checkpoint or the new one, never a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused to load: the file holds pickled objects other than tensors and plain "
            f"data, which could run code ({str(e).splitlines()[0]})"
        ) from None
    except (RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(
            f"{path}: unreadable checkpoint (truncated or corrupt: {e})"
        ) from None
    if not isinstance(ckpt, dict) or "schema_version" not in ckpt:
        raise CheckpointError(f"{path}: not a seq2seq checkpoint (no schema_version)")
    if ckpt["schema_version"] > SCHEMA_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint schema {ckpt['schema_version']} is newer than this version of "
            f"seq2seq understands ({SCHEMA_VERSION}); upgrade seq2seq"
        )
    return ckpt


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run directory (its best.pt, else last.pt)."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path}: run directory has no best.pt or last.pt")
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file or run directory")
    return path


def rng_state() -> dict[str, Any]:
    """Every random number generator training uses: Python's, torch's CPU one and CUDA's."""
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def numbered(run_dir: Path, prefix: str) -> list[tuple[int, Path]]:
    """(step, path) of ``PREFIX-STEP.pt`` files in a run directory, oldest first."""
    out = []
    for p in run_dir.glob(f"{prefix}-*.pt"):
        tail = p.stem[len(prefix) + 1 :]
        if tail.isdigit():
            out.append((int(tail), p))
    return sorted(out)


def average_checkpoints(paths: list[Path]) -> dict[str, Any]:
    """A checkpoint whose floating-point parameters are the mean of ``paths``' (same model);
    everything else (config, vocabularies, tokenizers) comes from the last one."""
    if not paths:
        raise CheckpointError("no checkpoints to average")
    ckpts = [load_checkpoint(p) for p in paths]
    keys = ckpts[-1]["model"].keys()
    for p, c in zip(paths, ckpts):
        if c["model"].keys() != keys or c["vocabs"] != ckpts[-1]["vocabs"]:
            raise CheckpointError(f"{p}: not the same model as {paths[-1]}; cannot average")
    out = {k: v for k, v in ckpts[-1].items() if k != "train_state"}
    model = {}
    for k in keys:
        tensors = [c["model"][k] for c in ckpts]
        if tensors[0].is_floating_point():
            model[k] = torch.stack([t.double() for t in tensors]).mean(0).to(tensors[0].dtype)
        else:
            model[k] = tensors[-1]
    out["model"] = model
    out["averaged"] = [str(p) for p in paths]
    return out
