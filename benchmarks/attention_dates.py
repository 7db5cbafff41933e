"""Trains the built-in `dates` task once per attention kind and prints a table.

Every run is `configs/dates_rnn.yaml` with `--set model.decoder.attention.kind=KIND` (plus any
`--set` given here), trained through the command line exactly as a user would, one after another.
The test exact match is `seq2seq evaluate` of best.pt on the 1,000 test dates (beam size 5).

    python benchmarks/attention_dates.py                      # all 8 kinds, ~1-2 min each
    python benchmarks/attention_dates.py --kinds local_m local_p --set train.max_steps=300
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
KINDS = [
    "bahdanau",
    "luong_dot",
    "luong_general",
    "luong_concat",
    "scaled_dot",
    "multihead",
    "local_m",
    "local_p",
]


def seq2seq(*args: str, cwd: Path) -> str | None:
    """stdout of a successful run, else None (the failure is reported on stderr)."""
    proc = subprocess.run(
        [sys.executable, "-m", "seq2seq", *args], cwd=cwd, capture_output=True, text=True
    )
    if proc.returncode != 0:
        print(
            f"seq2seq {' '.join(args)} failed (exit status {proc.returncode}):\n"
            f"{proc.stderr[-3000:]}",
            file=sys.stderr,
            flush=True,
        )
        return None
    return proc.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--kinds", nargs="+", default=KINDS, choices=KINDS)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--work", help="working directory (default: a temporary one)")
    args = p.parse_args()

    work = Path(args.work or tempfile.mkdtemp(prefix="attention_dates_"))
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "data/dates/test.src").exists():
        if seq2seq("data", "task", "dates", "--out", "data/dates", cwd=work) is None:
            raise SystemExit(1)
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}; overrides {args.set}; work dir {work}",
        flush=True,
    )
    print("| kind | steps (best at) | minutes | dev exact match | test exact match |")
    print("|---|---|---|---|---|", flush=True)
    for kind in args.kinds:
        run = f"runs/{kind}"
        overrides = [f"model.decoder.attention.kind={kind}", *args.set]
        start = time.monotonic()
        out = seq2seq(
            "train",
            str(REPO / "configs/dates_rnn.yaml"),
            "--out",
            run,
            "--restart",
            "-q",
            *(x for o in overrides for x in ("--set", o)),
            cwd=work,
        )
        minutes = (time.monotonic() - start) / 60
        if out is None:
            print(f"| {kind} | failed | {minutes:.2f} | | |", flush=True)
            continue
        best = re.search(r"best dev exact_match ([\d.]+) at step (\d+)", out)
        events = [json.loads(x) for x in (work / run / "metrics.jsonl").read_text().splitlines()]
        steps = max(e["step"] for e in events)
        test = json.loads(
            seq2seq(  # type: ignore[arg-type]
                "evaluate",
                run,
                "--src",
                "data/dates/test.src",
                "--ref",
                "data/dates/test.tgt",
                "--json",
                cwd=work,
            )
        )
        print(
            f"| {kind} | {steps} ({best.group(2)}) | {minutes:.2f} | {float(best.group(1)):.3f} "
            f"| {test['exact_match']:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
