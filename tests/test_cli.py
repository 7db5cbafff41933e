"""End to end through the command line: generate a task, train briefly, translate, evaluate."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import seq2seq
from seq2seq.cli import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("cli")
    data = work / "data" / "reverse"
    assert (
        main(
            [
                "data",
                "task",
                "reverse",
                "--out",
                str(data),
                "--train",
                "400",
                "--dev",
                "20",
                "--test",
                "20",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    run = work / "run"
    code = main(
        [
            "train",
            str(CONFIGS / "reverse_rnn.yaml"),
            "--out",
            str(run),
            "-q",
            "--set",
            f"data.train={data}/train",
            "--set",
            f"data.dev={data}/dev",
            "--set",
            "train.max_steps=6",
            "--set",
            "train.max_minutes=null",
            "--set",
            "train.validate_every=3",
            "--set",
            "train.log_every=2",
            "--set",
            "model.encoder.hidden_size=16",
            "--set",
            "model.decoder.hidden_size=32",
        ]
    )
    assert code == 0
    return work, data, run


def test_run_directory_contents(trained):
    _, _, run = trained
    for name in (
        "best.pt",
        "last.pt",
        "config.yaml",
        "vocab.src.txt",
        "vocab.tgt.txt",
        "train.log",
        "metrics.jsonl",
    ):
        assert (run / name).is_file(), name
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e["kind"] == "valid"] == [3, 6]
    assert [e["step"] for e in events if e["kind"] == "train"] == [2, 4, 6]


def test_refuses_to_overwrite_a_run_without_restart(trained, capsys):
    _, data, run = trained
    code = main(
        [
            "train",
            str(CONFIGS / "reverse_rnn.yaml"),
            "--out",
            str(run),
            "-q",
            "--set",
            f"data.train={data}/train",
            "--set",
            f"data.dev={data}/dev",
        ]
    )
    assert code == 2
    assert "already holds a run (last.pt); pass --restart" in capsys.readouterr().err


def test_translate_file_and_python_api_agree(trained, capsys):
    work, data, run = trained
    out = work / "hyp.txt"
    assert (
        main(
            [
                "translate",
                str(run / "last.pt"),
                "--input",
                f"{data}/test.src",
                "--output",
                str(out),
                "--beam-size",
                "3",
                "--batch-size",
                "7",
            ]
        )
        == 0
    )
    lines = out.read_text().splitlines()
    sources = (data / "test.src").read_text().splitlines()
    assert len(lines) == len(sources) == 20
    api = seq2seq.load(run / "last.pt").translate(sources, beam_size=3, batch_size=5)
    assert api == lines  # order restored, batch size changes nothing


def test_translate_stdin_to_stdout_via_console_script(trained):
    _, _, run = trained
    proc = subprocess.run(
        [sys.executable, "-m", "seq2seq", "translate", str(run), "--beam-size", "1"],
        input="abc\n\nxyz\n",
        capture_output=True,
        text=True,
        check=True,
    )
    assert len(proc.stdout.splitlines()) == 3  # an empty line still gets an output line


def test_evaluate_json(trained, capsys):
    _, data, run = trained
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                str(run),
                "--src",
                f"{data}/test.src",
                "--ref",
                f"{data}/test.tgt",
                "--json",
                "--beam-size",
                "2",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"bleu", "chrf", "exact_match", "bleu_signature", "sentences"}
    assert result["sentences"] == 20
    assert result["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")


def test_missing_checkpoint_error(tmp_path, capsys):
    assert main(["translate", str(tmp_path / "nothing")]) == 2
    assert "no such checkpoint file or run directory" in capsys.readouterr().err


def test_every_subcommand_has_help():
    for cmd in (["train"], ["translate"], ["evaluate"], ["data", "task"], ["quickstart"], []):
        proc = subprocess.run(
            [sys.executable, "-m", "seq2seq", *cmd, "--help"], capture_output=True, text=True
        )
        assert proc.returncode == 0 and "usage: seq2seq" in proc.stdout
