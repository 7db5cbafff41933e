"""Translation speed and quality, float32 against int8 dynamic quantization.

For each MODEL:SRC:REF triple, translates SRC (first --limit lines) with beam search and prints a
table of sentences/s, target tokens/s and BLEU / exact match per precision. Run from the
repository root, e.g.

    python benchmarks/translate_speed.py --threads 2 --beam-size 5 --batch-size 32 \\
        runs/dates:data/dates/test.src:data/dates/test.tgt \\
        runs/m30k:../shared/data/multi30k/test_2016_flickr.en:../shared/data/multi30k/test_2016_flickr.de
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from seq2seq import metrics
from seq2seq.data.corpus import read_parallel
from seq2seq.search import SearchOptions
from seq2seq.translator import load


def run(model: str, src: str, ref: str, args: argparse.Namespace) -> list[dict]:
    pairs = read_parallel(src, ref)[: args.limit]
    sources, refs = [s for s, _ in pairs], [r for _, r in pairs]
    options = SearchOptions(beam_size=args.beam_size, max_len_ratio=args.max_len_ratio)
    rows, outputs = [], {}
    for precision in ("float32", "int8"):
        translator = load(model, quantize_to=None if precision == "float32" else "int8")
        translator.hypotheses(sources[:32], options, args.batch_size)  # warm-up
        best = None
        for _ in range(args.repeat):
            start = time.perf_counter()
            nbest = translator.hypotheses(sources, options, args.batch_size)
            seconds = time.perf_counter() - start
            best = seconds if best is None else min(best, seconds)
        hyps = [translator.detokenize(n[0].tokens) for n in nbest]
        outputs[precision] = hyps
        tokens = sum(len(n[0].tokens) + 1 for n in nbest)
        rows.append(
            {
                "model": model,
                "data": src,
                "precision": precision,
                "sentences": len(sources),
                "seconds": round(best, 3),
                "sent_per_s": round(len(sources) / best, 1),
                "tok_per_s": round(tokens / best, 1),
                "bleu": round(metrics.bleu(hyps, refs)[0], 2),
                "exact_match": round(metrics.exact_match(hyps, refs), 4),
            }
        )
    same = sum(a == b for a, b in zip(outputs["float32"], outputs["int8"])) / len(sources)
    rows[-1]["same_as_float"] = round(same, 4)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("sets", nargs="+", metavar="MODEL:SRC:REF")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-len-ratio", type=float, default=2.0)
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=1, help="best of N timed runs")
    p.add_argument("--json", help="also write the rows to this file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for item in args.sets:
        model, src, ref = item.split(":")
        rows.extend(run(model, src, ref, args))
    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} threads, beam {args.beam_size}, batch {args.batch_size}"
    )
    cols = [
        "model",
        "precision",
        "sentences",
        "seconds",
        "sent_per_s",
        "tok_per_s",
        "bleu",
        "exact_match",
        "same_as_float",
    ]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
