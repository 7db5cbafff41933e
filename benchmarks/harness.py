"""The benchmark harness: training throughput, translation speed and recipe quality on Multi30k,
optionally beside the anchors (OpenNMT-py, CTranslate2) measured in the same invocation. Prints
one table and writes every row as JSON. Run from the repository root:

    python benchmarks/harness.py --anchors --json runs/bench/harness.json

Sections (``--sections``, default all three):
  train      benchmarks/train_speed.py on the two reference shapes of ../shared/bench/anchors
             (configs/multi30k_en_de_{rnn,transformer}.yaml), float32, and bf16 autocast where
             the CPU has native bf16 (elsewhere a row says it was not measured); with
             --anchors, ../shared/bench/anchors/train.sh onmt_rnn / onmt_transformer for
             --seconds each, parsed by its summarize.py, and ours measured once before and
             once after them: the row gives the mean of the two passes and both (this
             machine's speed drifts by 5-15% within minutes).
  translate  benchmarks/translate_speed.py on test_2016_flickr, batch 32, at most 100 output
             tokens (the anchors' rule), beam 5 and greedy (--beam-sizes), float32 and int8,
             eager and compiled (--engines), one process with 2 threads, 2 processes with 1
             thread, and one process with 2 decoding workers of 1 thread (translate --workers 2
             --threads 1; --layouts). Beam search ends a sentence when its best continuation
             ends, as the anchors do (--stops early; full: when 5 hypotheses have ended, our
             default; --stops early full gives both). The model is the reference Transformer
             trained for --seconds with the anchors' settings (runs/bench/transformer_<S>s,
             trained once; like for like with the anchors' model of the same age: compare the
             updates in the two labels, and give OpenNMT-py the same number with
             --anchor-translate-steps where --seconds does not; a younger model writes longer,
             repetitive outputs), plus the recipe model
             <--recipe-runs>/multi30k_en_de_transformer if it exists. With --anchors:
             translate.sh onmt and ct2, and CTranslate2 in both thread layouts. With
             --shortlist, every row also over a vocabulary shortlist (seq2seq shortlist, built
             from the training text next to the model; an approximation: compare its BLEU).
             Every row is the best of --repeat timed passes; with --anchors the passes run
             in --repeat rounds, each ours then the anchors', so that the machine's drift
             reaches both sides alike.
  quality    BLEU/chrF (or ROUGE) and training wall time of every finished recipe run under
             --recipe-runs (default runs/recipes/, where recipes/*/ scripts put them; their
             RUNS=DIR puts them elsewhere).
  anchor-quality
             OpenNMT-py trained like our Transformer recipe (benchmarks/onmt_transformer_recipe.yaml)
             for --quality-minutes on the anchors' BPE data, for each --quality-pairs direction;
             the last 1, 2, 3 and 5 checkpoints averaged and the best on val kept, as our
             Multi30k recipes do; beam 5 on test_2016_flickr, sacreBLEU/chrF as ours.
             Trained once (runs kept in the anchors' work directory); needs no --anchors.

After the rows, a second table gives every bar of issue 7 that they decide: ours, the anchor,
the ratio, the ratio round by round (translation with --anchors) and the verdict (a quality bar
needs its BLEU and a training command of at most 60 minutes in all); the JSON gets them as rows
of section "bars". --bars JSON... prints that table from saved row files (of one machine)
without measuring anything.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ANCHORS = Path(os.environ.get("ANCHORS", "../shared/bench/anchors"))
WORK = Path(os.environ.get("ANCHORS_WORK", "/tmp/anchors-bench"))
VENV = Path(os.environ.get("ANCHORS_VENV", "/tmp/anchors-venv"))
AVERAGE_CHOICES = (1, 2, 3, 5)  # averaged checkpoint counts the recipes choose among on val
TRANSLATE_KEYS = ("sent_per_s", "tok_per_s", "mean_out_tokens", "bleu", "chrf", "same_as_float")
SHAPES = {
    "rnn": "configs/multi30k_en_de_rnn.yaml",
    "transformer": "configs/multi30k_en_de_transformer.yaml",
}


def sh(cmd: list[str], **kw) -> str:  # noqa: ANN003
    """Runs ``cmd`` and returns its standard output; on failure, its standard error is shown
    before the error is raised."""
    print("+ " + " ".join(map(str, cmd)), file=sys.stderr, flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if done.returncode:
        sys.stderr.write(done.stderr[-4000:])
        raise subprocess.CalledProcessError(done.returncode, cmd, done.stdout, done.stderr)
    return done.stdout


def anchors_ready() -> None:
    if not (VENV / "bin" / "onmt_train").exists():
        sh(["bash", str(ANCHORS / "setup.sh")])
    if not (WORK / "data" / "spm8k.model").exists():
        sh(["bash", str(ANCHORS / "prepare.sh")])


# -- training ---------------------------------------------------------------------------------


def precisions() -> list[str]:
    """float32, and bf16 autocast where this CPU has native bf16 (elsewhere the trainer refuses
    it: emulated, a Transformer step ran 25x slower than float32 on an AVX2-only CPU)."""
    import torch

    from seq2seq.runtime import native_bf16

    return ["float32", "bf16"] if native_bf16(torch.device("cpu")) else ["float32"]


def bf16_ratio(threads: int) -> float:
    """How fast this CPU's bf16 products run against float32's on ``threads`` threads
    (``seq2seq.runtime.bf16_speedup``, what ``train.precision: auto`` decides by): it bounds what
    bf16 autocast can gain, so the bf16 training rows carry it."""
    from seq2seq.runtime import bf16_speedup

    return round(bf16_speedup(threads), 2)


def no_bf16_row() -> dict:
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    return {
        "section": "train",
        "toolkit": "seq2seq",
        "model": "both",
        "setting": f"bf16 autocast: not measured, this CPU ({capability}) has no native bf16",
    }


def our_train_speed(args: argparse.Namespace, name: str) -> list[dict]:
    """train_speed.py on both reference shapes in every precision, rows from its JSON."""
    out = Path(args.out) / f"{name}.json"
    sh(
        [
            sys.executable,
            str(HERE / "train_speed.py"),
            *SHAPES.values(),
            "--precision",
            *precisions(),
            "--threads",
            str(args.threads),
            "--steps",
            str(args.steps),
            "--json",
            str(out),
        ]
    )
    return json.loads(out.read_text())


def train_rows(args: argparse.Namespace) -> list[dict]:
    """Ours on both shapes; with --anchors, measured before and after OpenNMT-py's two runs and
    reported as the mean of the two passes (both kept), so that a drift of the machine's speed
    during the anchors' ~10 minutes weighs on both sides alike."""
    passes = [our_train_speed(args, "train_speed")]
    if args.anchors:
        anchors_ready()
        env = {**os.environ, "THREADS": str(args.threads)}
        for shape in SHAPES:
            sh(["bash", str(ANCHORS / "train.sh"), f"onmt_{shape}", str(args.seconds)], env=env)
        passes.append(our_train_speed(args, "train_speed_after"))
    rows = [] if "bf16" in precisions() else [no_bf16_row()]
    for r in passes[0]:
        shape = next(k for k, v in SHAPES.items() if v == r["config"])
        key = (r["config"], r["precision"])
        same = [q for run in passes for q in run if (q["config"], q["precision"]) == key]
        row = {
            "section": "train",
            "toolkit": "seq2seq",
            "model": shape,
            "setting": f"{r['precision']}, {args.threads} threads",
            "tgt_tok_per_s": round(sum(q["tgt_tok_per_s"] for q in same) / len(same), 1),
            "peak_rss_gib": max(q["peak_rss_gib"] for q in same),
            "s_per_step": round(sum(q["s_per_step"] for q in same) / len(same), 3),
        }
        if len(same) > 1:
            row["setting"] += ", mean of a pass before and one after OpenNMT-py's"
            row["passes_tok_per_s"] = " / ".join(f"{q['tgt_tok_per_s']:,}" for q in same)
        if r["precision"] == "bf16":
            row["bf16_products_vs_float32"] = bf16_ratio(args.threads)
        rows.append(row)
    if args.anchors:
        summary = sh(
            [str(VENV / "bin" / "python"), str(ANCHORS / "summarize.py")],
            env={**env, "ANCHORS_WORK": str(WORK)},
        )
        for line in summary.splitlines():
            m = re.match(r"onmt_(\w+): .*steady_tgt_tok/s=(\d+).*peakRSS=([\d.]+)GiB", line)
            if m:
                rows.append(
                    {
                        "section": "train",
                        "toolkit": "OpenNMT-py 3.5.1",
                        "model": m.group(1),
                        "setting": f"float32, {args.threads} threads",
                        "tgt_tok_per_s": float(m.group(2)),
                        "peak_rss_gib": float(m.group(3)),
                    }
                )
        for r in rows:
            ref = next(
                (
                    a
                    for a in rows
                    if a["toolkit"].startswith("OpenNMT") and a["model"] == r["model"]
                ),
                None,
            )
            if ref and r["toolkit"] == "seq2seq" and "tgt_tok_per_s" in r:
                r["vs_anchor"] = round(r["tgt_tok_per_s"] / ref["tgt_tok_per_s"], 2)
    return rows + same_time_rows(args)


