"""Where beam-search time goes: ``torch.profiler`` around ``Translator.hypotheses`` on every
--every'th line of SRC, after a warm-up batch (which also compiles). Prints the profiler's table of
operators by self CPU time (--by-shape: per input shapes; --kernels: each generated C++ kernel of
the compiled graphs as its own row), then the share of the linear layers (all their kernels).
Run from the repository root:

    python benchmarks/profile_decode.py runs/bench/transformer_285s_float32/last.pt \\
        ../shared/data/multi30k/test_2016_flickr.en --engine compiled --every 4

Beam 5, batch 32, at most 100 tokens, no cap relative to the source, early stop (the harness'
translation rows), one thread unless --threads says otherwise.
"""

from __future__ import annotations

import argparse

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
    translator.hypotheses(sources[:64], options, 32)  # warm-up (and compilation)
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
