"""Matrix-product rates of this CPU in float32, bf16 and fp16, on the shapes a training step of the
reference models multiplies, and the ratio that ``train.precision: auto`` decides by
(``seq2seq.runtime.bf16_speedup``: bf16 is taken where it is at least
``seq2seq.runtime.BF16_MIN_SPEEDUP``).

Whether bf16 autocast speeds training up is a property of the CPU, not only of its flags: a Zen 4
EPYC with AVX-512 BF16 runs bf16 products about twice as fast as float32, while an Intel Xeon
with the same flag and its AMX hidden by the hypervisor runs them at about half the speed
(docs/benchmarks.md). Prints one Markdown table (GFLOP/s, best of --repeat calls after two
warm-up calls). Run from the repository root:

    python benchmarks/matmul_precision.py --threads 2
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from seq2seq.runtime import BF16_MIN_SPEEDUP, bf16_speedup

# (rows, inner, columns): a batch of ~4k target tokens through the reference Transformer's
# feed-forward layers (both ways), its attention projections, the output layer; then square ones
SHAPES = [
    (4096, 256, 1024),
    (4096, 1024, 256),
    (4096, 256, 256),
    (4096, 256, 7795),
    (1024, 1024, 1024),
    (2048, 2048, 2048),
]
DTYPES = {"float32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def rate(m: int, k: int, n: int, dtype: torch.dtype, repeat: int) -> float:
    """GFLOP/s of (m x k) @ (k x n) in ``dtype``, best of ``repeat`` calls after two warm-ups."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=gen).to(dtype)
    b = torch.randn(k, n, generator=gen).to(dtype)
    best = float("inf")
    for i in range(repeat + 2):
        start = time.perf_counter()
        torch.mm(a, b)
        if i >= 2:
            best = min(best, time.perf_counter() - start)
    return 2 * m * k * n / best / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} threads, capability {torch.backends.cpu.get_cpu_capability()}\n"
    )
    print("| m x k x n | " + " | ".join(f"{d} GFLOP/s" for d in DTYPES) + " | bf16 / float32 |")
    print("|---|" + "---:|" * (len(DTYPES) + 1))
    for shape in SHAPES:
        rates = {name: rate(*shape, dtype, args.repeat) for name, dtype in DTYPES.items()}
        cells = " | ".join(f"{rates[d]:,.0f}" for d in DTYPES)
        ratio = rates["bf16"] / rates["float32"]
        print(f"| {' x '.join(map(str, shape))} | {cells} | {ratio:.2f}x |")
    speedup = bf16_speedup(args.threads)
    verdict = "bf16" if speedup >= BF16_MIN_SPEEDUP else "float32"
    print(
        f"\nbf16_speedup({args.threads}) = {speedup:.2f} (threshold {BF16_MIN_SPEEDUP}): "
        f"train.precision auto takes {verdict} on this CPU if it has native bf16"
    )


if __name__ == "__main__":
    main()