# -- translation ------------------------------------------------------------------------------


def reference_model(args: argparse.Namespace, precision: str = "float32") -> Path:
    """The reference Transformer trained for --seconds with the anchors' settings (trained once)."""
    run = Path(args.out) / f"transformer_{args.seconds}s_{precision}"
    if not (run / "last.pt").exists():
        sh(
            [
                sys.executable,
                "-m",
                "seq2seq",
                "train",
                SHAPES["transformer"],
                "--out",
                str(run),
                "--set",
                f"train.max_minutes={args.seconds / 60}",
                "train.label_smoothing=0.0",
                "train.validate_every=1000000",
                f"train.threads={args.threads}",
                f"train.precision={precision}",
                f"data.train={args.data}/multi30k/train",
                f"data.dev={args.data}/multi30k/val",
            ]
        )
    return run


def same_time_rows(args: argparse.Namespace) -> list[dict]:
    """Dev BLEU (greedy, the trainer's final validation) after --seconds of training, float32
    against bf16 autocast: bf16 must not buy its speed with quality."""
    rows = []
    for precision in precisions():
        run = reference_model(args, precision)
        lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        valid = [x for x in lines if x["kind"] == "valid"][-1]
        train = [x for x in lines if x["kind"] == "train"]
        train = train[1:] or train  # after the first log interval, if there is a later one
        rows.append(
            {
                "section": "train",
                "toolkit": "seq2seq",
                "model": "transformer",
                "setting": f"{precision}, {args.seconds} s of training, dev greedy",
                "steps": valid["step"],
                "dev_bleu": round(valid["bleu"], 2),
                "tgt_tok_per_s": round(sum(x["tok_s"] for x in train) / len(train), 1),
            }
        )
    return rows


