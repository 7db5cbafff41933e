"""Exact resume: a run killed (SIGKILL) or stopped (SIGTERM) and resumed ends with the same
parameters and loss curve as a run that never stopped (CPU, same thread count: bitwise)."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from seq2seq.cli import main
from seq2seq.train.checkpoint import load_checkpoint

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "reverse"
    assert (
        main(
            [
                "data",
                "task",
                "reverse",
                "--out",
                str(out),
                "--train",
                "600",
                "--dev",
                "10",
                "--test",
                "10",
                "--seed",
                "5",
            ]
        )
        == 0
    )
    return out


def train_args(data: Path, out: Path, steps: int = 40) -> list[str]:
    return [
        "train",
        str(CONFIGS / "reverse_rnn.yaml"),
        "--out",
        str(out),
        "-q",
        "--set",
        f"data.train={data}/train",
        "--set",
        f"data.dev={data}/dev",
        "--set",
        f"train.max_steps={steps}",
        "--set",
        "train.max_minutes=null",
        "--set",
        "train.validate_every=20",
        "--set",
        "train.checkpoint_every=5",
        "--set",
        "train.log_every=5",
        "--set",
        "train.threads=1",
        "--set",
        "train.batch_tokens=400",
        "--set",
        "model.encoder.hidden_size=32",
        "--set",
        "model.decoder.hidden_size=48",
        "--set",
        "model.encoder.dropout=0.3",
        "--set",
        "model.decoder.dropout=0.3",
    ]


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "seq2seq", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_step(run: Path, step: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (run / f"ckpt-{step}.pt").exists():
            return
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint at step {step} within {timeout} s")


def train_losses(run: Path) -> list[tuple[int, float]]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [(e["step"], e["loss"]) for e in map(json.loads, lines) if e["kind"] == "train"]


def assert_same_run(a: Path, b: Path) -> None:
    ca, cb = load_checkpoint(a / "last.pt"), load_checkpoint(b / "last.pt")
    assert ca["step"] == cb["step"] == 40
    for k in ca["model"]:
        assert torch.equal(ca["model"][k], cb["model"][k]), k
    for sa, sb in zip(
        ca["train_state"]["optimizer"]["state"].values(),
        cb["train_state"]["optimizer"]["state"].values(),
    ):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"])
    assert train_losses(a) == train_losses(b)
    assert len(train_losses(a)) == 8


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    run = tmp_path_factory.mktemp("straight") / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "seq2seq", *train_args(data, run)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return run


def test_sigkill_then_resume_equals_uninterrupted(data, uninterrupted, tmp_path):
    run = tmp_path / "killed"
    proc = start(train_args(data, run))
    wait_for_step(run, 15, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert load_checkpoint(run / "last.pt")["step"] >= 15  # readable despite the kill
    again = subprocess.run(
        [sys.executable, "-m", "seq2seq", *train_args(data, run)], capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr
    assert "resuming" in again.stderr
    assert_same_run(uninterrupted, run)


def test_sigterm_saves_then_resume_equals_uninterrupted(data, uninterrupted, tmp_path):
    run = tmp_path / "stopped"
    proc = start(train_args(data, run))
    wait_for_step(run, 10, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate()
    assert proc.returncode == 130, err
    assert "checkpoint saved" in err and "run the same command to resume" in err
    stopped_at = load_checkpoint(run / "last.pt")["step"]
    assert 10 <= stopped_at < 40
    assert main(train_args(data, run)) == 0
    assert_same_run(uninterrupted, run)


def test_resume_refuses_a_changed_model(data, uninterrupted, tmp_path, capsys):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(uninterrupted, run)
    args = [*train_args(data, run, steps=50), "--set", "model.decoder.hidden_size=64"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "cannot resume: model.decoder differs from the run's checkpoint" in err
    assert "--restart" in err


def test_resume_can_extend_training(data, uninterrupted, tmp_path):
    import shutil

    run = tmp_path / "longer"
    shutil.copytree(uninterrupted, run)
    assert main(train_args(data, run, steps=45)) == 0
    assert load_checkpoint(run / "last.pt")["step"] == 45


def test_average_last_checkpoints(uninterrupted, tmp_path):
    out = tmp_path / "avg.pt"
    assert main(["average", str(uninterrupted), "--last", "2", "--out", str(out)]) == 0
    a = load_checkpoint(uninterrupted / "ckpt-35.pt")["model"]
    b = load_checkpoint(uninterrupted / "ckpt-40.pt")["model"]
    avg = load_checkpoint(out)["model"]
    for k in avg:
        torch.testing.assert_close(avg[k], (a[k] + b[k]) / 2)
    kept = sorted(p.name for p in uninterrupted.glob("ckpt-*.pt"))
    assert kept == ["ckpt-30.pt", "ckpt-35.pt", "ckpt-40.pt"]  # train.keep_last: 3


def test_average_chooses_the_count_with_the_best_dev_score(
    data, uninterrupted, tmp_path, capsys, monkeypatch
):
    dev = [str(data / "dev.src"), str(data / "dev.tgt")]
    counts = [1, 2, 3]
    expected = {}  # each average on its own, scored by `evaluate` (beam 5, as `average --dev`)
    for n in counts:
        single = tmp_path / f"avg{n}.pt"
        assert main(["average", str(uninterrupted), "--last", str(n), "--out", str(single)]) == 0
        capsys.readouterr()
        assert main(["evaluate", str(single), "--src", dev[0], "--ref", dev[1], "--json"]) == 0
        expected[n] = json.loads(capsys.readouterr().out)
    for metric, pick in (("chrf", max), ("cer", min)):
        out = tmp_path / f"chosen-{metric}.pt"
        args = ["average", str(uninterrupted), "--last", *map(str, counts), "--out", str(out)]
        assert main([*args, "--dev", *dev, "--metric", metric]) == 0
        best = pick(counts, key=lambda n: expected[n][metric])  # the first of equals
        chosen = load_checkpoint(out)
        assert chosen["average_choice"]["chosen"] == best
        assert chosen["average_choice"]["scores"] == pytest.approx(
            {str(n): expected[n][metric] for n in counts}
        )
        reference = load_checkpoint(tmp_path / f"avg{best}.pt")["model"]
        for k in reference:
            torch.testing.assert_close(chosen["model"][k], reference[k])
        assert f"best dev {metric} of 3 choices" in capsys.readouterr().out
    assert not list(tmp_path.glob(".average-*"))  # the candidates are removed
    # a middle count wins when its score is best (here the scores are set, by candidate size)
    set_scores = {1: 30.0, 2: 36.0, 3: 33.0}

    def fake(checkpoint, *_):
        return set_scores[len(load_checkpoint(checkpoint)["averaged"])]

    monkeypatch.setattr("seq2seq.cli_decode.dev_score", fake)
    out = tmp_path / "middle.pt"
    args = ["average", str(uninterrupted), "--last", "1", "2", "3", "--out", str(out)]
    assert main([*args, "--dev", *dev]) == 0
    assert load_checkpoint(out)["average_choice"]["chosen"] == 2
    assert load_checkpoint(out)["averaged"] == [
        str(uninterrupted / f"ckpt-{s}.pt") for s in (35, 40)
    ]
    assert main(["average", str(uninterrupted), "--last", "1", "2", "--out", str(out)]) == 2
    assert "--last 1 2: several counts need --dev SRC REF to choose among them" in (
        capsys.readouterr().err
    )
    assert main(["average", str(uninterrupted), "--last", "0", "--out", str(out)]) == 2
    assert "--last: expected counts >= 1, got 0" in capsys.readouterr().err
