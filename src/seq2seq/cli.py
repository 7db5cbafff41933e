"""The ``seq2seq`` command line: a thin adapter over the library. It owns the console."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from importlib import resources
from pathlib import Path

from . import __version__
from .cli_decode import (
    add_decoding_options,
    add_model_options,
    cmd_evaluate,
    cmd_score,
    cmd_shortlist,
    cmd_translate,
)

STARTED = time.monotonic()  # counts toward train.max_minutes; the imports above take ~50 ms

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


def cmd_average(args: argparse.Namespace) -> int:
    import tempfile

    from . import metrics
    from .cli_decode import dev_score
    from .train.checkpoint import average_checkpoints, numbered, save_checkpoint

    run, kind = Path(args.run_dir), "best" if args.best else "ckpt"
    flag, counts = ("--best", args.best) if args.best else ("--last", args.last)
    counts = list(dict.fromkeys(counts))  # in the order given, each once
    found = numbered(run, kind)
    for n in counts:
        if n < 1:
            raise ValueError(f"{flag}: expected counts >= 1, got {n}")
        if len(found) < n:
            raise ValueError(
                f"{run}: asked to average {n} checkpoints but found {len(found)} ({kind}-STEP.pt)"
            )
    if len(counts) > 1 and not args.dev:
        raise ValueError(
            f"{flag} {' '.join(map(str, counts))}: several counts need --dev SRC REF "
            "to choose among them"
        )
    files = {n: [p for _, p in found[-n:]] for n in counts}
    if not args.dev:
        save_checkpoint(average_checkpoints(files[counts[0]]), args.out)
        print(f"averaged {', '.join(p.name for p in files[counts[0]])} into {args.out}")
        return 0
    scores = {}
    with tempfile.TemporaryDirectory(prefix=".average-", dir=Path(args.out).parent) as tmp:
        for n in counts:
            candidate = Path(tmp) / f"last-{n}.pt"
            save_checkpoint(average_checkpoints(files[n]), candidate)
            scores[n] = dev_score(candidate, args.dev, args.metric, args.beam_size, args.batch_size)
            print(f"{n} ({', '.join(p.name for p in files[n])}): dev {args.metric} {scores[n]:.2f}")
        sign = 1 if metrics.HIGHER_IS_BETTER[args.metric] else -1
        best = max(counts, key=lambda n: sign * scores[n])  # the first of equals
        chosen = average_checkpoints(files[best])
    chosen["average_choice"] = {
        "dev": list(args.dev),
        "metric": args.metric,
        "beam_size": args.beam_size,
        "scores": {str(n): s for n, s in scores.items()},
        "chosen": best,
    }
    save_checkpoint(chosen, args.out)
    print(
        f"averaged {', '.join(p.name for p in files[best])} into {args.out} "
        f"(best dev {args.metric} of {len(counts)} choices: {scores[best]:.2f})"
    )
    return 0


def _rank() -> int:
    """This process's rank under torchrun (0 otherwise)."""
    return int(os.environ.get("RANK", "0"))


def cmd_plot(args: argparse.Namespace) -> int:
    from .plot import plot_learning_curves

    run = Path(args.run_dir)
    out = Path(args.out) if args.out else run / "curves.png"
    plot_learning_curves(run / "metrics.jsonl", out)
    print(f"wrote {out}")
    return 0


def _run_training(cfg, out: Path, restart: bool, quiet: bool) -> dict:
    from .train.trainer import Trainer

    if _rank() != 0:  # one log and one console: rank 0's
        logging.getLogger("seq2seq").setLevel(logging.WARNING)
        return Trainer(cfg, out, restart, show_progress=False, started=STARTED).run()
    handler = _add_file_log(out / "train.log")
    try:
        trainer = Trainer(cfg, out, restart, show_progress=not quiet, started=STARTED)
        return trainer.run()
    finally:
        logging.getLogger("seq2seq").removeHandler(handler)
        handler.close()


