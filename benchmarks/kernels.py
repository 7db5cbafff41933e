"""Two CPU kernels the training and decoding steps lean on, each against the plain PyTorch call:

- dropout: ``seq2seq.nn.dropout.dropout`` (16 random bits per element from 64-bit draws) against
  ``torch.nn.functional.dropout`` (one Bernoulli draw per element), forward alone and forward +
  backward, on a residual-sized and a feed-forward-sized activation of the reference Transformer;
- vocabulary projection: ``seq2seq.nn.projection.project`` (1,024-column slices) against one
  ``F.linear`` with the whole vocabulary as output, for training chunks (269 and 538 rows, what
  ``train/loss.py`` uses for 7,795 types) and decoding batches (32 and 160 rows: batch 32 greedy
  and beam 5).

Prints one Markdown table (milliseconds per call, best of --repeat rounds of --calls calls, and
GFLOP/s for the projections). Run from the repository root:

    python benchmarks/kernels.py --threads 2
    python benchmarks/kernels.py --threads 1
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
import torch.nn.functional as F

from seq2seq.nn.dropout import dropout
from seq2seq.nn.projection import project
from seq2seq.runtime import tune_malloc


def best_ms(fn, calls: int, repeat: int) -> float:  # noqa: ANN001
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e3


def dropout_rows(args: argparse.Namespace) -> list[dict]:
    rows = []
    for name, shape in [
        ("residual 4096x256", (4096, 256)),
        ("feed-forward 4096x1024", (4096, 1024)),
    ]:
        x = torch.randn(*shape, requires_grad=True)
        g = torch.randn(*shape)
        for impl, fn in [("F.dropout", F.dropout), ("seq2seq dropout", dropout)]:

            def forward(fn=fn, x=x) -> None:  # noqa: ANN001
                with torch.no_grad():
                    fn(x, 0.1, True)

            def both(fn=fn, x=x, g=g) -> None:  # noqa: ANN001
                fn(x, 0.1, True).backward(g)

            rows.append(
                {
                    "kernel": f"dropout p=0.1, {name}",
                    "implementation": impl,
                    "forward ms": best_ms(forward, args.calls, args.repeat),
                    "forward+backward ms": best_ms(both, args.calls, args.repeat),
                }
            )
    return rows


def projection_rows(args: argparse.Namespace) -> list[dict]:
    vocab, hidden = 7795, 256
    w, b = torch.randn(vocab, hidden) * 0.05, torch.randn(vocab) * 0.1
    rows = []
    for n in args.rows:
        h = torch.randn(n, hidden)
        gflop = 2 * n * hidden * vocab / 1e9
        for impl, fn in [
            ("F.linear", lambda h=h: F.linear(h, w, b)),
            ("seq2seq project", lambda h=h: project(h, w, b)),
        ]:
            with torch.no_grad():
                ms = best_ms(fn, args.calls, args.repeat)
            rows.append(
                {
                    "kernel": f"projection {n} x {hidden} -> {vocab}",
                    "implementation": impl,
                    "forward ms": ms,
                    "GFLOP/s": gflop / ms * 1e3,
                }
            )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rows", type=int, nargs="+", default=[32, 160, 269, 538])
    p.add_argument("--calls", type=int, default=10)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    tune_malloc()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = dropout_rows(args) + projection_rows(args)
    cols = ["kernel", "implementation", "forward ms", "forward+backward ms", "GFLOP/s"]
    print(
        f"# {platform.machine()}, {torch.backends.cpu.get_cpu_capability()}, torch "
        f"{torch.__version__}, {args.threads} thread(s), best of {args.repeat} x {args.calls} calls"
    )
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        cells = [r.get(c, "") for c in cols]
        print(
            "| " + " | ".join(f"{c:.1f}" if isinstance(c, float) else str(c) for c in cells) + " |"
        )


if __name__ == "__main__":
    main()
