"""What ``--compile`` costs before decoding runs at its compiled speed, and what it gains: the
graphs that torch.compile builds for a model's beam search and the time they take, on a cold and
a warm inductor cache, beside the same model decoding eagerly.

Each precision (``--quantize``) runs in three fresh processes: one eager (``compile=False``),
then two that share a new, empty ``TORCHINDUCTOR_CACHE_DIR``: the first compiles everything (a
fresh machine, or a first ``seq2seq translate --compile``), the second finds inductor's generated
code on disk (a later command on the same machine). In each, the model is loaded and the file is
translated twice: compiled, the first pass includes every compilation its batch shapes trigger
and the second runs only compiled code. The table gives the graphs dynamo built (all compiled
functions together), the seconds spent compiling them (dynamo's ``_compile.compile_inner``
timer, one entry per graph), both passes, whether the two passes wrote the same translations and
whether the second wrote the eager run's, and (with ``--ref``) the second pass's sacreBLEU. Run
from the repository root:

    python benchmarks/compile_time.py runs/bench/transformer_285s_float32/last.pt \\
        ../shared/data/multi30k/test_2016_flickr.en --quantize none int8 --threads 2 \\
        --ref ../shared/data/multi30k/test_2016_flickr.de

Decoding follows the harness (beam 5, batch 32, at most 100 output tokens, early stop).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time


def child(args: argparse.Namespace) -> None:
    """One process: load, translate twice, print one JSON line."""
    import torch
    from torch._dynamo.utils import compilation_time_metrics

    import seq2seq
    from seq2seq.data.corpus import read_lines
    from seq2seq.metrics import bleu
    from seq2seq.search_options import SearchOptions

    torch.set_num_threads(args.threads)
    lines = read_lines(args.src)[: args.limit or None]
    options = SearchOptions(
        beam_size=args.beam_size, max_len=100, max_len_ratio=1e9, early_stop=True
    )
    start = time.perf_counter()
    quantize = None if args.quantize[0] == "none" else args.quantize[0]
    translator = seq2seq.load(args.model, quantize_to=quantize, compile=not args.eager)
    loaded = time.perf_counter()
    outputs, passes = [], []
    for _ in range(2):
        t = time.perf_counter()
        outputs.append(translator.translate(lines, batch_size=args.batch_size, options=options))
        passes.append(time.perf_counter() - t)
    seconds = compilation_time_metrics.get("_compile.compile_inner", [])  # one per graph
    print(
        json.dumps(
            {
                "load_s": loaded - start,
                "graphs": len(seconds),
                "compile_s": float(sum(seconds)),
                "per_graph_s": [round(s, 1) for s in seconds],
                "first_pass_s": passes[0],
                "second_pass_s": passes[1],
                "same": outputs[0] == outputs[1],
                "sha256": hashlib.sha256("\n".join(outputs[1]).encode()).hexdigest(),
                "sentences": len(lines),
                "bleu": bleu(outputs[1], read_lines(args.ref)[: len(lines)])[0]
                if args.ref
                else None,
            }
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="run directory or checkpoint")
    p.add_argument("src", help="source text, one sentence per line")
    p.add_argument("--quantize", nargs="+", default=["none"], choices=["none", "int8"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--limit", type=int, default=0, help="first N lines only (0: all)")
    p.add_argument("--ref", help="reference translations: score the second pass (sacreBLEU)")
    p.add_argument("--json", help="write the rows here")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--eager", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    print(
        f"{platform.processor() or platform.machine()}, {args.threads} threads, "
        f"{args.model}, beam {args.beam_size}, batch {args.batch_size}\n"
    )
    print(
        "| precision | run | graphs | compiling (s) | first pass (s) | second pass (s) | "
        "passes agree | = eager output | BLEU |"
    )
    print("|---|---|---:|---:|---:|---:|---|---|---:|")
    rows = []
    for quantize in args.quantize:
        with tempfile.TemporaryDirectory(prefix="inductor-") as cache:
            eager_sha = None
            for cache_state in ("eager", "cold", "warm"):
                cmd = [sys.executable, __file__, "--child", args.model, args.src]
                cmd += ["--eager"] if cache_state == "eager" else []
                cmd += ["--quantize", quantize, "--threads", str(args.threads)]
                cmd += ["--beam-size", str(args.beam_size), "--batch-size", str(args.batch_size)]
                cmd += ["--limit", str(args.limit)] + (["--ref", args.ref] if args.ref else [])
                env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache)
                done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
                if done.returncode:
                    sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
                row = json.loads(done.stdout.strip().splitlines()[-1])
                row.update(
                    precision="float32" if quantize == "none" else quantize, cache=cache_state
                )
                rows.append(row)
                eager_sha = eager_sha or row["sha256"]
                run = "eager" if cache_state == "eager" else f"compiled, {cache_state} cache"
                print(
                    f"| {row['precision']} | {run} | {row['graphs']} | "
                    f"{row['compile_s']:.1f} | {row['first_pass_s']:.1f} | "
                    f"{row['second_pass_s']:.1f} | {'yes' if row['same'] else 'no'} | "
                    f"{'yes' if row['sha256'] == eager_sha else 'no'} | "
                    f"{'' if row['bleu'] is None else format(row['bleu'], '.2f')} |",
                    flush=True,
                )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