def bleu_of_bpe(path: Path, ref: str) -> tuple[float, float]:
    import sentencepiece as spm

    from seq2seq import metrics
    from seq2seq.data.corpus import read_lines

    sp = spm.SentencePieceProcessor(model_file=str(WORK / "data" / "spm8k.model"))
    hyps = [sp.decode(line.split()) for line in read_lines(path)]
    refs = read_lines(ref)
    return metrics.bleu(hyps, refs)[0], metrics.chrf(hyps, refs)[0]


def _our_translate(
    args: argparse.Namespace, models: list, src: str, ref: str, repeat: int, first: bool
) -> list:
    """translate_speed.py on every model (best of ``repeat``): its rows, one list per model and
    stopping rule, each with the model's label. With --shortlist, the ``first`` call builds each
    model's shortlist from the training text (a few seconds)."""
    m30k = f"{args.data}/multi30k"
    vocabs = ["--vocabs", "full", "shortlist"] if args.shortlist else []
    runs = []
    for (label, model), stop in [(m, st) for m in models for st in args.stops]:
        out = Path(args.out) / "translate.json"
        shortlist = []
        if args.shortlist:
            file = Path(model).with_name("shortlist.pt")
            if first:
                train = f"{m30k}/train"
                sh(
                    [sys.executable, "-m", "seq2seq", "shortlist", model, "--src", f"{train}.en"]
                    + ["--tgt", f"{train}.de", "--out", str(file)]
                )
            shortlist = [*vocabs, "--shortlist", str(file)]
        sh(
            [
                sys.executable,
                str(HERE / "translate_speed.py"),
                f"{model}:{src}:{ref}",
                "--beam-sizes",
                *map(str, args.beam_sizes),
                "--layouts",
                *args.layouts,
                "--max-len",
                "100",
                "--max-len-ratio",
                "0",
                "--engines",
                *args.engines,
                *(["--early-stop"] if stop == "early" else []),
                *shortlist,
                "--repeat",
                str(repeat),
                "--json",
                str(out),
            ]
        )
        runs.append((label, json.loads(out.read_text())))
    return runs


def _onmt_model(args: argparse.Namespace, updates: int) -> str:
    """Makes the OpenNMT-py checkpoint that translate.sh takes (the newest) the one to compare
    with (--anchor-translate-steps; trained now if missing); returns its label."""
    onmt_runs = WORK / "runs" / "onmt_transformer"
    ckpts = list(onmt_runs.glob("model_step_*.pt"))
    steps = args.anchor_translate_steps
    if steps == "ours":
        steps = updates  # of our reference model
    if steps:
        steps = int(steps)
        want = onmt_runs / f"model_step_{steps}.pt"
        if not want.exists():  # as train.sh runs it, but by updates, saved at the last one
            config = "configs/onmt_transformer.yaml"
            limit = f"-train_steps {steps} -save_checkpoint_steps {steps}"
            sh(
                [
                    "bash",
                    "-c",
                    f'. "{ANCHORS.resolve()}/env.sh"; $V/onmt_train -config {config} {limit}',
                ]
            )
        os.utime(want)  # translate.sh takes the newest checkpoint: this one
    elif not ckpts:
        sh(["bash", str(ANCHORS / "train.sh"), "onmt_transformer", str(args.seconds)])
    ckpts = list(onmt_runs.glob("model_step_*.pt"))
    newest = max(ckpts, key=lambda c: c.stat().st_mtime)
    return f"OpenNMT-py Transformer, {int(newest.stem.rsplit('_', 1)[1])} updates"


CT2_SETTINGS = [(q, inter, intra) for q in ("float32", "int8") for inter, intra in ((2, 1), (1, 2))]


