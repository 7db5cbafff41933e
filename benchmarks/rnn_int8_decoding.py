"""An RNN model's decoding forms side by side, timed in turns in one process: compiled int8 (the
form of ``seq2seq.quantize`` for compiled decoding: the decoder's recurrent stack an ``Int8RNN``,
the encoder's LSTM ``quantize_dynamic``'s), the same with both RNNs left in float32 (the form up to
stop 39, only its Linear layers int8), eager int8 (``quantize_dynamic``: fbgemm's int8 LSTM and
Linear), compiled float32 and eager float32.

Every form translates the file once to warm up (compiling, for the compiled ones), then ``--rounds``
times, the forms taking turns so that a slower minute of the machine falls on all of them. The
table gives the median and every pass, the seconds inside ``encode`` and inside the decoder steps
(median pass), and sacreBLEU against ``--ref``. Every pass must write the warm-up's translations.
Run from the repository root:

    python benchmarks/rnn_int8_decoding.py runs/recipes_stop36/multi30k_en_de_rnn/averaged.pt \\
        ../shared/data/multi30k/test_2016_flickr.en ../shared/data/multi30k/test_2016_flickr.de \\
        --rounds 5 --threads 2

Decoding follows the harness (beam 5, batch 32, at most 100 output tokens, early stop).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections import defaultdict


def timed(model, seconds: dict[str, float]) -> None:
    """Wraps the model's encode and step functions to add their wall time into ``seconds``."""
    step = "decode_log_probs" if "decode_log_probs" in vars(model) else "decode_step"
    for name, key in (("encode", "encode"), (step, "steps")):
        fn = getattr(model, name)

        def wrapper(*args, _fn=fn, _key=key, **kwargs):
            start = time.perf_counter()
            out = _fn(*args, **kwargs)
            seconds[_key] += time.perf_counter() - start
            return out

        setattr(model, name, wrapper)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="run directory or checkpoint of an RNN model")
    p.add_argument("src", help="source text, one sentence per line")
    p.add_argument("ref", help="reference translations")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--json", help="write the rows here")
    args = p.parse_args()

    import torch

    import seq2seq
    import seq2seq.quantize
    from seq2seq.data.corpus import read_lines
    from seq2seq.metrics import bleu
    from seq2seq.search_options import SearchOptions

    torch.set_num_threads(args.threads)
    lines, refs = read_lines(args.src), read_lines(args.ref)
    options = SearchOptions(
        beam_size=args.beam_size, max_len=100, max_len_ratio=1e9, early_stop=True
    )
    forms = {"compiled int8": seq2seq.load(args.model, "cpu", "int8", True)}
    q = seq2seq.quantize
    int8_rnn, dynamic_int8 = q.Int8RNN, q._dynamic_int8
    q.Int8RNN = lambda rnn, kernel=None: rnn  # the decoder's stack stays float32,
    q._dynamic_int8 = lambda model, types, inplace: model  # and the encoder's
    try:
        forms["compiled int8, float32 RNNs"] = seq2seq.load(args.model, "cpu", "int8", True)
    finally:
        q.Int8RNN, q._dynamic_int8 = int8_rnn, dynamic_int8
    forms["eager int8 (quantize_dynamic)"] = seq2seq.load(args.model, "cpu", "int8")
    forms["compiled float32"] = seq2seq.load(args.model, "cpu", None, True)
    forms["eager float32"] = seq2seq.load(args.model)

    seconds = {form: defaultdict(float) for form in forms}
    for form, translator in forms.items():
        timed(translator.model, seconds[form])
    outputs = {
        f: t.translate(lines, batch_size=args.batch_size, options=options) for f, t in forms.items()
    }
    passes = {form: [] for form in forms}
    for _ in range(args.rounds):
        for form, translator in forms.items():
            seconds[form].clear()
            start = time.perf_counter()
            out = translator.translate(lines, batch_size=args.batch_size, options=options)
            passes[form].append((time.perf_counter() - start, dict(seconds[form])))
            if out != outputs[form]:
                raise SystemExit(f"{form}: a pass wrote other translations than the warm-up")

    print(
        f"{platform.processor() or platform.machine()}, {args.threads} threads, {args.model}, "
        f"beam {args.beam_size}, batch {args.batch_size}, {len(lines)} sentences, "
        f"{args.rounds} rounds\n"
    )
    print("| form | median (s) | passes (s) | encode (s) | decoder steps (s) | BLEU |")
    print("|---|---:|---|---:|---:|---:|")
    rows = []
    for form in forms:
        ordered = sorted(passes[form], key=lambda p: p[0])
        total, split = ordered[len(ordered) // 2]
        row = {
            "form": form,
            "median_s": statistics.median(p[0] for p in passes[form]),
            "passes_s": [round(p[0], 2) for p in passes[form]],
            "encode_s": split.get("encode", 0.0),
            "steps_s": split.get("steps", 0.0),
            "bleu": bleu(outputs[form], refs)[0],
        }
        rows.append(row)
        print(
            f"| {form} | {row['median_s']:.2f} | {', '.join(map(str, row['passes_s']))} | "
            f"{row['encode_s']:.2f} | {row['steps_s']:.2f} | {row['bleu']:.2f} |"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
