"""Translation speed and quality: float32 against int8 dynamic quantization, beam against greedy,
one process with T threads against W worker processes with one thread each, eager PyTorch against
the compiled decoder (``--engines eager compiled``).

For each MODEL:SRC:REF triple, translates SRC (first --limit lines) and prints a table of
sentences/s, target tokens/s, BLEU and exact match per (precision, beam, layout). Timing starts
when every worker has loaded its model and warmed up, and ends when the last one finishes (model
loading is excluded, as in the CTranslate2 anchor). With several processes, each takes the next
batch as it finishes one, longest batches first, as ``translate --processes`` and CTranslate2's
``inter_threads`` do (``--deal shares``: fixed shares dealt beforehand, the way of earlier
tables). Run from the repository root, e.g.

    python benchmarks/translate_speed.py --beam-sizes 5 1 --layouts 1x2 2x1 \\
        --max-len 100 --max-len-ratio 0 --json runs/bench/translate.json \\
        runs/m30k:../shared/data/multi30k/test_2016_flickr.en:../shared/data/multi30k/test_2016_flickr.de

``--max-len 100 --max-len-ratio 0`` is the anchors' rule (at most 100 output tokens, no cap
relative to the source length); the default is the toolkit's (2 x source + 10, at most 512).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import time

from seq2seq import metrics
from seq2seq.data.corpus import read_parallel
from seq2seq.search import SearchOptions


def _worker(
    setting, sentences, options, batch_size, threads, repeat, barrier, queue, rank, counters
):  # noqa: ANN001
    """setting: model, precision, engine, shortlist and decoding workers (threads) of the row.

    ``counters`` None: the worker translates all of ``sentences`` (its share) each pass. Else every
    worker holds all the sentences, cut into the batches ``translate`` makes of them, and in each
    timed pass takes the next batch not yet taken (``counters[pass]``, shared by the workers),
    longest batches first, until none is left: the batches are dealt as they finish, as
    ``translate --processes`` and CTranslate2's ``inter_threads`` deal theirs."""
    import torch

    from seq2seq.runtime import tune_malloc
    from seq2seq.translator import decode_batch, decode_jobs, load

    tune_malloc()  # as the seq2seq command does (SEQ2SEQ_DEFAULT_MALLOC=1: glibc's defaults)
    torch.set_num_threads(threads)
    translator = load(
        setting["model"],
        quantize_to=None if setting["precision"] == "float32" else "int8",
        compile=setting["engine"] == "compiled",
        shortlist=setting["shortlist"],
    )
    decoders = setting["decoders"]
    if counters is None:

        def translate(_: int) -> tuple[list[int], list]:
            nbest = translator.hypotheses(sentences, options, batch_size, workers=decoders)
            return list(range(len(sentences))), nbest

    else:
        data = translator.encode_sources(sentences)
        jobs = decode_jobs(data, options, batch_size)  # translate's batches, longest first
        translator.model.eval()

        def translate(k: int) -> tuple[list[int], list]:
            done, nbest = [], []
            while True:
                with counters[k].get_lock():
                    i = counters[k].value
                    counters[k].value += 1
                if i >= len(jobs):
                    return done, nbest
                idx, seed = jobs[i]
                nbest += decode_batch(
                    translator.model,
                    data,
                    idx,
                    options,
                    False,
                    translator.device,
                    translator.restrict,
                    seed,
                )
                done += idx

    # warm-up: one untimed pass over the whole share (every sentence, with ``counters``), so
    # that every shape the timed passes meet was compiled (a compiled model recompiles for some
    # shapes that the first batches lack; such a first pass ran ~3x slower), and every decoding
    # thread ran
    translator.hypotheses(sentences, options, batch_size, workers=decoders)
    spans = []
    for k in range(repeat):  # every worker starts each timed run together
        barrier.wait()
        start = time.time()
        done, nbest = translate(k)
        spans.append((start, time.time()))
    hyps = {i: translator.detokenize(n[0].tokens) for i, n in zip(done, nbest)}
    tokens = sum(len(n[0].tokens) + 1 for n in nbest)
    queue.put((rank, spans, hyps, tokens))


