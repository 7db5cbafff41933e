"""The ``seq2seq`` command line: a thin adapter over the library. It owns the console."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from importlib import resources
from pathlib import Path

from . import __version__

log = logging.getLogger("seq2seq")

EXAMPLES = """\
examples:
  seq2seq quickstart
  seq2seq data task reverse --out data/reverse
  seq2seq train configs/reverse_rnn.yaml --out runs/reverse
  seq2seq train configs/dates_rnn.yaml --set model.decoder.attention.kind=luong_general
  echo "March 3, 2017" | seq2seq translate runs/dates
  seq2seq evaluate runs/reverse --src data/reverse/test.src --ref data/reverse/test.tgt --json
"""


class _TqdmHandler(logging.StreamHandler):
    """Logs through tqdm.write so messages do not break a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # pragma: no cover
            self.handleError(record)


def _setup_logging(verbose: bool) -> None:
    handler = _TqdmHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger("seq2seq")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False


def _add_file_log(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("seq2seq").addHandler(handler)
    return handler


# -- subcommands ----------------------------------------------------------------------------------


def cmd_data_task(args: argparse.Namespace) -> int:
    from .data import tasks

    splits = tasks.make_splits(args.name, args.train, args.dev, args.test, args.seed)
    paths = tasks.write_splits(splits, args.out)
    print(
        f"wrote {args.name}: "
        + ", ".join(f"{k} {len(v)}" for k, v in splits.items())
        + f" pairs to {Path(args.out)}/ ({len(paths)} files)"
    )
    return 0


def _run_training(cfg, out: Path, restart: bool, quiet: bool) -> dict:
    from .train.trainer import Trainer

    handler = _add_file_log(out / "train.log")
    try:
        trainer = Trainer(cfg, out, restart=restart, show_progress=not quiet)
        return trainer.run()
    finally:
        logging.getLogger("seq2seq").removeHandler(handler)
        handler.close()


def cmd_train(args: argparse.Namespace) -> int:
    from . import config

    cfg = config.load(args.config, args.set)
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    result = _run_training(cfg, out, args.restart, args.quiet)
    print(
        f"best dev {result['metric']} {result['best']:.4f} at step {result['best_step']}; "
        f"model in {out}/best.pt"
    )
    return 0


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


def cmd_translate(args: argparse.Namespace) -> int:
    from .translator import load

    translator = load(args.checkpoint)
    lines = _read_input(args.input)
    if args.attention or args.alignment or args.replace_unk:
        outputs = _translate_with_attention(translator, lines, args)
    else:
        outputs = translator.translate(
            lines,
            beam_size=args.beam_size,
            batch_size=args.batch_size,
            max_len_ratio=args.max_len_ratio,
        )
    text = "".join(o + "\n" for o in outputs)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _translate_with_attention(translator, lines: list[str], args: argparse.Namespace) -> list[str]:
    """--attention DIR (NNNN.png + NNNN.json per input line), --alignment, --replace-unk."""
    results = translator.translate_with_attention(
        lines,
        beam_size=args.beam_size,
        batch_size=args.batch_size,
        max_len_ratio=args.max_len_ratio,
        replace_unk=args.replace_unk,
    )
    if args.attention:
        from .plot import plot_attention

        out = Path(args.attention)
        out.mkdir(parents=True, exist_ok=True)
        for n, r in enumerate(results, start=1):
            title = f"{r.source} -> {r.text}"
            plot_attention(r.attention, r.src_tokens, r.tgt_tokens, out / f"{n:04d}.png", title)
            (out / f"{n:04d}.json").write_text(
                json.dumps(r.to_dict(), ensure_ascii=False) + "\n", encoding="utf-8"
            )
        log.info("wrote %d attention heatmaps and JSON files to %s/", len(results), out)
    if args.alignment:
        return [r.text + " ||| " + " ".join(f"{i}-{j}" for i, j in r.alignment()) for r in results]
    return [r.text for r in results]


def cmd_evaluate(args: argparse.Namespace) -> int:
    from . import metrics
    from .data.corpus import read_parallel
    from .translator import load

    pairs = read_parallel(args.src, args.ref)
    translator = load(args.checkpoint)
    start = time.perf_counter()
    hyps = translator.translate(
        [s for s, _ in pairs],
        beam_size=args.beam_size,
        batch_size=args.batch_size,
        max_len_ratio=args.max_len_ratio,
    )
    result = metrics.evaluate(hyps, [r for _, r in pairs])
    result["seconds"] = round(time.perf_counter() - start, 3)
    if args.output:
        Path(args.output).write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    if args.json:
        print(json.dumps(result))
    else:
        print(f"BLEU        {result['bleu']:.2f}  ({result['bleu_signature']})")
        print(f"chrF        {result['chrf']:.2f}  ({result['chrf_signature']})")
        print(f"exact match {result['exact_match']:.4f}  ({result['sentences']} sentences)")
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from . import config
    from .data import tasks
    from .translator import load

    out = Path(args.out)
    data_dir = out / "data" / "dates"
    run_dir = out / "runs" / "dates"
    print(f"1/3 generating the built-in 'dates' task in {data_dir}/")
    tasks.write_splits(
        tasks.make_splits("dates", **tasks.DEFAULT_SIZES, seed=tasks.DEFAULT_SEED), data_dir
    )
    text = resources.files("seq2seq").joinpath("configs/dates_rnn.yaml").read_text("utf-8")
    overrides = [
        f"data.train={data_dir / 'train'}",
        f"data.dev={data_dir / 'dev'}",
        f"train.max_minutes={args.minutes}",
        *args.set,
    ]
    cfg = config.from_dict(
        config.apply_overrides(config.yaml.safe_load(text), overrides),
        source="seq2seq/configs/dates_rnn.yaml",
    )
    print(
        f"2/3 training an LSTM encoder-decoder with attention for up to {args.minutes} minutes "
        f"(run directory {run_dir}/)"
    )
    result = _run_training(cfg, run_dir, restart=True, quiet=args.quiet)
    print(f"3/3 best dev exact match {result['best']:.3f} at step {result['best_step']}")
    translator = load(run_dir)
    examples = [
        "March 3, 2017",
        "3 Feb 1999",
        "Tuesday, July 4, 2023",
        "12/25/2001",
        "14.07.1989",
        "1st of May 2020",
    ]
    for src, hyp in zip(examples, translator.translate(examples, beam_size=5)):
        print(f"  {src:28s} -> {hyp}")
    test = data_dir / "test"
    print(
        f"\nThe model is in {run_dir}/best.pt. Translate with:\n"
        f"  echo 'June 5, 2011' | seq2seq translate {run_dir}\n"
        f"Evaluate on the test split with:\n"
        f"  seq2seq evaluate {run_dir} --src {test}.src --ref {test}.tgt"
    )
    return 0


# -- parser ---------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from .data import tasks

    p = argparse.ArgumentParser(
        prog="seq2seq",
        description="Sequence-to-sequence learning: train, translate, evaluate.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"seq2seq {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tr = sub.add_parser("train", help="train a model from a YAML config")
    tr.add_argument("config", help="YAML config file")
    tr.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key by its dotted path, e.g. "
        "model.encoder.hidden_size=256 (repeatable)",
    )
    tr.add_argument("--out", help="run directory (default: runs/CONFIG_NAME)")
    tr.add_argument(
        "--restart",
        action="store_true",
        help="start over in a run directory that already holds a run",
    )
    tr.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    tr.set_defaults(func=cmd_train)

    def decoding_options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "checkpoint",
            metavar="RUN_DIR_OR_CHECKPOINT",
            help="a checkpoint file, or a run directory (uses best.pt, else last.pt)",
        )
        sp.add_argument("--beam-size", type=int, default=5, help="1 = greedy (default: 5)")
        sp.add_argument("--batch-size", type=int, default=64, help="sentences per batch")
        sp.add_argument(
            "--max-len-ratio",
            type=float,
            default=2.0,
            help="outputs stop at RATIO * source length + 10 tokens",
        )

    tl = sub.add_parser("translate", help="translate text with a trained model")
    decoding_options(tl)
    tl.add_argument("--input", help="input file, one sentence per line (default: stdin)")
    tl.add_argument("--output", help="output file (default: stdout)")
    tl.add_argument(
        "--attention",
        metavar="DIR",
        help="write each sentence's attention as a heatmap DIR/NNNN.png and as JSON "
        "DIR/NNNN.json (NNNN: input line number from 0001)",
    )
    tl.add_argument(
        "--alignment",
        action="store_true",
        help="append hard alignments to each output line: 'TRANSLATION ||| i-j ...' "
        "(0-based source token i, output token j; the most-attended source token)",
    )
    tl.add_argument(
        "--replace-unk",
        action="store_true",
        help="replace each <unk> in the output by the source token it attends to most",
    )
    tl.set_defaults(func=cmd_translate)

    ev = sub.add_parser(
        "evaluate", help="translate a test set and score it (BLEU, chrF, exact match)"
    )
    decoding_options(ev)
    ev.add_argument("--src", required=True, help="source file")
    ev.add_argument("--ref", required=True, help="reference file, aligned with --src")
    ev.add_argument("--output", help="also write the translations to this file")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.set_defaults(func=cmd_evaluate)

    da = sub.add_parser("data", help="data utilities")
    dsub = da.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    tk = dsub.add_parser("task", help="generate a built-in task: " + ", ".join(tasks.TASKS))
    tk.add_argument("name", choices=tasks.TASKS)
    tk.add_argument("--out", required=True, help="output directory for {train,dev,test}.{src,tgt}")
    for split, n in tasks.DEFAULT_SIZES.items():
        tk.add_argument(f"--{split}", type=int, default=n, help=f"{split} pairs (default: {n})")
    tk.add_argument("--seed", type=int, default=tasks.DEFAULT_SEED)
    tk.set_defaults(func=cmd_data_task)

    qs = sub.add_parser("quickstart", help="generate the 'dates' task, train on it, translate")
    qs.add_argument("--out", default="quickstart", help="directory for data and run")
    qs.add_argument("--minutes", type=float, default=6.0, help="training time limit")
    qs.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key of the built-in config",
    )
    qs.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    qs.set_defaults(func=cmd_quickstart)
    return p


def main(argv: list[str] | None = None) -> int:
    from .config import ConfigError
    from .data.corpus import CorpusError
    from .train.checkpoint import CheckpointError
    from .train.trainer import RunDirError

    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return args.func(args)
    except (ConfigError, CorpusError, CheckpointError, RunDirError, ValueError) as e:
        print(f"seq2seq {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"seq2seq {args.command}: interrupted", file=sys.stderr)
        return 130
