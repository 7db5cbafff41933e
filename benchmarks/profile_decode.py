"""Where beam-search time goes: ``torch.profiler`` around ``Translator.hypotheses`` on every
--every'th line of SRC, after a warm-up batch (which also compiles). Prints the profiler's table of
operators by self CPU time (--by-shape: per input shapes; --kernels: each generated C++ kernel of
the compiled graphs as its own row), then the share of the linear layers (all their kernels).
Run from the repository root:

    python benchmarks/profile_decode.py runs/bench/transformer_285s_float32/last.pt \\
        ../shared/data/multi30k/test_2016_flickr.en --engine compiled --every 4

Beam 5, batch 32, at most 100 tokens, no cap relative to the source, early stop (the harness'
translation rows), one thread unless --threads says otherwise.

``--wall`` replaces the profiler (whose per-operator overhead inflates short operators) by
wall-clock timers around the model's calls (encode, init_state, the decoder step), the search's
top-k and its constraints, best of --repeat passes; what is left is the search's own bookkeeping
and Python. Operator tables need the profiler; shares of the wall time need --wall.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from seq2seq.data.corpus import read_lines
from seq2seq.runtime import tune_malloc
from seq2seq.search import SearchOptions
from seq2seq.translator import load

LINEAR = (
    "mkldnn::_linear_pointwise",
    "aten::addmm",
    "aten::mm",
    "quantized::linear_dynamic",
    "aten::_int_mm",
    "onednn::qlinear_pointwise",
    "seq2seq::fbgemm_int8_linear",
)


def wall_split(translator: Any, sources: list[str], options: SearchOptions, repeat: int) -> None:
    """Prints the wall-clock split of ``translator.hypotheses(sources)`` (the fastest of
    ``repeat`` passes): the model's calls, the search's top-k and constraints, the rest."""
    import seq2seq.search as search_mod

    spent: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)

    def timer(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - start
                calls[name] += 1

        return timed

    model = translator.model
    step = "decode_log_probs" if hasattr(model, "decode_log_probs") else "decode_step"
    for name in ("encode", "init_state", step):
        setattr(model, name, timer(name, getattr(model, name)))
    search_mod._topk = timer("top-k (_topk)", search_mod._topk)
    search_mod.apply = timer("constraints (apply)", search_mod.apply)
    best: tuple[float, dict[str, float], dict[str, int]] | None = None
    for _ in range(repeat):
        spent.clear()
        calls.clear()
        start = time.perf_counter()
        translator.hypotheses(sources, options, 32)
        total = time.perf_counter() - start
        if best is None or total < best[0]:
            best = total, dict(spent), dict(calls)
    assert best is not None
    total, spent_best, calls_best = best
    print("| part | seconds | share | calls | ms per call |\n|---|---:|---:|---:|---:|")
    for name, seconds in spent_best.items():
        n = calls_best[name]
        print(
            f"| {name} | {seconds:.3f} | {100 * seconds / total:.1f}% | {n} | "
            f"{1e3 * seconds / n:.3f} |"
        )
    rest = total - sum(spent_best.values())
    print(
        f"| search bookkeeping and Python (the rest) | {rest:.3f} | {100 * rest / total:.1f}% | | |"
    )
    print(f"| total | {total:.3f} | 100% | | |")
    print(f"# {len(sources)} sentences, {len(sources) / total:.1f} sent/s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("model")
    p.add_argument("src")
    p.add_argument("--precision", choices=["float32", "int8"], default="float32")
    p.add_argument("--engine", choices=["eager", "compiled"], default="compiled")
    p.add_argument("--every", type=int, default=4, help="profile every N-th source line")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rows", type=int, default=30, help="operators in the table")
    p.add_argument("--by-shape", action="store_true", help="one row per operator and input shapes")
    p.add_argument("--shortlist", help="decode over this vocabulary shortlist (seq2seq shortlist)")
    p.add_argument(
        "--kernels",
        action="store_true",
        help="compiled: one row per generated C++ kernel (inductor's cpp.enable_kernel_profile)",
    )
    p.add_argument("--wall", action="store_true", help="wall-clock split, no profiler")
    p.add_argument("--repeat", type=int, default=3, help="--wall: best of N passes")
    args = p.parse_args()
    if args.kernels:
        import torch._inductor.config as inductor_config

        inductor_config.cpp.enable_kernel_profile = True
    tune_malloc()
    torch.set_num_threads(args.threads)
    sources = read_lines(args.src)[:: args.every]
    translator = load(
        args.model,
        quantize_to=None if args.precision == "float32" else "int8",
        compile=args.engine == "compiled",
        shortlist=args.shortlist,
    )
    options = SearchOptions(beam_size=5, max_len=100, max_len_ratio=1e9, early_stop=True)
    # warm-up over the whole file: a compiled model recompiles for shapes that its first
    # batches lack, and that compilation must not land in the timings or the profile
    translator.hypotheses(sources, options, 32)
    if args.wall:
        print(
            f"# {args.precision}, {args.engine}, {args.threads} thread(s)"
            f"{', shortlist' if args.shortlist else ''}: wall-clock split, best of {args.repeat}"
        )
        wall_split(translator, sources, options, args.repeat)
        return
    with profile(activities=[ProfilerActivity.CPU], record_shapes=args.by_shape) as prof:
        translator.hypotheses(sources, options, 32)
    events = prof.key_averages(group_by_input_shape=args.by_shape)
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows))
    total = sum(e.self_cpu_time_total for e in events)
    linear = sum(e.self_cpu_time_total for e in events if e.key in LINEAR)
    print(
        f"# {len(sources)} sentences, {args.precision}, {args.engine}, {args.threads} thread(s)"
        f"{', shortlist' if args.shortlist else ''}: "
        f"linear layers {100 * linear / total:.1f}% of self CPU time"
    )


if __name__ == "__main__":
    main()
