import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from seq2seq.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
)


def payload(value: float, size: int = 10):
    return {"schema_version": 1, "weights": torch.full((size,), value)}


def test_round_trip(tmp_path):
    save_checkpoint(payload(1.0), tmp_path / "c.pt")
    assert load_checkpoint(tmp_path / "c.pt")["weights"][0] == 1.0


def test_failure_while_writing_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(payload(1.0), path)

    def torn(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", torn)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(payload(2.0), path)
    monkeypatch.undo()
    assert load_checkpoint(path)["weights"][0] == 1.0
    assert os.listdir(tmp_path) == ["last.pt"]  # no temporary file left behind


def test_sigkill_during_writes_never_leaves_a_corrupt_checkpoint(tmp_path):
    """A writer overwrites the same checkpoint in a loop and is killed at random moments."""
    path = tmp_path / "last.pt"
    script = textwrap.dedent(f"""
        import torch
        from seq2seq.train.checkpoint import save_checkpoint
        i = 0
        while True:
            i += 1
            save_checkpoint({{"schema_version": 1, "w": torch.full((2_000_000,), float(i))}},
                            {str(path)!r})
            print(i, flush=True)
    """)
    for delay in (0.6, 0.9, 1.3):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
        assert proc.stdout.readline()  # at least one checkpoint is complete
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        ckpt = load_checkpoint(path)  # never raises: old or new, never torn
        assert torch.all(ckpt["w"] == ckpt["w"][0])


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"schema_version": 1, "x": Evil()}, path)
    with pytest.raises(CheckpointError, match=r"evil.pt: refused to load: the file holds pickled"):
        load_checkpoint(path)


def test_truncated_and_foreign_files(tmp_path):
    good = tmp_path / "good.pt"
    save_checkpoint(payload(1.0, 1000), good)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:500])
    with pytest.raises(CheckpointError, match=r"cut.pt: unreadable checkpoint"):
        load_checkpoint(cut)
    other = tmp_path / "other.pt"
    torch.save({"a": 1}, other)
    with pytest.raises(CheckpointError, match="not a seq2seq checkpoint"):
        load_checkpoint(other)
    with open(tmp_path / "p.pt", "wb") as f:
        pickle.dump([1], f)
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "p.pt")


def test_resolve_run_directory(tmp_path):
    with pytest.raises(CheckpointError, match="has no best.pt or last.pt"):
        resolve_checkpoint(tmp_path)
    save_checkpoint(payload(1.0), tmp_path / "last.pt")
    assert resolve_checkpoint(tmp_path) == tmp_path / "last.pt"
    save_checkpoint(payload(1.0), tmp_path / "best.pt")
    assert resolve_checkpoint(tmp_path) == tmp_path / "best.pt"
