"""The run directory between runs: what may be resumed, what a restart clears."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ..config import Config, from_dict, to_dict

log = logging.getLogger(__name__)


class RunDirError(ValueError):
    """The run directory cannot be used as asked (e.g. a resume with a different model)."""


def check_resumable(run_dir: Path, ckpt: dict[str, Any], cfg: Config) -> None:
    """A resume may change how long to train, not what is trained: the ``data`` and ``model``
    sections must equal the checkpoint's."""
    old = from_dict(ckpt["config"], source=f"{run_dir / 'last.pt'} (stored config)")
    for section in ("data", "model"):
        a, b = to_dict(getattr(old, section)), to_dict(getattr(cfg, section))
        if a != b:
            key = next(k for k in a if a[k] != b.get(k))
            raise RunDirError(
                f"{run_dir}: cannot resume: {section}.{key} differs from the run's checkpoint "
                f"({a[key]!r} there, {b[key]!r} now); pass --restart to start over or choose "
                "another --out"
            )
    log.info("resuming %s from step %d", run_dir, ckpt["train_state"]["progress"]["step"])


def clean(run_dir: Path) -> None:
    """Removes an earlier run's checkpoints and records (a fresh start in the same directory)."""
    for p in [
        *run_dir.glob("ckpt-*.pt"),
        *run_dir.glob("best-*.pt"),
        run_dir / "best.pt",
        run_dir / "last.pt",
        run_dir / "metrics.jsonl",
    ]:
        p.unlink(missing_ok=True)


def trim_metrics(path: Path, step: int) -> None:
    """Keeps the records up to ``step`` (the resumed one), so the curve has no doubled stretch."""
    lines = path.read_text().splitlines() if path.exists() else []
    kept = [line for line in lines if json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept))
