"""End to end through the command line: generate a task, train briefly, translate, evaluate."""

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

import seq2seq
from seq2seq.cli import main
from seq2seq.search import SearchOptions

from .conftest import compiles

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("cli")
    data = work / "data" / "reverse"
    assert (
        main(
            [
                "data",
                "task",
                "reverse",
                "--out",
                str(data),
                "--train",
                "400",
                "--dev",
                "20",
                "--test",
                "20",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    run = work / "run"
    code = main(
        [
            "train",
            str(CONFIGS / "reverse_rnn.yaml"),
            "--out",
            str(run),
            "-q",
            "--set",
            f"data.train={data}/train",
            "--set",
            f"data.dev={data}/dev",
            "--set",
            "train.max_steps=6",
            "--set",
            "train.max_minutes=null",
            "--set",
            "train.validate_every=3",
            "--set",
            "train.log_every=2",
            "--set",
            "model.encoder.hidden_size=16",
            "--set",
            "model.decoder.hidden_size=32",
        ]
    )
    assert code == 0
    return work, data, run


def test_run_directory_contents(trained):
    _, _, run = trained
    for name in (
        "best.pt",
        "last.pt",
        "config.yaml",
        "vocab.src.txt",
        "vocab.tgt.txt",
        "train.log",
        "metrics.jsonl",
    ):
        assert (run / name).is_file(), name
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e["kind"] == "valid"] == [3, 6]
    assert [e["step"] for e in events if e["kind"] == "train"] == [2, 4, 6]


def test_resuming_with_another_model_is_refused(trained, capsys):
    _, data, run = trained
    code = main(
        [
            "train",
            str(CONFIGS / "reverse_rnn.yaml"),
            "--out",
            str(run),
            "-q",
            "--set",
            f"data.train={data}/train",
            "--set",
            f"data.dev={data}/dev",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot resume: model.encoder differs from the run's checkpoint" in err
    assert "pass --restart to start over" in err


def test_translate_file_and_python_api_agree(trained, capsys):
    work, data, run = trained
    out = work / "hyp.txt"
    assert (
        main(
            [
                "translate",
                str(run / "last.pt"),
                "--input",
                f"{data}/test.src",
                "--output",
                str(out),
                "--beam-size",
                "3",
                "--batch-size",
                "7",
            ]
        )
        == 0
    )
    lines = out.read_text().splitlines()
    sources = (data / "test.src").read_text().splitlines()
    assert len(lines) == len(sources) == 20
    api = seq2seq.load(run / "last.pt").translate(sources, beam_size=3, batch_size=5)
    assert api == lines  # order restored, batch size changes nothing


def _translate_test_file(run, data, out, *extra):
    """`seq2seq translate` of the test split in batches of 3, into ``out``; returns its text."""
    args = ["translate", str(run / "last.pt"), "--input", f"{data}/test.src"]
    assert main([*args, "--output", str(out), "--batch-size", "3", "-q", *extra]) == 0
    return out.read_text()


def test_workers_change_no_translation_score_or_seeded_sample(
    trained, tmp_path, monkeypatch, capsys
):
    work, data, run = trained

    def cli(*extra):
        return _translate_test_file(run, data, tmp_path / "hyp.txt", *extra)

    import seq2seq.translator as translator_mod

    names = set()
    search = translator_mod.search

    def spy(*args, **kwargs):
        names.add(threading.current_thread().name)
        return search(*args, **kwargs)

    beam = cli("--beam-size", "3", "--n-best", "2")  # 20 sentences: 7 batches
    monkeypatch.setattr(translator_mod, "search", spy)
    assert cli("--beam-size", "3", "--n-best", "2", "--workers", "3", "--threads", "1") == beam
    assert names and all(n.startswith("decode") for n in names) and len(names) <= 3
    sample = ["--sample", "--num-samples", "2", "--temperature", "2.0", "--seed", "5"]
    assert cli(*sample, "--workers", "2") == cli(*sample)  # batch i draws from its own seed
    assert cli(*sample) != cli(*sample[:-1], "6")

    assert main(["translate", str(run / "last.pt"), "--workers", "0"]) != 0
    assert "--workers: expected an integer >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        seq2seq.load(run / "last.pt").hypotheses(["abc"], workers=0)


def test_processes_change_no_translation_or_seeded_sample(trained, tmp_path, monkeypatch, capsys):
    work, data, run = trained

    def cli(*extra):
        return _translate_test_file(run, data, tmp_path / "hyp.txt", *extra)

    import seq2seq.translator as translator_mod

    calls = []
    search = translator_mod.search

    def spy(*args, **kwargs):
        calls.append(1)
        return search(*args, **kwargs)

    beam = cli("--beam-size", "3", "--n-best", "2")
    sample = ["--sample", "--num-samples", "2", "--temperature", "2.0", "--seed", "5"]
    sampled = cli(*sample)
    monkeypatch.setattr(translator_mod, "search", spy)  # this process's search only
    assert cli("--beam-size", "3", "--n-best", "2", "--processes", "2", "--threads", "1") == beam
    assert cli(*sample, "--processes", "2") == sampled  # batch i draws from its own seed
    assert not calls  # every batch was decoded in the spawned processes

    assert main(["translate", str(run / "last.pt"), "--processes", "0"]) != 0
    assert "--processes: expected an integer >= 1, got 0" in capsys.readouterr().err
    assert main(["translate", str(run / "last.pt"), "--processes", "2", "--workers", "2"]) != 0
    assert "--workers and --processes: choose one" in capsys.readouterr().err
    translator = seq2seq.load(run / "last.pt")
    translator.origin = None  # as if built from a model in memory
    with pytest.raises(ValueError, match=r"processes > 1 needs a translator loaded from files"):
        translator.hypotheses(["abc"], processes=2)


def test_parallel_decoding_deals_the_longest_batches_first(trained, monkeypatch):
    """With several decoding threads or processes, batches are handed out longest first, so
    that the last ones dealt are short and the workers finish together; the output is the
    same as decoding them one after the other."""
    from concurrent.futures import Future

    import seq2seq.processes as processes_mod
    import seq2seq.translator as translator_mod

    _, data, run = trained
    sources = (data / "test.src").read_text().splitlines()
    translator = seq2seq.load(run / "last.pt")
    longest = {i: len(translator.source_tokens(s)) for i, s in enumerate(sources)}
    options = SearchOptions(beam_size=2)
    alone = translator.hypotheses(sources, options, batch_size=3)
    dealt = []

    class Inline:  # runs each job when it is handed out, and notes the batch's longest source
        def __init__(self, *args, initializer=None, initargs=(), **kwargs):
            if initializer is not None:
                initializer(*initargs)

        def map(self, fn, items):
            for i in items:
                idx, nbest = fn(i)
                dealt.append(max(longest[j] for j in idx))
                yield idx, nbest

        def submit(self, fn, src, *args):
            dealt.append(max(len(s) for s in src))
            future = Future()
            future.set_result(fn(src, *args))
            return future

        def shutdown(self, **kwargs):
            pass

    monkeypatch.setattr(translator_mod, "ThreadPoolExecutor", Inline)
    monkeypatch.setattr(processes_mod, "ProcessPoolExecutor", Inline)
    for how in ({"workers": 2}, {"processes": 2}):
        dealt.clear()
        assert translator.hypotheses(sources, options, batch_size=3, **how) == alone
        assert len(dealt) == 7  # 20 sentences in batches of 3
        assert dealt == sorted(dealt, reverse=True) and dealt[0] > dealt[-1], (how, dealt)


def test_translate_speed_deals_each_batch_to_one_process(trained, monkeypatch):
    """benchmarks/translate_speed.py with two processes: dealt batch by batch as they finish
    (the default) or in fixed shares, every sentence is translated once, as one process
    translates it, and its tokens are counted once."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import translate_speed

    _, data, run = trained
    sources = (data / "test.src").read_text().splitlines()
    options = SearchOptions(beam_size=2)
    translator = seq2seq.load(run / "last.pt")
    alone = translator.hypotheses(sources, options, batch_size=3)
    texts = [translator.detokenize(h[0].tokens) for h in alone]
    tokens = sum(len(h[0].tokens) + 1 for h in alone)
    for deal in ("batches", "shares"):
        seconds, hyps, counted = translate_speed.timed(
            str(run / "last.pt"), "float32", "eager", sources, options, 3, 2, 1, 2, deal=deal
        )
        assert (hyps, counted) == (texts, tokens), deal
        assert len(seconds) == 2 and min(seconds) > 0  # each pass's time


def test_translate_stdin_to_stdout_via_console_script(trained):
    _, _, run = trained
    proc = subprocess.run(
        [sys.executable, "-m", "seq2seq", "translate", str(run), "--beam-size", "1"],
        input="abc\n\nxyz\n",
        capture_output=True,
        text=True,
        check=True,
    )
    assert len(proc.stdout.splitlines()) == 3  # an empty line still gets an output line


def test_evaluate_json(trained, capsys):
    _, data, run = trained
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                str(run),
                "--src",
                f"{data}/test.src",
                "--ref",
                f"{data}/test.tgt",
                "--json",
                "--beam-size",
                "2",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {
        "bleu",
        "chrf",
        "ter",
        "exact_match",
        "wer",
        "cer",
        "ppl",
        "bleu_signature",
        "chrf_signature",
        "ter_signature",
        "sentences",
    }
    assert result["sentences"] == 20
    assert result["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")


def test_evaluate_rouge_against_extra_references(trained, tmp_path, capsys):
    _, data, run = trained
    refs = (Path(data) / "test.tgt").read_text().splitlines()
    (tmp_path / "same").write_text("".join(r + "\n" for r in refs))
    (tmp_path / "other").write_text("zzz\n" * len(refs))
    (tmp_path / "short").write_text("zzz\n")
    args = ["evaluate", str(run), "--src", f"{data}/test.src", "--ref", f"{data}/test.tgt"]
    capsys.readouterr()
    assert (
        main([*args, "--json", "--rouge-ref", str(tmp_path / "same"), str(tmp_path / "other")]) == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["rouge"] == result["rouge_refs"]["best"] == result["rouge_refs"]["each"][0]
    assert result["rouge_refs"]["each"][1] == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    assert result["rouge_refs"]["mean"]["rouge1"] == pytest.approx(result["rouge"]["rouge1"] / 2)
    assert main([*args, "--rouge-ref", str(tmp_path / "short")]) == 2
    assert f"--rouge-ref {tmp_path / 'short'} has 1 lines but --src" in capsys.readouterr().err


def test_missing_checkpoint_error(tmp_path, capsys):
    assert main(["translate", str(tmp_path / "nothing")]) == 2
    assert "no such checkpoint file or run directory" in capsys.readouterr().err


def test_every_subcommand_has_help():
    for cmd in (
        ["train"],
        ["translate"],
        ["evaluate"],
        ["score"],
        ["average"],
        ["plot"],
        ["data", "task"],
        ["quickstart"],
        [],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "seq2seq", *cmd, "--help"], capture_output=True, text=True
        )
        assert proc.returncode == 0 and "usage: seq2seq" in proc.stdout


def _translate(run, *args, stdin="abc\nxyz\nqq\n"):
    proc = subprocess.run(
        [sys.executable, "-m", "seq2seq", "translate", str(run), *args],
        input=stdin,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_n_best_lines_with_scores(trained):
    _, _, run = trained
    for early in ([], ["--early-stop"]):  # early stop still waits for n-best hypotheses
        out = _translate(run, "--beam-size", "4", "--n-best", "3", *early).splitlines()
        assert len(out) == 9  # 3 inputs x 3 hypotheses
        for group in (out[0:3], out[3:6], out[6:9]):
            scores = [float(line.split("\t")[1]) for line in group]
            assert scores == sorted(scores, reverse=True)


def test_json_output_with_attention(trained):
    _, _, run = trained
    lines = _translate(run, "--json", "--with-attention", "--n-best", "2", "--beam-size", "2")
    objs = [json.loads(line) for line in lines.splitlines()]
    assert [o["source"] for o in objs] == ["abc", "xyz", "qq"]
    first = objs[0]
    assert {"translation", "score", "log_prob", "tokens", "attention", "n_best"} <= set(first)
    assert len(first["n_best"]) == 2 and first["n_best"][0]["translation"] == first["translation"]
    assert len(first["attention"]) == len(first["tokens"]) + 1  # one row per step, EOS included
    assert len(first["attention"][0]) == 4  # a b c <eos>


def test_sampling_is_repeatable_with_a_seed(trained):
    _, _, run = trained
    args = ["--sample", "--num-samples", "3", "--temperature", "2.0", "--seed"]
    a = _translate(run, *args, "7")
    assert a == _translate(run, *args, "7")
    assert len(a.splitlines()) == 9
    assert a != _translate(run, *args, "8")
    greedy = _translate(run, "--beam-size", "1")
    top1 = _translate(run, "--sample", "--top-k", "1", "--seed", "1")
    assert top1 == greedy


def test_interactive_answers_each_line(trained):
    _, _, run = trained
    assert len(_translate(run, "--interactive", "--beam-size", "1").splitlines()) == 3


def test_ensemble_and_quantized_translation(trained):
    _, _, run = trained
    single = _translate(run / "last.pt", "--beam-size", "1")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "seq2seq",
            "translate",
            str(run / "last.pt"),
            str(run / "last.pt"),
            "--beam-size",
            "1",
        ],
        input="abc\nxyz\nqq\n",
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout == single  # an ensemble of one model twice is that model
    assert len(_translate(run, "--quantize", "int8").splitlines()) == 3


@compiles
def test_compiled_translation_matches_eager(trained):
    _, _, run = trained  # an RNN with attention: compile_decoding is not Transformer-only
    assert _translate(run, "--compile") == _translate(run)


def test_ensemble_refuses_different_vocabularies(trained, tmp_path, capsys):
    work, _, run = trained
    other = tmp_path / "data"
    assert (
        main(
            [
                "data",
                "task",
                "dates",
                "--out",
                str(other),
                "--train",
                "50",
                "--dev",
                "5",
                "--test",
                "5",
            ]
        )
        == 0
    )
    code = main(
        [
            "train",
            str(CONFIGS / "dates_rnn.yaml"),
            "--out",
            str(tmp_path / "r"),
            "-q",
            "--set",
            f"data.train={other}/train",
            "--set",
            f"data.dev={other}/dev",
            "--set",
            "train.max_steps=1",
            "--set",
            "model.encoder.hidden_size=8",
            "--set",
            "model.decoder.hidden_size=8",
        ]
    )
    assert code == 0
    capsys.readouterr()
    assert main(["translate", str(run), str(tmp_path / "r"), "--input", f"{other}/dev.src"]) == 2
    assert "cannot ensemble with" in capsys.readouterr().err


def test_score_matches_beam_scores(trained, capsys):
    work, data, run = trained
    hyp_file = work / "n1.txt"
    capsys.readouterr()
    assert (
        main(
            [
                "translate",
                str(run),
                "--input",
                f"{data}/test.src",
                "--json",
                "--beam-size",
                "3",
                "--output",
                str(hyp_file),
            ]
        )
        == 0
    )
    objs = [json.loads(line) for line in hyp_file.read_text().splitlines()]
    refs = work / "hyp.tgt"
    refs.write_text("".join(o["translation"] + "\n" for o in objs))
    capsys.readouterr()
    assert main(["score", str(run), "--src", f"{data}/test.src", "--ref", str(refs)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == len(objs)
    for line, obj in zip(lines, objs):
        log_prob, ppl = map(float, line.split("\t"))
        assert log_prob == pytest.approx(obj["log_prob"], abs=1e-3)
        n = len(obj["tokens"]) + 1
        assert ppl == pytest.approx(__import__("math").exp(-log_prob / n), rel=1e-4)
    assert "perplexity" in captured.err


def test_translate_attention_dir_writes_png_and_json_per_sentence(trained, tmp_path):
    _, _, run = trained
    inp = tmp_path / "in.txt"
    inp.write_text("abc\nhello\n", encoding="utf-8")
    out_dir = tmp_path / "att"
    out, plain = tmp_path / "out.txt", tmp_path / "plain.txt"
    args = ["translate", str(run), "--input", str(inp), "--beam-size", "2", "--output"]
    assert main([*args, str(out), "--attention", str(out_dir)]) == 0
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "0001.json",
        "0001.png",
        "0002.json",
        "0002.png",
    ]
    for n, src in ((1, "abc"), (2, "hello")):
        assert (out_dir / f"{n:04d}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        record = json.loads((out_dir / f"{n:04d}.json").read_text(encoding="utf-8"))
        assert record["source"] == src
        assert record["src_tokens"] == [*src, "<eos>"]
        assert record["tgt_tokens"][-1] == "<eos>"
        att = record["attention"]
        assert len(att) == len(record["tgt_tokens"])
        assert all(len(row) == len(src) + 1 for row in att)
        assert all(abs(sum(row) - 1) < 1e-4 for row in att)
    assert main([*args, str(plain)]) == 0
    assert out.read_text() == plain.read_text()  # the translations themselves are unchanged


def test_translate_alignment_format(trained, tmp_path, capsys):
    _, _, run = trained
    inp = tmp_path / "in.txt"
    inp.write_text("abcd\n\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["translate", str(run), "--input", str(inp), "--alignment"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    text, pairs = lines[0].split(" ||| ")
    assert len(pairs.split()) == len(text)  # one pair per output character
    for k, pair in enumerate(pairs.split()):
        i, j = map(int, pair.split("-"))
        assert j == k and 0 <= i < 4
    assert lines[1].endswith(" ||| ")  # empty source: nothing to align to


@pytest.fixture
def unk_model(trained, tmp_path):
    """The trained model, changed so that every output token is <unk> (until the length limit)."""
    from seq2seq.data.vocab import UNK_ID
    from seq2seq.train.checkpoint import load_checkpoint, save_checkpoint

    _, _, run = trained
    ckpt = load_checkpoint(run / "last.pt")
    ckpt["model"]["decoder.output.bias"][UNK_ID] = 1000.0
    path = tmp_path / "unk.pt"
    save_checkpoint(ckpt, path)
    return path


def test_translate_replace_unk_copies_the_most_attended_source_token(unk_model, tmp_path, capsys):
    inp = tmp_path / "in.txt"
    inp.write_text("xyZQ\n", encoding="utf-8")  # Z and Q are in no vocabulary of the model
    capsys.readouterr()
    args = ["translate", str(unk_model), "--input", str(inp), "--beam-size", "1"]
    assert main(args) == 0
    assert "<unk>" in capsys.readouterr().out
    assert main([*args, "--replace-unk", "--alignment"]) == 0
    text, pairs = capsys.readouterr().out.rstrip("\n").split(" ||| ")
    assert "<unk>" not in text and len(text) == len(pairs.split()) >= 10
    for pair in pairs.split():
        i, j = map(int, pair.split("-"))
        assert text[j] == "xyZQ"[i]


def test_plot_learning_curves(trained, capsys):
    work, _, run = trained
    out = work / "curves.png"
    assert main(["plot", str(run), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 10_000  # three panels with lines, not an empty canvas


def test_tensorboard_scalars_and_attention_image(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, _, run = trained
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    tags = events.Tags()
    assert {"train/loss", "train/lr", "valid/loss", "valid/exact_match"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("train/loss")] == [2, 4, 6]
    assert [e.step for e in events.Images("valid/attention")] == [3, 6]


def test_rouge_known_values_and_best_reference():
    from seq2seq import metrics

    one = metrics.rouge(["the cat sat"], [["the cat sat on the mat"]])
    assert one["rouge1"] == pytest.approx(100 * 2 * 1.0 * 0.5 / 1.5)
    assert one["rouge2"] == pytest.approx(100 * 2 * 1.0 * 0.4 / 1.4)
    best = metrics.rouge(["the cat sat"], [["the cat sat on the mat"], ["The cat sat."]])
    assert best == {"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0}
    with pytest.raises(ValueError, match="1 hypotheses but 2 references"):
        metrics.rouge(["x"], [["a", "b"]])


def test_shortlist_command_and_shortlisted_translation(trained, tmp_path, capsys):
    """`seq2seq shortlist` on the training text, then --shortlist: a shortlist that allows every
    token translates as the full vocabulary does; a tight one (top-1 translations and namesakes,
    no frequent tokens) writes only tokens it allows; one built for other vocabularies is
    refused with the file named."""
    from seq2seq.shortlist import Shortlist

    work, data, run = trained
    sources = (data / "test.src").read_text().splitlines()
    full = seq2seq.load(run).translate(sources, beam_size=3)
    args = ["--src", f"{data}/train.src", "--tgt", f"{data}/train.tgt"]
    hyp = tmp_path / "hyp.txt"
    cmd = ["translate", str(run), "--input", f"{data}/test.src", "--output", str(hyp)]
    assert main(["shortlist", str(run), *args, "--out", str(tmp_path / "all.pt")]) == 0
    assert main([*cmd, "--beam-size", "3", "--shortlist", str(tmp_path / "all.pt")]) == 0
    assert hyp.read_text().splitlines() == full
    tight = tmp_path / "tight.pt"
    sl_args = ["--out", str(tight), "--top", "1", "--frequent", "0"]
    assert main(["shortlist", str(run), *args, *sl_args]) == 0
    translator = seq2seq.load(run, shortlist=tight)
    src_ids = [translator.src_vocab.encode(translator.source_tokens(s)) for s in sources]
    allowed = [set(translator.restrict.shortlist.ids(torch.tensor(i)).tolist()) for i in src_ids]
    assert max(map(len, allowed)) < len(translator.tgt_vocab)  # a real restriction
    nbest = translator.hypotheses(sources, SearchOptions(beam_size=3), batch_size=1)
    assert all(set(n[0].tokens) <= a for n, a in zip(nbest, allowed))
    capsys.readouterr()
    bad = Shortlist.load(tight)
    bad.tgt_digest = "0" * 16
    bad.save(tmp_path / "other.pt")
    assert main([*cmd, "--shortlist", str(tmp_path / "other.pt")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'other.pt'}: built for another target vocabulary than the model's" in err