def timed(  # noqa: ANN001
    model,
    precision,
    engine,
    sources,
    options,
    batch_size,
    workers,
    threads,
    repeat=1,
    shortlist=None,
    decoders=1,
    deal="batches",
):
    """(seconds of each pass, hypotheses in input order, output tokens incl. <eos>) with
    ``workers`` processes of ``threads`` threads (``decoders`` > 1: one process whose
    ``decoders`` threads decode batches at once, ``translate --workers``). With several
    processes, ``deal`` ``batches``: each takes the next batch as it finishes one (see
    :func:`_worker`); ``shares``: the sources are dealt by length beforehand, so that each
    process gets a similar share.
    With ``repeat``, the workers translate that many times (loaded and compiled once); the
    caller counts the fastest."""
    ctx = mp.get_context("spawn")
    counters = None
    if workers > 1 and deal == "batches":
        shards = [list(range(len(sources)))] * workers
        counters = [ctx.Value("i", 0) for _ in range(repeat)]
    else:
        order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
        shards = [order[r::workers] for r in range(workers)]
    barrier, queue = ctx.Barrier(workers), ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker,
            args=(
                {
                    "model": model,
                    "precision": precision,
                    "engine": engine,
                    "shortlist": shortlist,
                    "decoders": decoders,
                },
                [sources[i] for i in shard],
                options,
                batch_size,
                threads,
                repeat,
                barrier,
                queue,
                r,
                counters,
            ),
        )
        for r, shard in enumerate(shards)
    ]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode:
            raise RuntimeError(f"translation worker failed with exit code {p.exitcode}")
    hyps: list[str | None] = [None] * len(sources)
    for rank, _, shard_hyps, _ in results:
        for i, h in shard_hyps.items():
            hyps[shards[rank][i]] = h
    if None in hyps:
        raise RuntimeError(f"{hyps.count(None)} sentences were not translated")
    seconds = [
        max(r[1][k][1] for r in results) - min(r[1][k][0] for r in results) for k in range(repeat)
    ]
    return seconds, hyps, sum(r[3] for r in results)


def parse_layout(layout: str) -> tuple[int, int, int, str]:
    """``PxT``: P processes of T threads; ``WwT``: one process, W decoding threads (``translate
    --workers W``) of T intra-op threads each. Returns (processes, decoding threads, intra-op
    threads, label)."""
    try:
        if "w" in layout:
            decoders, threads = (int(x) for x in layout.split("w"))
            plural = "s" if threads > 1 else ""
            return 1, decoders, threads, f"{decoders} workers x {threads} thread{plural}, 1 process"
        workers, threads = (int(x) for x in layout.split("x"))
    except ValueError:
        raise SystemExit(
            f"--layouts: expected PxT or WwT (e.g. 1x2, 2x1, 2w1), got {layout!r}"
        ) from None
    return workers, 1, threads, f"{workers} x {threads} thread" + ("s" if threads > 1 else "")