def _anchors_translate_once(env: dict) -> dict:
    """One timed pass of onmt_translate (its seconds, or None) and of CTranslate2 in each
    precision and thread layout (sent/s, output tokens, tok/s)."""
    log = sh(["bash", str(ANCHORS / "translate.sh"), "onmt"], env=env)
    m = re.search(r"Total translation time \(s\): ([\d.]+)", log)
    times = {"onmt": float(m.group(1)) if m else None}
    for q, inter, intra in CT2_SETTINGS:
        out = sh(
            [
                str(VENV / "bin" / "python"),
                str(ANCHORS / "ct2_translate.py"),
                str(WORK / "runs" / f"ct2_{q}"),
                str(WORK / "data" / "test_2016_flickr.bpe.en"),
                str(WORK / "runs" / "hyp" / f"ct2_{q}_{inter}x{intra}.bpe.de"),
                str(inter),
                str(intra),
            ],
            env=env,
        )
        m = re.search(r"sent/s=([\d.]+) out_tok=(\d+) tok/s=([\d.]+)", out)
        times[(q, inter, intra)] = (float(m.group(1)), int(m.group(2)), float(m.group(3)))
    return times


def translate_rows(args: argparse.Namespace) -> list[dict]:
    """Our rows (and with --anchors the anchors'), each the best of --repeat timed passes. With
    --anchors the passes alternate, ours then the anchors', --repeat rounds, so that a drift of
    the machine's speed during the run reaches both sides alike."""
    m30k = f"{args.data}/multi30k"
    src, ref = f"{m30k}/test_2016_flickr.en", f"{m30k}/test_2016_flickr.de"
    run = reference_model(args)
    updates = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()][-1]["step"]
    models = [(f"reference Transformer, {args.seconds} s, {updates} updates", str(run / "last.pt"))]
    if not args.skip_recipe_model:
        recipe = Path(args.recipe_runs) / "multi30k_en_de_transformer" / "averaged.pt"
        if recipe.exists():
            models.append(("recipe Transformer (60 min)", str(recipe)))
    env = {**os.environ, "THREADS": str(args.threads)}
    if args.anchors:
        anchors_ready()
        anchor_label = _onmt_model(args, updates)
        sh(["bash", str(ANCHORS / "translate.sh"), "ct2"], env=env)  # converts (and one run)
    # with the anchors: --repeat rounds of one pass each; alone: one call of --repeat passes
    rounds, per_round = (args.repeat, 1) if args.anchors else (1, args.repeat)
    ours, anchors = [], []
    for i in range(rounds):
        ours.append(_our_translate(args, models, src, ref, per_round, i == 0))
        if args.anchors:
            anchors.append(_anchors_translate_once(env))
    rows = []
    for i, (label, first) in enumerate(ours[0]):
        for j, r in enumerate(first):
            same = [o[i][1][j] for o in ours]  # this row in every round
            r = max(same, key=lambda x: x["sent_per_s"])
            rule = ", early stop" if r["early_stop"] and r["beam"] > 1 else ""
            rows.append(
                {
                    "section": "translate",
                    "toolkit": "seq2seq",
                    "model": label,
                    "setting": f"beam {r['beam']}{rule}, {r['precision']}, {r['engine']}, "
                    + ("vocabulary shortlist, " if r.get("vocab") == "shortlist" else "")
                    + r["layout"],
                    **{k: r.get(k) for k in TRANSLATE_KEYS},
                    **_passes([x["sent_per_s"] for x in same]),
                }
            )
    if not args.anchors:
        return rows
    times = [a["onmt"] for a in anchors if a["onmt"] is not None]
    hyp = WORK / "runs" / "hyp" / "onmt.bpe.de"
    if times:
        seconds = min(times)
        b, c = bleu_of_bpe(hyp, ref)
        n = sum(len(line.split()) + 1 for line in hyp.read_text().splitlines())
        rows.append(
            {
                "section": "translate",
                "toolkit": "onmt_translate 3.5.1",
                "model": anchor_label,
                "setting": f"beam 5, float32, 1 x {args.threads} threads",
                "sent_per_s": round(1000 / seconds, 1),
                "tok_per_s": round(n / seconds, 1),
                "mean_out_tokens": round(n / 1000, 1),
                "bleu": round(b, 2),
                "chrf": round(c, 2),
                **_passes([round(1000 / t, 1) for t in times]),
            }
        )
    for q, inter, intra in CT2_SETTINGS:
        sent, out_tok, tok = max((a[(q, inter, intra)] for a in anchors), key=lambda m: m[0])
        b, c = bleu_of_bpe(WORK / "runs" / "hyp" / f"ct2_{q}_{inter}x{intra}.bpe.de", ref)
        rows.append(
            {
                "section": "translate",
                "toolkit": "CTranslate2 4.8.5",
                "model": anchor_label,
                "setting": f"beam 5, {q}, {inter} x {intra} thread" + ("s" if intra > 1 else ""),
                "sent_per_s": sent,
                "tok_per_s": tok,
                "mean_out_tokens": round(out_tok / 1000, 1),
                "bleu": round(b, 2),
                "chrf": round(c, 2),
                **_passes([a[(q, inter, intra)][0] for a in anchors]),
            }
        )
    return rows


