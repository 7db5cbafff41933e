"""One linear layer, the shapes of a beam-5 decoder step (160 rows = 32 sentences x 5 beams):
float32 eager and compiled, ``quantize_dynamic``'s int8 (fbgemm) and ``seq2seq.quantize``'s
``Int8Linear`` eager and compiled with each of its three product kernels (``torch._int_mm``,
oneDNN's int8 linear on prepacked weights, fbgemm as a custom operator), in GFLOP/s (GOP/s for
int8) on --threads threads. Prints the CPU capability torch detected and whether the CPU has AMX
(``torch._int_mm`` is fast only with AVX-512, the ``onednn`` kernel only with AMX). Run from the
repository root:

    python benchmarks/int8_linear.py --threads 1
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
from torch import Tensor, nn

from seq2seq.quantize import Int8Linear
from seq2seq.runtime import cpu_has


def per_call(fn, x: Tensor, seconds: float) -> float:  # noqa: ANN001
    for _ in range(3):
        fn(x)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn(x)
        n += 1
    return (time.perf_counter() - start) / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rows", type=int, default=160)
    p.add_argument("--seconds", type=float, default=1.0, help="timing per cell")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import torch._dynamo.config as dynamo_config
    import torch._inductor.config as inductor_config

    dynamo_config.recompile_limit = 64  # one compiled Int8Linear.forward per kernel and shape

    shapes = [(256, 256), (256, 1024), (1024, 256), (256, 7795)]
    kinds = ["float32", "float32 compiled", "quantize_dynamic int8", "Int8Linear eager (int_mm)"]
    kinds += [f"Int8Linear compiled ({k})" for k in ("int_mm", "onednn", "fbgemm")]
    print(
        f"# {args.rows} rows, {args.threads} thread(s), torch {torch.__version__}, "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"AMX {'yes' if cpu_has('amx_tile') else 'no'}"
    )
    print("| in x out | " + " | ".join(kinds) + " |")
    print("|---|" + "---:|" * len(kinds))
    with torch.inference_mode(), inductor_config.patch(freezing=True), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k, n in shapes:
            torch.manual_seed(0)
            linear = nn.Linear(k, n).eval()
            x = torch.randn(args.rows, k)
            fns = {
                "float32": linear,
                "float32 compiled": torch.compile(linear, dynamic=True),
                "quantize_dynamic int8": torch.ao.quantization.quantize_dynamic(
                    nn.Sequential(linear), {nn.Linear}, dtype=torch.qint8
                ),
                "Int8Linear eager (int_mm)": Int8Linear(linear, "int_mm"),
                **{
                    f"Int8Linear compiled ({k})": torch.compile(Int8Linear(linear, k), dynamic=True)
                    for k in ("int_mm", "onednn", "fbgemm")
                },
            }
            flops = 2 * args.rows * k * n
            cells = [f"{flops / per_call(fns[kind], x, args.seconds) / 1e9:.1f}" for kind in kinds]
            print(f"| {k} x {n} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
