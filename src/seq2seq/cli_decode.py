"""The ``translate``, ``score``, ``evaluate`` and ``shortlist`` commands of the ``seq2seq``
command line: their arguments, reading input, search options from the arguments, output formats
(n-best, scores, attention files) and the evaluation report. ``cli.py`` builds the parser and
dispatches here."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .search import SearchOptions

log = logging.getLogger("seq2seq")


def add_model_options(sp: argparse.ArgumentParser) -> None:
    """The arguments of every command that loads a model: checkpoints, batch size, threads."""
    sp.add_argument(
        "checkpoint",
        metavar="RUN_DIR_OR_CHECKPOINT",
        nargs="+",
        help="a checkpoint file, or a run directory (uses best.pt, else last.pt); "
        "several: an ensemble (same vocabularies), log-probabilities averaged",
    )
    sp.add_argument("--batch-size", type=int, default=64, help="sentences per batch")
    sp.add_argument("--quantize", choices=["int8"], help="CPU dynamic quantization")
    sp.add_argument("--threads", type=int, help="torch CPU threads")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_decoding_options(sp: argparse.ArgumentParser) -> None:
    """The model arguments plus the engine, search and sampling ones (``_search_options``
    reads them), for ``translate`` and ``evaluate``."""
    add_model_options(sp)
    sp.add_argument(
        "--compile",
        action="store_true",
        help="compile the encoder and decoder step with torch.compile (weights frozen): "
        "faster decoding after a one-off compilation of tens of seconds; needs a C++ compiler",
    )
    sp.add_argument(
        "--workers",
        type=int,
        default=1,
        help="decode this many batches at once, each in its own thread on the one model "
        "(like CTranslate2's inter_threads); --threads is then per worker, by default the "
        "CPU threads divided among the workers",
    )
    sp.add_argument(
        "--processes",
        type=int,
        default=1,
        help="decode this many batches at once, each in its own process that loads the model "
        "again (fastest for --compile and int8 on few cores); --threads is then per process, "
        "by default the CPU threads divided among them",
    )
    g = sp.add_argument_group("search")
    g.add_argument("--beam-size", type=int, default=5, help="1 = greedy (default: 5)")
    g.add_argument("--n-best", type=int, help="print the K best with scores (K lines per input)")
    g.add_argument("--max-len", type=int, default=512, help="absolute output limit (tokens)")
    g.add_argument(
        "--max-len-ratio",
        type=float,
        default=2.0,
        help="outputs stop at RATIO * source length + OFFSET tokens",
    )
    g.add_argument("--max-len-offset", type=int, default=10)
    g.add_argument("--min-len", type=int, default=0, help="no <eos> before this many tokens")
    g.add_argument(
        "--min-len-ratio",
        type=float,
        default=0.0,
        help="no <eos> before RATIO * source length tokens",
    )
    g.add_argument("--ban-unk", action="store_true", help="never output <unk>")
    g.add_argument(
        "--no-repeat-ngram",
        type=int,
        default=0,
        metavar="N",
        help="never repeat an n-gram of this size",
    )
    g.add_argument(
        "--length-penalty",
        choices=["norm", "gnmt"],
        default="norm",
        help="norm: log_prob / length**alpha; gnmt: Wu et al. 2016",
    )
    g.add_argument("--alpha", type=float, default=1.0, help="length penalty strength")
    g.add_argument(
        "--coverage-penalty",
        type=float,
        default=0.0,
        metavar="BETA",
        help="GNMT coverage penalty weight",
    )
    g.add_argument(
        "--shortlist",
        metavar="FILE",
        help="score only the target tokens of a vocabulary shortlist built for this model "
        "(`seq2seq shortlist`): faster, an approximation",
    )
    g.add_argument(
        "--early-stop",
        action="store_true",
        help="end a sentence when its best continuation ends, as OpenNMT-py and CTranslate2 do "
        "(default: when beam-size hypotheses have ended)",
    )
    g = sp.add_argument_group("sampling")
    g.add_argument("--sample", action="store_true", help="sample instead of searching")
    g.add_argument("--num-samples", type=int, default=1, help="samples per input")
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--top-k", type=int, default=0, help="sample among the K best (0: all)")
    g.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass")
    g.add_argument("--seed", type=int, help="sampling seed (repeatable output)")


def _read_input(path: str | None) -> list[str]:
    from .data.corpus import read_lines

    if path is None or path == "-":
        data = sys.stdin.buffer.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"<stdin>: invalid UTF-8 at byte {e.start}") from None
        return text.splitlines()
    return read_lines(path)


def _search_options(args: argparse.Namespace) -> SearchOptions:
    from .search import SearchOptions

    return SearchOptions(
        beam_size=args.beam_size,
        n_best=args.n_best or 1,
        max_len_ratio=args.max_len_ratio,
        max_len_offset=args.max_len_offset,
        max_len=args.max_len,
        min_len=args.min_len,
        min_len_ratio=args.min_len_ratio,
        ban_unk=args.ban_unk,
        no_repeat_ngram=args.no_repeat_ngram,
        length_penalty=args.length_penalty,
        alpha=args.alpha,
        coverage_beta=args.coverage_penalty,
        early_stop=args.early_stop,
        sample=args.sample,
        num_samples=args.num_samples,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
    )


def _load_translator(args: argparse.Namespace):
    import torch

    from .translator import load

    workers, processes = getattr(args, "workers", 1), getattr(args, "processes", 1)
    for flag, n in (("--workers", workers), ("--processes", processes)):
        if n < 1:
            raise ValueError(f"{flag}: expected an integer >= 1, got {n}")
    if workers > 1 and processes > 1:
        raise ValueError("--workers and --processes: choose one")
    if args.threads:
        torch.set_num_threads(args.threads)
    elif max(workers, processes) > 1:  # the CPU threads shared among the workers
        torch.set_num_threads(max(1, torch.get_num_threads() // max(workers, processes)))
    return load(
        args.checkpoint,
        quantize_to=args.quantize,
        compile=getattr(args, "compile", False),
        shortlist=getattr(args, "shortlist", None),
    )


def _format(translator, source: str, nbest: list, args: argparse.Namespace, best=None) -> str:
    """The output lines for one input: the translation; with --n-best or several samples, one
    ``translation<TAB>score`` line per hypothesis; with --json, one JSON object. ``best``: the
    :class:`~seq2seq.translator.Translation` of the first hypothesis (--replace-unk,
    --alignment), whose text replaces the plain detokenization."""
    texts = [translator.detokenize(h.tokens) for h in nbest]
    if best is not None:
        texts[0] = best.text
    alignment = " ".join(f"{i}-{j}" for i, j in best.alignment()) if args.alignment else None
    if args.json:

        def entry(h, text: str) -> dict:
            e = {
                "translation": text,
                "score": h.score,
                "log_prob": h.log_prob,
                "tokens": translator.tgt_vocab.decode(h.tokens),
            }
            if args.with_attention and h.attention is not None:
                e["attention"] = [[round(x, 5) for x in row] for row in h.attention.tolist()]
            return e

        obj = {"source": source, **entry(nbest[0], texts[0])}
        if alignment is not None:
            obj["alignment"] = alignment
        if len(nbest) > 1:
            obj["n_best"] = [entry(h, t) for h, t in zip(nbest, texts)]
        return json.dumps(obj, ensure_ascii=False) + "\n"
    if args.n_best is not None or len(nbest) > 1:
        return "".join(f"{t}\t{h.score:.6f}\n" for h, t in zip(nbest, texts))
    return texts[0] + (f" ||| {alignment}" if alignment is not None else "") + "\n"


def _write_attention(results: list, directory: str) -> None:
    """--attention DIR: NNNN.png (heatmap) and NNNN.json per input line, from 0001."""
    from .plot import plot_attention

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for n, r in enumerate(results, start=1):
        title = f"{r.source} -> {r.text}"
        plot_attention(r.attention, r.src_tokens, r.tgt_tokens, out / f"{n:04d}.png", title)
        (out / f"{n:04d}.json").write_text(
            json.dumps(r.to_dict(), ensure_ascii=False) + "\n", encoding="utf-8"
        )
    log.info("wrote %d attention heatmaps and JSON files to %s/", len(results), out)


def _translate_lines(translator, lines: list[str], options, args, progress: bool = False) -> str:
    by_attention = bool(args.attention or args.alignment or args.replace_unk)
    attention = by_attention or bool(args.json and args.with_attention)
    nbests = translator.hypotheses(
        lines,
        options,
        args.batch_size,
        attention,
        progress=progress,
        workers=args.workers,
        processes=args.processes,
    )
    best = [None] * len(lines)
    if by_attention:
        best = translator.with_attention(lines, nbests, args.replace_unk)
        if args.attention:
            _write_attention(best, args.attention)
    return "".join(_format(translator, *x, args, b) for x, b in zip(zip(lines, nbests), best))


def cmd_translate(args: argparse.Namespace) -> int:
    options = _search_options(args)
    translator = _load_translator(args)
    if args.interactive:
        tty = sys.stdin.isatty()
        while True:
            if tty:
                print("> ", end="", file=sys.stderr, flush=True)
            line = sys.stdin.readline()
            if not line:
                break
            sys.stdout.write(_translate_lines(translator, [line.rstrip("\n")], options, args))
            sys.stdout.flush()
        return 0
    lines = _read_input(args.input)
    progress = not args.quiet and (args.output is not None or not sys.stdout.isatty())
    text = _translate_lines(translator, lines, options, args, progress and sys.stderr.isatty())
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from .data.corpus import read_parallel
    from .metrics import perplexity

    pairs = read_parallel(args.src, args.ref)
    translator = _load_translator(args)
    scores = translator.score([s for s, _ in pairs], [r for _, r in pairs], args.batch_size)
    out = []
    for lp, n in scores:
        if args.json:
            out.append(json.dumps({"log_prob": lp, "tokens": n, "ppl": perplexity(lp, n)}) + "\n")
        else:
            out.append(f"{lp:.6f}\t{perplexity(lp, n):.6f}\n")
    sys.stdout.write("".join(out))
    total, tokens = sum(lp for lp, _ in scores), sum(n for _, n in scores)
    print(
        f"{len(scores)} sentences, {tokens} tokens, log-probability {total:.4f}, "
        f"perplexity {perplexity(total, tokens):.4f}",
        file=sys.stderr,
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from . import metrics
    from .data.corpus import read_lines, read_parallel

    pairs = read_parallel(args.src, args.ref)
    for f in args.rouge_ref:
        if len(read_lines(f)) != len(pairs):
            raise ValueError(
                f"--rouge-ref {f} has {len(read_lines(f))} lines but --src {args.src} has "
                f"{len(pairs)}"
            )
    options = _search_options(args)
    translator = _load_translator(args)
    sources, refs = [s for s, _ in pairs], [r for _, r in pairs]
    start = time.perf_counter()
    nbests = translator.hypotheses(
        sources,
        options,
        args.batch_size,
        progress=not args.quiet and sys.stderr.isatty(),
        workers=args.workers,
        processes=args.processes,
    )
    seconds = time.perf_counter() - start
    hyps = [translator.detokenize(n[0].tokens) for n in nbests]
    result: dict = metrics.evaluate(hyps, refs)
    scored = translator.score(sources, refs, args.batch_size)
    result["ppl"] = metrics.perplexity(sum(lp for lp, _ in scored), sum(n for _, n in scored))
    result["seconds"] = round(seconds, 3)
    result["sentences_per_second"] = round(len(sources) / seconds, 2) if seconds else None
    if args.rouge or args.rouge_ref:
        result["rouge"] = metrics.rouge(hyps, [refs])
    if args.rouge_ref:
        extra = [read_lines(f) for f in args.rouge_ref]
        each = [metrics.rouge(hyps, [r]) for r in extra]
        result["rouge_refs"] = {
            "files": args.rouge_ref,
            "mean": {k: sum(e[k] for e in each) / len(each) for k in metrics.ROUGE_TYPES},
            "best": metrics.rouge(hyps, extra),
            "each": each,
        }
    if args.output:
        Path(args.output).write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    if args.json:
        print(json.dumps(result))
    else:
        print(f"BLEU        {result['bleu']:.2f}  ({result['bleu_signature']})")
        print(f"chrF        {result['chrf']:.2f}  ({result['chrf_signature']})")
        print(f"TER         {result['ter']:.2f}  ({result['ter_signature']})")
        print(f"exact match {result['exact_match']:.4f}  ({result['sentences']} sentences)")
        print(f"WER         {result['wer']:.4f}   CER {result['cer']:.4f}")
        print(f"perplexity  {result['ppl']:.4f}  (of the references)")
        for key, label in (("rouge", args.ref), ("rouge_refs", "--rouge-ref, best per example")):
            if key in result:
                r = result[key] if key == "rouge" else result[key]["best"]
                print(
                    f"ROUGE-1/2/L {r['rouge1']:.2f} / {r['rouge2']:.2f} / {r['rougeL']:.2f}"
                    f"  (F1, rouge-score, stemmed; {label})"
                )
    return 0


def dev_score(
    checkpoint: Path, dev: list[str], metric: str, beam_size: int, batch_size: int
) -> float:
    """``metric`` of a checkpoint's beam search (default options otherwise) on the aligned
    ``dev`` = [source file, reference file]."""
    from . import metrics
    from .data.corpus import read_parallel
    from .search import SearchOptions
    from .translator import load

    pairs = read_parallel(*dev)
    translator = load(checkpoint)
    nbests = translator.hypotheses(
        [s for s, _ in pairs], SearchOptions(beam_size=beam_size), batch_size
    )
    hyps = [translator.detokenize(n[0].tokens) for n in nbests]
    return metrics.score(metric, hyps, [r for _, r in pairs])


def cmd_shortlist(args: argparse.Namespace) -> int:
    from .data.corpus import read_parallel

    translator = _load_translator(args)
    pairs = read_parallel(args.src, args.tgt)
    started = time.monotonic()
    shortlist = translator.build_shortlist(
        [s for s, _ in pairs], [t for _, t in pairs], args.top, args.frequent, args.iterations
    )
    shortlist.save(args.out)
    log.info(
        "wrote %s: %s, from %d sentence pairs in %.1f s",
        args.out,
        shortlist.describe(),
        len(pairs),
        time.monotonic() - started,
    )
    return 0