def _passes(sent_per_s: list[float]) -> dict:
    """Every timed pass of a translation row when there were several (rounds with --anchors)."""
    return {"passes_sent_per_s": " / ".join(map(str, sent_per_s))} if len(sent_per_s) > 1 else {}


# -- quality ----------------------------------------------------------------------------------


def averaged(run: Path) -> str:
    """What a recipe run's averaged.pt holds, and how it was chosen (``seq2seq average``)."""
    from seq2seq.train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(run / "averaged.pt")
    files = [Path(f).name for f in ckpt.get("averaged", [])]
    text = f"average of {', '.join(files)}" if files else "best.pt"
    choice = ckpt.get("average_choice")
    if choice:
        text += f", chosen by val {choice['metric']}: " + ", ".join(
            f"last {k} {v:.2f}" for k, v in choice["scores"].items()
        )
    return text


def train_time(seconds: Path) -> dict:
    """A quality row's training time from a run's ``train_seconds`` file: the seconds, which the
    bars judge, and the minutes to a tenth, which the table prints."""
    secs = int(seconds.read_text())
    return {"train_minutes": round(secs / 60, 1), "train_seconds": secs}


def quality_rows(args: argparse.Namespace) -> list[dict]:
    rows = []
    for run in sorted(Path(args.recipe_runs).glob("*")):
        seconds = run / "train_seconds"
        for split in ("test_2016_flickr", "val", "dev"):
            f = run / f"{split}.json"
            if not f.exists() or not seconds.exists():
                continue
            r = json.loads(f.read_text())
            row = {
                "section": "quality",
                "toolkit": "seq2seq",
                "model": run.name,
                "setting": f"{split}, beam 5, {averaged(run)}",
                **train_time(seconds),
                "bleu": round(r["bleu"], 2),
                "chrf": round(r["chrf"], 2),
                "signature": r["bleu_signature"],
            }
            if "rouge_refs" in r:
                row.update(
                    {f"{k}_ann_best": round(v, 2) for k, v in r["rouge_refs"]["best"].items()}
                )
                row.update(
                    {f"{k}_ann_mean": round(v, 2) for k, v in r["rouge_refs"]["mean"].items()}
                )
            if "rouge" in r:
                row.update({k: round(v, 2) for k, v in r["rouge"].items()})
            rows.append(row)
    return rows


# -- OpenNMT-py trained like our recipe -------------------------------------------------------


def anchor_quality_rows(args: argparse.Namespace) -> list[dict]:
    """OpenNMT-py with our recipe's settings, trained for --quality-minutes (once), averaged,
    beam 5 on test_2016_flickr and scored like ours (the recipes' rows come from ``quality``)."""
    anchors_ready()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(args.threads),
        "MKL_NUM_THREADS": str(args.threads),
        "CUDA_VISIBLE_DEVICES": "",
        "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1",  # OpenNMT-py 3.5.1 pickles its options
    }
    rows = []
    for pair in args.quality_pairs:
        s, _, t = pair.partition("-")
        if s not in ("en", "de") or t not in ("en", "de") or s == t:
            raise SystemExit(f"--quality-pairs: expected en-de or de-en, got {pair!r}")
        name = f"onmt_recipe_{s}_{t}"
        run = WORK / "runs" / name
        config = WORK / "runs" / f"{name}.yaml"
        text = (HERE / "onmt_transformer_recipe.yaml").read_text()
        config.write_text(text.replace("SRC", s).replace("TGT", t))
        seconds = run / "train_seconds"
        if not seconds.exists():
            run.mkdir(parents=True, exist_ok=True)
            start = time.time()
            with open(WORK / "logs" / f"{name}.log", "w") as log:
                subprocess.run(
                    ["timeout", "-s", "INT", str(round(args.quality_minutes * 60)),
                     str(VENV / "bin" / "onmt_train"), "-config", str(config)],
                    cwd=WORK, env=env, stdout=log, stderr=subprocess.STDOUT, check=False,
                )  # fmt: skip
            elapsed = round(time.time() - start)
        else:
            elapsed = None
        ckpts = sorted(run.glob("model_step_*.pt"), key=lambda p: int(p.stem.split("_")[-1]))
        if not ckpts:
            raise SystemExit(f"{name}: OpenNMT-py left no checkpoint; see {WORK}/logs/{name}.log")
        if elapsed is not None:  # only a run that left checkpoints counts as trained
            seconds.write_text(str(elapsed))
        # like our recipes: the last 1, 2, 3 and 5 checkpoints averaged, the best on val kept
        val = {}
        for n in [n for n in AVERAGE_CHOICES if n <= len(ckpts)] or [len(ckpts)]:
            avg = run / f"averaged-{n}.pt"
            if not avg.exists():
                sh([str(VENV / "bin" / "onmt_average_models"), "-models",
                    *map(str, ckpts[-n:]), "-output", str(avg)], env=env)  # fmt: skip
            hyp = onmt_decode(avg, WORK / "data" / f"val.bpe.{s}", run / f"val-{n}.bpe.{t}", env)
            val[n] = bleu_of_bpe(hyp, f"{args.data}/multi30k/val.{t}")[0]
        n = max(val, key=val.get)
        hyp = onmt_decode(
            run / f"averaged-{n}.pt",
            WORK / "data" / f"test_2016_flickr.bpe.{s}",
            run / f"test_2016_flickr.bpe.{t}",
            env,
        )
        b, c = bleu_of_bpe(hyp, f"{args.data}/multi30k/test_2016_flickr.{t}")
        rows.append(
            {
                "section": "quality",
                "toolkit": "OpenNMT-py 3.5.1",
                "model": name,
                "setting": f"test_2016_flickr, beam 5, average of the last {n} checkpoints "
                f"(step {ckpts[-1].stem.split('_')[-1]}), chosen by val BLEU: "
                + ", ".join(f"last {k} {v:.2f}" for k, v in val.items()),
                **train_time(seconds),
                "bleu": round(b, 2),
                "chrf": round(c, 2),
            }
        )
    return rows