def run(model: str, src: str, ref: str, args: argparse.Namespace) -> list[dict]:
    pairs = read_parallel(src, ref)[: args.limit]
    sources, refs = [s for s, _ in pairs], [r for _, r in pairs]
    ratio = args.max_len_ratio if args.max_len_ratio > 0 else 1e9
    rows, floats = [], {}
    for beam in args.beam_sizes:
        options = SearchOptions(
            beam_size=beam, max_len=args.max_len, max_len_ratio=ratio, early_stop=args.early_stop
        )
        combos = [(p, e, v) for v in args.vocabs for e in args.engines for p in args.precisions]
        for precision, engine, vocab in combos:
            for layout in args.layouts:
                workers, decoders, threads, label = parse_layout(layout)
                passes, hyps, tokens = timed(
                    model,
                    precision,
                    engine,
                    sources,
                    options,
                    args.batch_size,
                    workers,
                    threads,
                    args.repeat,
                    args.shortlist if vocab == "shortlist" else None,
                    decoders,
                    args.deal,
                )
                best = min(passes)
                row = {
                    "model": model,
                    "data": src,
                    "beam": beam,
                    "early_stop": args.early_stop,
                    "precision": precision,
                    "engine": engine,
                    "vocab": vocab,
                    "layout": label,
                    "sentences": len(sources),
                    "seconds": round(best, 3),
                    "sent_per_s": round(len(sources) / best, 1),
                    "tok_per_s": round(tokens / best, 1),
                    "mean_out_tokens": round(tokens / len(sources), 1),
                    "bleu": round(metrics.bleu(hyps, refs)[0], 2),
                    "chrf": round(metrics.chrf(hyps, refs)[0], 2),
                    "exact_match": round(metrics.exact_match(hyps, refs), 4),
                }
                if len(passes) > 1:  # every pass: this machine's spread, not just its best
                    row["passes_sent_per_s"] = " / ".join(
                        str(round(len(sources) / t, 1)) for t in passes
                    )
                if precision == "float32" and engine == "eager" and vocab == "full":
                    floats.setdefault(beam, hyps)
                elif beam in floats:
                    same = sum(a == b for a, b in zip(floats[beam], hyps)) / len(sources)
                    row["same_as_float"] = round(same, 4)
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


COLUMNS = [
    "model",
    "beam",
    "precision",
    "engine",
    "vocab",
    "layout",
    "sent_per_s",
    "tok_per_s",
    "mean_out_tokens",
    "bleu",
    "chrf",
    "same_as_float",
]


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("sets", nargs="+", metavar="MODEL:SRC:REF")
    p.add_argument("--beam-sizes", type=int, nargs="+", default=[5])
    p.add_argument("--precisions", nargs="+", default=["float32", "int8"])
    p.add_argument(
        "--engines",
        nargs="+",
        default=["eager"],
        choices=["eager", "compiled"],
        help="compiled: encoder and decoder step through torch.compile (seq2seq.compiled); "
        "compilation happens in the untimed warm-up",
    )
    p.add_argument(
        "--vocabs",
        nargs="+",
        default=["full"],
        choices=["full", "shortlist"],
        help="shortlist: decode over the vocabulary shortlist --shortlist (seq2seq.shortlist)",
    )
    p.add_argument("--shortlist", help="shortlist file for --vocabs shortlist (seq2seq shortlist)")
    p.add_argument(
        "--layouts",
        nargs="+",
        default=["1x2"],
        help="PROCESSESxTHREADS (e.g. 1x2, 2x1) or WORKERSwTHREADS: one process with "
        "translate --workers WORKERS of THREADS each (e.g. 2w1)",
    )
    p.add_argument(
        "--deal",
        choices=["batches", "shares"],
        default="batches",
        help="with several processes: batches: each takes the next batch when it finishes one "
        "(longest first), as translate --processes and CTranslate2's inter_threads do; "
        "shares: each translates a fixed share of the sources, dealt by length",
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-len", type=int, default=512)
    p.add_argument("--max-len-ratio", type=float, default=2.0, help="0: no ratio cap")
    p.add_argument(
        "--early-stop",
        action="store_true",
        help="beam search ends a sentence when its best continuation ends (the anchors' rule)",
    )
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="best of N timed runs (models loaded once); the JSON rows give every run's speed",
    )
    p.add_argument("--json", help="also write the rows to this file")
    args = p.parse_args()
    if "shortlist" in args.vocabs and not args.shortlist:
        p.error("--vocabs shortlist needs --shortlist FILE")
    rows = []
    for item in args.sets:
        model, src, ref = item.split(":")
        rows.extend(run(model, src, ref, args))
    print(
        f"# {platform.processor() or platform.machine()}, batch {args.batch_size}, "
        f"max_len {args.max_len}, max_len_ratio {args.max_len_ratio or 'none'}, "
        f"early stop {'on' if args.early_stop else 'off'}"
    )
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in COLUMNS) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
