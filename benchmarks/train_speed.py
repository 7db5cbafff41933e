"""Training throughput on a real corpus: real (non-pad) target tokens/s, s/step and peak RSS.

Builds the run of CONFIG exactly as ``seq2seq train`` does (tokenizer training, vocabularies,
length-bucketed token batches), then times ``--steps`` optimizer updates after ``--warmup`` untimed
ones. Each precision runs in a fresh subprocess so that peak RSS is its own. Run from the
repository root, e.g. the two reference shapes of ../shared/bench/anchors:

    python benchmarks/train_speed.py --threads 2 --json runs/bench/train_speed.json \\
        configs/multi30k_en_de_rnn.yaml configs/multi30k_en_de_transformer.yaml

The anchors measure with label smoothing 0 and a constant learning rate; ``--set`` defaults to
the same (``train.label_smoothing=0.0 train.schedule.kind=constant``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence

ANCHOR_SETTINGS = ["train.label_smoothing=0.0", "train.schedule={kind: constant}"]


@contextlib.contextmanager
def anchor_trainer(
    config: str, precision: str, threads: int, data_root: str | None, extra: Sequence[str] = ()
) -> Iterator[tuple]:
    """The run of ``config`` as ``seq2seq train`` builds it (tokenizers, vocabularies, model), with
    the anchors' settings, ``precision`` and ``threads`` (and ``extra`` overrides), in a temporary
    folder: yields (trainer, its training data, that data's length-bucketed token batches), the
    model in training mode and the seed set."""
    import torch

    from seq2seq.config import load
    from seq2seq.data.batching import bucket_batches
    from seq2seq.runtime import tune_malloc
    from seq2seq.train.trainer import Trainer

    overrides = [*ANCHOR_SETTINGS, f"train.precision={precision}", f"train.threads={threads}"]
    if data_root:
        overrides += [f"data.train={data_root}/train", f"data.dev={data_root}/val"]
    tune_malloc()  # as the seq2seq command does (SEQ2SEQ_DEFAULT_MALLOC=1: glibc's defaults)
    cfg = load(config, [*overrides, *extra])
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(cfg, out, restart=True, show_progress=False)
        torch.manual_seed(cfg.train.seed)
        data = trainer.data.train.data
        batches = bucket_batches(
            data.lengths(),
            batch_tokens=cfg.train.batch_tokens,
            batch_size=cfg.train.batch_size,
            seed=cfg.train.seed,
        )
        trainer.model.train()
        yield trainer, data, batches


def measure(config: str, precision: str, args: argparse.Namespace) -> dict:
    """Runs in the child process: one config, one precision."""
    with anchor_trainer(config, precision, args.threads, args.data_root, args.set) as run:
        trainer, data, batches = run
        n_params = sum(p.numel() for p in trainer.model.parameters())
        for i in range(args.warmup):
            trainer.update([data.batch(batches[i])])
        tokens, padded, start = 0, 0, time.perf_counter()
        for i in range(args.warmup, args.warmup + args.steps):
            b = data.batch(batches[i % len(batches)])
            _, n = trainer.update([b])
            tokens += n
            padded += b.size * max(b.src.size(1), b.tgt_in.size(1))
        seconds = time.perf_counter() - start
    return {
        "toolkit": "seq2seq",
        "config": config,
        "precision": precision,
        "threads": args.threads,
        "parameters": n_params,
        "steps": args.steps,
        "tgt_tok_per_s": round(tokens / seconds, 1),
        "s_per_step": round(seconds / args.steps, 3),
        "batch_tokens_padded": round(padded / args.steps),
        "tgt_tokens_per_step": round(tokens / args.steps),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+")
    parser.add_argument("--precision", nargs="+", default=["float32", "bf16"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--data-root", default=None, help="multi30k folder (default: the config's)")
    parser.add_argument("--set", action="append", default=[], help="extra config overrides")
    parser.add_argument("--json", default=None, help="write the rows here as JSON")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], args.child[1], args)))
        return
    rows = []
    for config in args.configs:
        for precision in args.precision:
            cmd = [sys.executable, __file__, config, "--child", config, precision]
            cmd += ["--threads", str(args.threads), "--steps", str(args.steps)]
            cmd += ["--warmup", str(args.warmup)]
            cmd += [f"--set={s}" for s in args.set]
            if args.data_root:
                cmd += ["--data-root", args.data_root]
            out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr)
    header = [
        "config",
        "precision",
        "tgt_tok_per_s",
        "s_per_step",
        "tgt_tokens_per_step",
        "batch_tokens_padded",
        "peak_rss_gib",
        "parameters",
    ]
    print(
        f"# {platform.processor() or platform.machine()}, {args.threads} threads, "
        f"{args.steps} timed steps after {args.warmup}"
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(str(r[h]) for h in header) + " |")
    if args.json:
        from pathlib import Path

        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