def onmt_decode(model: Path, src: Path, out: Path, env: dict) -> Path:
    """onmt_translate as the anchors decode: beam 5, batch 32 sentences, at most 100 tokens."""
    sh([str(VENV / "bin" / "onmt_translate"), "-model", str(model), "-src", str(src),
        "-output", str(out), "-beam_size", "5", "-batch_size", "32", "-batch_type", "sents",
        "-max_length", "100", "-max_length_ratio", "0"], env=env)  # fmt: skip
    return out


# -- the bars of issue 7, from the rows ---------------------------------------------------------

QUALITY_SECONDS = 3600  # "trained within 60 minutes of wall time": the whole training command
QUALITY_BARS = {  # recipe run -> (bar, least test_2016_flickr BLEU)
    "multi30k_en_de_transformer": ("en->de Transformer, 60 min", 36.0),
    "multi30k_en_de_rnn": ("en->de RNN, 60 min", 33.0),
    "multi30k_en_de_rnn_small": ("en->de RNN, 60 min", 33.0),
    "multi30k_de_en_transformer": ("de->en Transformer, 60 min", 38.0),
}


def _bar(  # noqa: ANN003
    bar: str, ours: str, anchor: str, ok: bool, ratio: float | None = None, **kw
) -> dict:
    row = {"section": "bars", "bar": bar, "ours": ours, "anchor": anchor}
    if ratio is not None:
        row["ratio"] = round(ratio, 2)
    return {**row, **kw, "verdict": "pass" if ok else "fail"}


def _per_round(ours: dict, anchor: dict) -> dict:
    """Ours against the anchor pass by pass, where both ran in the same rounds (--anchors)."""
    a, b = (r.get("passes_sent_per_s", "").split(" / ") for r in (ours, anchor))
    if len(a) < 2 or len(a) != len(b):
        return {}
    return {"per_round": " / ".join(f"{float(x) / float(y):.2f}x" for x, y in zip(a, b))}