def cmd_train(args: argparse.Namespace) -> int:
    from . import config

    cfg = config.load(args.config, args.set)
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    result = _run_training(cfg, out, args.restart, args.quiet)
    if _rank() == 0 and result["best"] is not None:
        print(
            f"{result['stopped']}; best dev {result['metric']} {result['best']:.4f} at step "
            f"{result['best_step']}; model in {out}/best.pt"
        )
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    import yaml

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
        config.apply_overrides(yaml.safe_load(text), overrides),
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
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key by its dotted path, e.g. "
        "model.encoder.hidden_size=256 (repeatable)",
    )
    tr.add_argument("--out", help="run directory (default: runs/CONFIG_NAME)")
    tr.add_argument(
        "--restart",
        action="store_true",
        help="start over in a run directory that already holds a run (default: resume from "
        "its last.pt)",
    )
    tr.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    tr.set_defaults(func=cmd_train)

    tl = sub.add_parser("translate", help="translate text with a trained model or an ensemble")
    add_decoding_options(tl)
    tl.add_argument("--input", help="input file, one sentence per line (default: stdin)")
    tl.add_argument("--output", help="output file (default: stdout)")
    tl.add_argument(
        "--interactive",
        action="store_true",
        help="translate each line typed at the prompt as soon as it is entered",
    )
    tl.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per input: translation, score, tokens (and n_best)",
    )
    tl.add_argument(
        "--with-attention",
        action="store_true",
        help="with --json: include the attention weights (target x source)",
    )
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
        "evaluate",
        help="translate a test set and score it (BLEU, chrF, TER, "
        "exact match, WER, CER, perplexity)",
    )
    add_decoding_options(ev)
    ev.add_argument("--src", required=True, help="source file")
    ev.add_argument("--ref", required=True, help="reference file, aligned with --src")
    ev.add_argument("--output", help="also write the translations to this file")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument(
        "--rouge", action="store_true", help="add ROUGE-1/2/L F1 against --ref (summarization)"
    )
    ev.add_argument(
        "--rouge-ref",
        action="extend",
        nargs="+",
        default=[],
        metavar="FILE",
        help="more reference files (e.g. AESLC's dev.ann0-2): ROUGE against each, their mean, "
        "and the best reference per example",
    )
    ev.set_defaults(func=cmd_evaluate)

    sc = sub.add_parser(
        "score", help="force-decode references: per-sentence log-probability and perplexity"
    )
    add_model_options(sc)
    sc.add_argument("--src", required=True, help="source file")
    sc.add_argument("--ref", required=True, help="target file to score, aligned with --src")
    sc.add_argument("--json", action="store_true", help="one JSON object per line")
    sc.set_defaults(func=cmd_score)

    sl = sub.add_parser(
        "shortlist",
        help="build a vocabulary shortlist for faster decoding (IBM Model 1 on training text)",
    )
    add_model_options(sl)
    sl.add_argument("--src", required=True, help="training source file")
    sl.add_argument("--tgt", required=True, help="training target file, aligned with --src")
    sl.add_argument("--out", required=True, help="shortlist file to write")
    sl.add_argument("--top", type=int, default=20, help="translations kept per source token")
    sl.add_argument(
        "--frequent", type=int, default=100, help="most frequent target tokens always allowed"
    )
    sl.add_argument("--iterations", type=int, default=5, help="EM iterations of IBM Model 1")
    sl.set_defaults(func=cmd_shortlist)

    av = sub.add_parser("average", help="average the parameters of a run's last checkpoints")
    av.add_argument("run_dir", metavar="RUN_DIR")
    which = av.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--last", type=int, nargs="+", metavar="N", help="the N most recent ckpt-STEP.pt"
    )
    which.add_argument("--best", type=int, nargs="+", metavar="N", help="the N kept best-STEP.pt")
    av.add_argument("--out", required=True, help="output checkpoint file")
    av.add_argument(
        "--dev",
        nargs=2,
        metavar=("SRC", "REF"),
        help="choose among several counts (--last 1 2 3 5) by decoding this dev set with "
        "each average; the best one is written, with every score stored in it",
    )
    av.add_argument(
        "--metric",
        choices=["bleu", "chrf", "ter", "exact_match", "wer", "cer"],
        default="bleu",
        help="dev metric of --dev (default: bleu)",
    )
    av.add_argument("--beam-size", type=int, default=5, help="beam of the --dev decoding")
    av.add_argument("--batch-size", type=int, default=64, help="batch of the --dev decoding")
    av.set_defaults(func=cmd_average)

    pl = sub.add_parser("plot", help="draw a run's learning curves (loss, dev metric, lr) to PNG")
    pl.add_argument("run_dir", metavar="RUN_DIR")
    pl.add_argument("--out", help="PNG file (default: RUN_DIR/curves.png)")
    pl.set_defaults(func=cmd_plot)

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
        action="extend",
        nargs="+",
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
    from .runtime import tune_malloc
    from .train.checkpoint import CheckpointError
    from .train.rundir import RunDirError
    from .train.trainer import Interrupted, TrainingError

    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    tune_malloc()
    try:
        return args.func(args)
    except Interrupted:
        return 130
    except (ConfigError, CorpusError, CheckpointError, RunDirError, TrainingError, ValueError) as e:
        print(f"seq2seq {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"seq2seq {args.command}: interrupted", file=sys.stderr)
        return 130