def bar_rows(rows: list[dict]) -> list[dict]:
    """Every bar of issue 7 that ``rows`` (this invocation's, or saved JSON: --bars) can decide:
    ours, the anchor, the ratio and the verdict. Translation compares the like-for-like model
    (the reference Transformer, early stop, full vocabulary), each side in its fastest layout."""
    bars = []
    train = [r for r in rows if r["section"] == "train"]
    for shape in ("rnn", "transformer"):
        for precision, least in (("float32", 1.2), ("bf16", 2.0)):
            r = next(
                (x for x in train if x["model"] == shape and "vs_anchor" in x
                 and x["setting"].startswith(precision + ",")), None,
            )  # fmt: skip
            onmt = next((x for x in train if x["model"] == shape
                         and x["toolkit"].startswith("OpenNMT")), None)  # fmt: skip
            if r and onmt:
                ratio = r["tgt_tok_per_s"] / onmt["tgt_tok_per_s"]
                bars.append(
                    _bar(f"train {precision} {shape} >= {least:g}x OpenNMT-py",
                         f"{r['tgt_tok_per_s']:,.0f} tok/s", f"{onmt['tgt_tok_per_s']:,.0f} tok/s",
                         ratio >= least, ratio)
                )  # fmt: skip
    same = {x["setting"].split(",")[0]: x for x in train if "dev_bleu" in x}
    if {"float32", "bf16"} <= same.keys():
        b, f = same["bf16"], same["float32"]
        bars.append(
            _bar(f"bf16 dev BLEU after the same {b['setting'].split(', ')[1]} >= float32's",
                 f"{b['dev_bleu']} ({b['steps']} updates)",
                 f"float32 {f['dev_bleu']} ({f['steps']} updates)",
                 b["dev_bleu"] >= f["dev_bleu"])
        )  # fmt: skip
    tr = [r for r in rows if r["section"] == "translate"]

    def best(candidates: list[dict]) -> dict | None:
        return max(candidates, key=lambda r: r["sent_per_s"], default=None)

    def ours(precision: str) -> dict | None:
        """The anchors' stopping rule (early stop) where the rows have it; rows of older runs,
        before it, carry no rule in their setting."""
        mine = [r for r in tr if r["toolkit"] == "seq2seq" and r["model"].startswith("reference")
                and "shortlist" not in r["setting"]]  # fmt: skip
        for rule in ("beam 5, early stop, ", "beam 5, "):
            found = best([r for r in mine if r["setting"].startswith(rule + precision + ",")])
            if found:
                return found
        return None

    onmt = best([r for r in tr if r["toolkit"].startswith("onmt_translate")])
    ct2 = best(
        [r for r in tr if r["toolkit"].startswith("CTranslate2") and ", int8," in r["setting"]]
    )
    f32, i8 = ours("float32"), ours("int8")
    for mine, theirs, precision, name, least in (
        (f32, onmt, "float32", "onmt_translate", 2.0),
        (i8, ct2, "int8", "CTranslate2 int8", 1.0),
    ):
        if mine and theirs:
            ratio = mine["sent_per_s"] / theirs["sent_per_s"]
            layout = theirs["setting"].rsplit(", ", 1)[-1]
            bars.append(
                _bar(f"beam 5 {precision} >= {least:g}x {name}",
                     f"{mine['sent_per_s']} sent/s ({mine['setting'].split(precision + ', ')[-1]})",
                     f"{theirs['sent_per_s']} sent/s ({layout})", ratio >= least, ratio,
                     **_per_round(mine, theirs))
            )  # fmt: skip
    if i8:
        setting = i8["setting"].replace(", int8,", ", float32,")
        same = [r for r in tr if r["model"] == i8["model"] and r["setting"] == setting]
        twin = same[0] if same else f32
        if twin:
            loss = twin["bleu"] - i8["bleu"]
            bars.append(
                _bar("int8 loses <= 0.5 BLEU against our float32", f"{i8['bleu']}",
                     f"float32 {twin['bleu']}", loss <= 0.5, loss_bleu=round(loss, 2))
            )  # fmt: skip
    tests = {r["model"]: r for r in rows if r["section"] == "quality"
             and r["setting"].startswith("test_2016_flickr")}  # fmt: skip
    for model, (bar, least) in QUALITY_BARS.items():
        if model in tests:
            r = tests[model]
            # rows saved before train_seconds have the minutes, to a tenth
            within = r.get("train_seconds", r["train_minutes"] * 60) <= QUALITY_SECONDS
            row = _bar(f"{bar}: test_2016_flickr BLEU >= {least:g}",
                       f"{r['bleu']} ({r['train_minutes']} min)", "", r["bleu"] >= least and within)  # fmt: skip
            if not within:
                row["verdict"] += f" (over {QUALITY_SECONDS // 60} min)"
            bars.append(row)
    for model, r in tests.items():
        if model.startswith("onmt_recipe_"):
            pair = model.removeprefix("onmt_recipe_")
            mine = tests.get(f"multi30k_{pair}_transformer")
            if mine:
                bars.append(
                    _bar(f"{pair.replace('_', '->')} Transformer above OpenNMT-py's, same time",
                         f"{mine['bleu']} ({mine['train_minutes']} min)",
                         f"{r['bleu']} ({r['train_minutes']} min)", mine["bleu"] > r["bleu"])
                )  # fmt: skip
    return bars


def print_bars(bars: list[dict]) -> None:
    print("| bar | ours | anchor | ratio | per round | verdict |")
    print("|---|---|---|---:|---|---|")
    for b in bars:
        ratio = f"{b['ratio']:.2f}x" if "ratio" in b else ""
        if "loss_bleu" in b:
            ratio = f"int8 {0.0 - b['loss_bleu']:+.2f} BLEU"
        cells = [b["bar"], b["ours"], b["anchor"], ratio, b.get("per_round", ""), b["verdict"]]
        print("| " + " | ".join(cells) + " |")


def fmt(r: dict) -> str:
    keys = [
        "tgt_tok_per_s",
        "passes_tok_per_s",
        "passes_sent_per_s",
        "peak_rss_gib",
        "vs_anchor",
        "steps",
        "dev_bleu",
        *TRANSLATE_KEYS,
        "train_minutes",
        "rouge1",
        "rouge2",
        "rougeL",
        "rouge1_ann_best",
        "rouge2_ann_best",
        "rougeL_ann_best",
    ]
    return ", ".join(
        f"{k} {r[k]:,}" if isinstance(r[k], (int, float)) else f"{k} {r[k]}"
        for k in keys
        if r.get(k) is not None
    )


def _updates(value: str) -> str:
    """--anchor-translate-steps: a positive number of updates, or 'ours'."""
    if value != "ours" and not (value.isdigit() and int(value) > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number or 'ours', got {value!r}")
    return value


def _kind(row: dict) -> tuple:
    """What --bars takes from the first file that has it: a section's rows of one toolkit, and
    for quality, of one recipe run."""
    return (
        row["section"],
        row.get("toolkit"),
        row.get("model") if row["section"] == "quality" else None,
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--sections",
        nargs="+",
        default=["train", "translate", "quality"],
        choices=["train", "translate", "quality", "anchor-quality"],
    )
    p.add_argument("--anchors", action="store_true", help="run the anchors in the same invocation")
    p.add_argument("--seconds", type=int, default=285, help="anchor training time per shape")
    p.add_argument(
        "--steps", type=int, default=100, help="timed steps per shape and precision (ours)"
    )
    p.add_argument(
        "--anchor-translate-steps",
        type=_updates,
        help="the OpenNMT-py model that the translation rows decode: its checkpoint after this "
        "many updates (trained now if the anchors' work directory lacks it), or 'ours' for as "
        "many updates as our reference model made, instead of the newest checkpoint of a "
        "--seconds run (OpenNMT-py spends ~40 s loading before its first update, so it makes "
        "fewer updates than ours in the same time; both labels give them)",
    )
    p.add_argument(
        "--shortlist",
        action="store_true",
        help="translate rows also over a vocabulary shortlist (seq2seq shortlist, built from "
        "the Multi30k training text; an approximation: compare the BLEU)",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--skip-recipe-model",
        action="store_true",
        help="translate rows of the reference model only, even where --recipe-runs has the "
        "en->de recipe model",
    )
    p.add_argument(
        "--recipe-runs",
        default="runs/recipes",
        help="where the recipe runs are (the recipes' RUNS): the quality rows, and the recipe "
        "model of the translate rows",
    )
    p.add_argument("--beam-sizes", type=int, nargs="+", default=[5, 1], help="our translation rows")
    p.add_argument(
        "--engines",
        nargs="+",
        default=["eager", "compiled"],
        choices=["eager", "compiled"],
        help="our translation engines (translate_speed.py --engines)",
    )
    p.add_argument(
        "--layouts",
        nargs="+",
        default=["1x2", "2x1", "2w1"],
        choices=["1x2", "2x1", "2w1"],
        help="our translation layouts: 1 process x 2 threads, 2 processes x 1 thread, one "
        "process with 2 decoding workers of 1 thread (translate_speed.py --layouts)",
    )
    p.add_argument(
        "--stops",
        nargs="+",
        default=["early"],
        choices=["early", "full"],
        help="our beam search's stopping rule: early = a sentence ends when its best continuation "
        "ends (as onmt_translate and CTranslate2 decode); full = when beam-size hypotheses ended",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="translation timings: best of N runs, ours and the anchors' alike (with --anchors, "
        "N rounds of one run each, ours then theirs)",
    )
    p.add_argument("--quality-minutes", type=float, default=60, help="anchor-quality training")
    p.add_argument("--quality-pairs", nargs="+", default=["en-de"], help="e.g. en-de de-en")
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--out", default="runs/bench")
    p.add_argument("--json", default="runs/bench/harness.json")
    p.add_argument(
        "--bars",
        nargs="+",
        metavar="JSON",
        help="measure nothing: print the bars of issue 7 that these saved row files (of one "
        "machine) decide; each kind of row (a section's rows of one toolkit; for quality, of "
        "one recipe run) comes from the first file that has it, so a later run's file goes first",
    )
    args = p.parse_args()
    if args.bars:
        rows = []
        for f in args.bars:
            try:
                data = json.loads(Path(f).read_text())
            except (OSError, ValueError) as e:
                raise SystemExit(f"--bars {f}: {e}") from None
            if not isinstance(data, list) or not all(
                isinstance(r, dict) and "section" in r for r in data
            ):
                raise SystemExit(
                    f"--bars {f}: expected a list of rows (objects with a 'section'), "
                    "as --json writes"
                )
            kinds = {_kind(r) for r in rows}  # earlier files'
            rows += [r for r in data if _kind(r) not in kinds]
        print_bars(bar_rows(rows))
        return
    Path(args.out).mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for section, fn in (
        ("train", train_rows),
        ("translate", translate_rows),
        ("quality", quality_rows),
        ("anchor-quality", anchor_quality_rows),
    ):
        if section in args.sections:
            rows += fn(args)
            Path(args.json).write_text(json.dumps(rows, indent=1))
    print("| section | toolkit | model | setting | result |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['section']} | {r['toolkit']} | {r['model']} | {r['setting']} | {fmt(r)} |")
    bars = bar_rows(rows)
    if bars:
        print()
        print_bars(bars)
        Path(args.json).write_text(json.dumps(rows + bars, indent=1))
    print(f"rows: {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
