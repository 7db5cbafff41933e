"""benchmarks/harness.py's bookkeeping with its subprocesses replaced: our training rows are the
mean of the passes before and after the anchors, and translation passes alternate with the
anchors' in rounds, every row the best of its own passes."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parents[1] / "benchmarks" / "harness.py"


@pytest.fixture
def harness(monkeypatch):  # noqa: ANN001, ANN201
    spec = importlib.util.spec_from_file_location("harness_under_test", HARNESS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "anchors_ready", lambda: None)
    monkeypatch.setattr(module, "precisions", lambda: ["float32", "bf16"])
    return module


def test_train_rows_average_our_passes_before_and_after_the_anchors(harness, monkeypatch, tmp_path):  # noqa: ANN001
    calls = []

    def speed(args, name):  # noqa: ANN001, ANN202
        calls.append(name)
        scale = 1.0 if name == "train_speed" else 1.2
        return [
            {"config": c, "precision": p, "tgt_tok_per_s": 1000.0 * scale * (i + 1),
             "peak_rss_gib": scale, "s_per_step": 0.5 * scale}
            for i, (c, p) in enumerate((c, p) for c in harness.SHAPES.values() for p in ("float32", "bf16"))
        ]  # fmt: skip

    def sh(cmd, **kw):  # noqa: ANN001, ANN003, ANN202
        calls.append(Path(cmd[1]).name + (f" {cmd[2]}" if len(cmd) > 2 else ""))
        return "onmt_rnn: steady_tgt_tok/s=1000 peakRSS=3.00GiB\nonmt_transformer: steady_tgt_tok/s=2500 peakRSS=3.50GiB"

    monkeypatch.setattr(harness, "our_train_speed", speed)
    monkeypatch.setattr(harness, "sh", sh)
    monkeypatch.setattr(harness, "same_time_rows", lambda args: [])
    monkeypatch.setattr(harness, "bf16_ratio", lambda threads: 0.25 * threads)
    args = argparse.Namespace(anchors=True, threads=2, seconds=285, out=str(tmp_path))
    rows = harness.train_rows(args)
    assert calls == [
        "train_speed", "train.sh onmt_rnn", "train.sh onmt_transformer", "train_speed_after", "summarize.py"
    ]  # fmt: skip
    ours = {(r["model"], r["setting"].split(",")[0]): r for r in rows if r["toolkit"] == "seq2seq"}
    bf16_rnn = ours[("rnn", "bf16")]
    assert bf16_rnn["tgt_tok_per_s"] == 2200.0  # (2000 + 2400) / 2
    assert bf16_rnn["passes_tok_per_s"] == "2,000.0 / 2,400.0"
    assert bf16_rnn["peak_rss_gib"] == 1.2
    assert bf16_rnn["vs_anchor"] == 2.2
    assert ours[("transformer", "float32")]["vs_anchor"] == round(3300 / 2500, 2)
    # the bf16 rows say how fast this CPU's bf16 products are (on the threads measured with)
    assert [r.get("bf16_products_vs_float32") for r in ours.values()] == [None, 0.5, None, 0.5]

    calls.clear()
    rows = harness.train_rows(argparse.Namespace(anchors=False, threads=2, seconds=285, out="x"))
    assert calls == ["train_speed"]
    assert [r["tgt_tok_per_s"] for r in rows] == [1000.0, 2000.0, 3000.0, 4000.0]
    assert not any("passes_tok_per_s" in r or "vs_anchor" in r for r in rows)


def test_translate_rows_alternate_rounds_and_keep_each_rows_best_pass(
    harness, monkeypatch, tmp_path
):  # noqa: ANN001
    model = tmp_path / "transformer_285s_float32"
    model.mkdir()
    (model / "metrics.jsonl").write_text(json.dumps({"kind": "valid", "step": 214}) + "\n")
    hyp = tmp_path / "work" / "runs" / "hyp" / "onmt.bpe.de"
    hyp.parent.mkdir(parents=True)
    hyp.write_text("a b\n" * 1000)  # 3 tokens per sentence with <eos>
    monkeypatch.setattr(harness, "WORK", tmp_path / "work")
    monkeypatch.setattr(harness, "reference_model", lambda args, precision="float32": model)
    monkeypatch.setattr(harness, "_onmt_model", lambda args, updates: f"OpenNMT-py, {updates}")
    monkeypatch.setattr(harness, "bleu_of_bpe", lambda hyp, ref: (8.0, 29.0))
    ours = iter([(150.0, 300.0), (190.0, 280.0), (170.0, 360.0)])  # float32, int8 per pass
    onmt = iter([10.0, 12.5, 11.0])  # seconds per pass
    ct2 = iter(range(300, 400))
    calls = []

    def sh(cmd, **kw):  # noqa: ANN001, ANN003, ANN202
        cmd = list(map(str, cmd))
        name = Path(cmd[1]).name
        calls.append(name + (f" {cmd[2]}" if name == "translate.sh" else ""))
        if name == "translate_speed.py":
            assert cmd[cmd.index("--repeat") + 1] == ("1" if args.anchors else "3")
            speeds = next(ours)
            rows = [
                {"beam": 5, "early_stop": True, "precision": p, "engine": "compiled",
                 "layout": "2 x 1 thread", "sent_per_s": s, "tok_per_s": 12 * s,
                 "mean_out_tokens": 12.0, "bleu": 16.0, "chrf": 36.0}
                for p, s in zip(("float32", "int8"), speeds)
            ]  # fmt: skip
            Path(cmd[cmd.index("--json") + 1]).write_text(json.dumps(rows))
        elif cmd[-1] == "onmt":
            return f"Total translation time (s): {next(onmt)}"
        elif name == "ct2_translate.py":
            return f"sent/s={next(ct2)}.0 out_tok=12000 tok/s=4000.0"
        return ""

    monkeypatch.setattr(harness, "sh", sh)
    args = argparse.Namespace(
        data="data", seconds=285, skip_recipe_model=True, threads=2, anchors=True, repeat=3,
        shortlist=False, stops=["early"], beam_sizes=[5], engines=["compiled"],
        layouts=["2x1"], out=str(tmp_path), anchor_translate_steps="ours",
    )  # fmt: skip
    rows = harness.translate_rows(args)
    one_round = ["translate_speed.py", "translate.sh onmt"] + ["ct2_translate.py"] * 4
    assert calls == ["translate.sh ct2", *one_round * 3]
    by = {(r["toolkit"].split()[0], r["setting"]): r for r in rows}
    f32 = by[("seq2seq", "beam 5, early stop, float32, compiled, 2 x 1 thread")]
    i8 = by[("seq2seq", "beam 5, early stop, int8, compiled, 2 x 1 thread")]
    assert (f32["sent_per_s"], f32["passes_sent_per_s"]) == (190.0, "150.0 / 190.0 / 170.0")
    assert (i8["sent_per_s"], i8["tok_per_s"]) == (360.0, 12 * 360.0)
    onmt_row = by[("onmt_translate", "beam 5, float32, 1 x 2 threads")]
    assert onmt_row["sent_per_s"] == 100.0  # 1,000 sentences in the best pass, 10 s
    assert onmt_row["passes_sent_per_s"] == "100.0 / 80.0 / 90.9"
    assert onmt_row["mean_out_tokens"] == 3.0
    # CTranslate2's passes: 4 settings per round, in CT2_SETTINGS' order, numbered from 300
    int8_2x1 = by[("CTranslate2", "beam 5, int8, 2 x 1 thread")]
    assert (int8_2x1["sent_per_s"], int8_2x1["passes_sent_per_s"]) == (
        310.0,
        "302.0 / 306.0 / 310.0",
    )

    calls.clear()
    ours = iter([(150.0, 300.0)])
    args.anchors = False
    rows = harness.translate_rows(args)
    assert calls == ["translate_speed.py"]
    assert [r["sent_per_s"] for r in rows] == [150.0, 300.0]
    assert not any("passes_sent_per_s" in r for r in rows)


def test_quality_rows_read_the_recipe_runs_given(harness, monkeypatch, tmp_path):  # noqa: ANN001
    """--recipe-runs, like the recipes' RUNS, says where the finished runs are; a run without
    its training time (train_seconds) gives no row."""
    monkeypatch.setattr(harness, "averaged", lambda run: f"average of {run.name}")
    sig = "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
    for name, bleu, seconds in [("multi30k_en_de_rnn", 35.0617, 3613), ("unfinished", 9.0, None)]:
        run = tmp_path / "elsewhere" / name
        run.mkdir(parents=True)
        result = {"bleu": bleu, "chrf": 59.148, "bleu_signature": sig}
        (run / "test_2016_flickr.json").write_text(json.dumps(result))
        if seconds:
            (run / "train_seconds").write_text(str(seconds))
    rows = harness.quality_rows(argparse.Namespace(recipe_runs=str(tmp_path / "elsewhere")))
    assert rows == [
        {
            "section": "quality",
            "toolkit": "seq2seq",
            "model": "multi30k_en_de_rnn",
            "setting": "test_2016_flickr, beam 5, average of multi30k_en_de_rnn",
            "train_minutes": 60.2,
            "train_seconds": 3613,
            "bleu": 35.06,
            "chrf": 59.15,
            "signature": sig,
        }
    ]
    assert harness.quality_rows(argparse.Namespace(recipe_runs=str(tmp_path / "none"))) == []


def _tr(toolkit, model, setting, sent, passes=None, bleu=20.0):  # noqa: ANN001, ANN202
    row = {"section": "translate", "toolkit": toolkit, "model": model, "setting": setting,
           "sent_per_s": sent, "bleu": bleu}  # fmt: skip
    return {**row, "passes_sent_per_s": passes} if passes else row


def _q(toolkit, model, bleu, minutes, split="test_2016_flickr", seconds=None):  # noqa: ANN001, ANN202
    row = {"section": "quality", "toolkit": toolkit, "model": model,
           "setting": f"{split}, beam 5", "bleu": bleu, "train_minutes": minutes}  # fmt: skip
    return row if seconds is None else {**row, "train_seconds": seconds}


def test_bar_rows_decide_each_bar_from_the_rows(harness):  # noqa: ANN001
    """The bars of issue 7: thresholds met exactly pass, the like-for-like model only (not the
    recipe model, not a shortlist), each side in its fastest layout, per-round ratios paired."""
    ref, onmt = "reference Transformer, 285 s, 307 updates", "OpenNMT-py Transformer, 307 updates"
    early = "beam 5, early stop, "
    rows = [
        {"section": "train", "toolkit": "seq2seq", "model": "rnn", "setting": "float32, 2 threads",
         "tgt_tok_per_s": 1200.0, "vs_anchor": 1.2},
        {"section": "train", "toolkit": "seq2seq", "model": "rnn", "setting": "bf16, 2 threads",
         "tgt_tok_per_s": 1990.0, "vs_anchor": 1.99},
        {"section": "train", "toolkit": "OpenNMT-py 3.5.1", "model": "rnn", "setting": "float32",
         "tgt_tok_per_s": 1000.0},
        {"section": "train", "toolkit": "seq2seq", "model": "transformer",
         "setting": "float32, 285 s of training, dev greedy", "steps": 300, "dev_bleu": 20.0},
        {"section": "train", "toolkit": "seq2seq", "model": "transformer",
         "setting": "bf16, 285 s of training, dev greedy", "steps": 500, "dev_bleu": 20.0},
        _tr("seq2seq", ref, early + "float32, compiled, 2 x 1 thread", 200.0, "200.0 / 150.0"),
        _tr("seq2seq", ref, early + "float32, eager, 1 x 2 threads", 120.0, bleu=20.0),
        _tr("seq2seq", ref, early + "float32, compiled, vocabulary shortlist, 2 x 1 thread", 900.0),
        _tr("seq2seq", "recipe Transformer (60 min)", early + "float32, compiled, 2 x 1", 800.0),
        _tr("seq2seq", ref, early + "int8, compiled, 2 x 1 thread", 300.0, "300.0 / 280.0", 19.4),
        _tr("seq2seq", ref, "beam 5, float32, compiled, 2 x 1 thread", 999.0),  # full stop
        _tr("onmt_translate 3.5.1", onmt, "beam 5, float32, 1 x 2 threads", 100.0, "100.0 / 80.0"),
        _tr("CTranslate2 4.8.5", onmt, "beam 5, float32, 2 x 1 thread", 1000.0),
        _tr("CTranslate2 4.8.5", onmt, "beam 5, int8, 2 x 1 thread", 310.0, "250.0 / 310.0"),
        _tr("CTranslate2 4.8.5", onmt, "beam 5, int8, 1 x 2 threads", 90.0, "90.0 / 80.0"),
        _q("seq2seq", "multi30k_en_de_transformer", 40.0, 60.2, "val"),
        _q("seq2seq", "multi30k_en_de_transformer", 36.0, 60.0, seconds=3600),
        _q("seq2seq", "multi30k_de_en_transformer", 37.99, 60.0),
        _q("OpenNMT-py 3.5.1", "onmt_recipe_en_de", 36.0, 60.0),
    ]  # fmt: skip
    bars = {b["bar"]: b for b in harness.bar_rows(rows)}
    verdicts = {k: b["verdict"] for k, b in bars.items()}
    assert verdicts == {
        "train float32 rnn >= 1.2x OpenNMT-py": "pass",
        "train bf16 rnn >= 2x OpenNMT-py": "fail",
        "bf16 dev BLEU after the same 285 s of training >= float32's": "pass",
        "beam 5 float32 >= 2x onmt_translate": "pass",
        "beam 5 int8 >= 1x CTranslate2 int8": "fail",
        "int8 loses <= 0.5 BLEU against our float32": "fail",
        "en->de Transformer, 60 min: test_2016_flickr BLEU >= 36": "pass",
        "de->en Transformer, 60 min: test_2016_flickr BLEU >= 38": "fail",
        "en->de Transformer above OpenNMT-py's, same time": "fail",  # level is not above
    }
    beam = bars["beam 5 float32 >= 2x onmt_translate"]
    assert (beam["ours"], beam["anchor"]) == (
        "200.0 sent/s (compiled, 2 x 1 thread)", "100.0 sent/s (1 x 2 threads)"
    )  # fmt: skip
    assert (beam["ratio"], beam["per_round"]) == (2.0, "2.00x / 1.88x")
    int8 = bars["beam 5 int8 >= 1x CTranslate2 int8"]
    assert (int8["anchor"], int8["ratio"], int8["per_round"]) == (
        "310.0 sent/s (2 x 1 thread)", 0.97, "1.20x / 0.90x"
    )  # fmt: skip
    assert bars["int8 loses <= 0.5 BLEU against our float32"]["loss_bleu"] == 0.6
    for int8_bleu, verdict in ((19.5, "pass"), (19.49, "fail")):  # against float32's 20.0
        again = [dict(r, bleu=int8_bleu) if ", int8, compiled" in r["setting"] else r for r in rows]
        loss = next(b for b in harness.bar_rows(again) if b["bar"].startswith("int8 loses"))
        assert loss["verdict"] == verdict
    # the hour bounds the whole training command: its seconds where the row has them (rows saved
    # before them have the minutes, to a tenth), and a BLEU above the bar after more time fails
    for minutes, seconds, verdict in (
        (60.0, 3600, "pass"),
        (60.0, 3601, "fail (over 60 min)"),
        (60.0, None, "pass"),
        (60.2, None, "fail (over 60 min)"),
    ):
        again = [r for r in rows if r.get("model") != "multi30k_en_de_transformer"]
        again.append(_q("seq2seq", "multi30k_en_de_transformer", 36.0, minutes, seconds=seconds))
        bar = next(b for b in harness.bar_rows(again) if b["bar"].startswith("en->de Transformer,"))
        assert (bar["ours"], bar["verdict"]) == (f"36.0 ({minutes} min)", verdict)
    # rows from before early stop carry no stopping rule: those are the ones then
    old = [dict(r, setting=r["setting"].replace("early stop, ", "")) for r in rows]
    old = [r for r in old if r.get("sent_per_s") != 999.0]
    beam = next(b for b in harness.bar_rows(old) if b["bar"].startswith("beam 5 float32"))
    assert beam["ours"] == "200.0 sent/s (compiled, 2 x 1 thread)"


def test_bars_reads_saved_rows_and_names_a_file_it_cannot_read(
    harness, monkeypatch, tmp_path, capsys
):  # noqa: ANN001
    good = tmp_path / "quality.json"
    good.write_text(json.dumps([
        _q("seq2seq", "multi30k_en_de_rnn", 35.06, 60.0),
        {"section": "bars", "bar": "an old verdict", "ours": "", "anchor": "", "verdict": "fail"},
    ]))  # fmt: skip
    monkeypatch.setattr("sys.argv", ["harness.py", "--bars", str(good)])
    harness.main()
    out = capsys.readouterr().out.splitlines()
    assert out[2:] == [
        "| en->de RNN, 60 min: test_2016_flickr BLEU >= 33 | 35.06 (60.0 min) |  |  |  | pass |"
    ]
    # each kind of row from the first file that has it: quality rows by recipe run
    older = tmp_path / "older.json"
    older.write_text(json.dumps([
        _q("seq2seq", "multi30k_en_de_rnn", 30.0, 60.0),
        _q("OpenNMT-py 3.5.1", "onmt_recipe_en_de", 31.0, 60.0),
        _q("seq2seq", "multi30k_en_de_transformer", 36.5, 60.1),
    ]))  # fmt: skip
    monkeypatch.setattr("sys.argv", ["harness.py", "--bars", str(good), str(older)])
    harness.main()
    out = capsys.readouterr().out.splitlines()
    assert [line.split(" | ")[1] for line in out[2:]] == [
        "36.5 (60.1 min)", "35.06 (60.0 min)", "36.5 (60.1 min)"
    ]  # fmt: skip
    monkeypatch.setattr("sys.argv", ["harness.py", "--bars", str(older), str(good)])
    harness.main()
    out = capsys.readouterr().out.splitlines()
    assert [line.split(" | ")[1:3] for line in out[2:]] == [
        ["36.5 (60.1 min)", ""], ["30.0 (60.0 min)", ""], ["36.5 (60.1 min)", "31.0 (60.0 min)"]
    ]  # fmt: skip
    bad = tmp_path / "bad.json"
    bad.write_text('{"section": "train"}')
    monkeypatch.setattr("sys.argv", ["harness.py", "--bars", str(good), str(bad)])
    with pytest.raises(SystemExit) as e:
        harness.main()
    assert str(e.value) == (
        f"--bars {bad}: expected a list of rows (objects with a 'section'), as --json writes"
    )
    monkeypatch.setattr("sys.argv", ["harness.py", "--bars", str(tmp_path / "none.json")])
    with pytest.raises(SystemExit) as e:
        harness.main()
    assert str(e.value).startswith(f"--bars {tmp_path / 'none.json'}: [Errno 2] No such file")


def test_a_run_ends_with_its_bars_and_writes_them_as_rows(  # noqa: ANN001
    harness, monkeypatch, tmp_path, capsys
):
    rnn = _q("seq2seq", "multi30k_en_de_rnn", 32.9, 60.0)
    monkeypatch.setattr(harness, "quality_rows", lambda args: [rnn])
    out = tmp_path / "rows.json"
    monkeypatch.setattr(
        "sys.argv",
        ["harness.py", "--sections", "quality", "--out", str(tmp_path), "--json", str(out)],
    )
    harness.main()
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == (
        "| en->de RNN, 60 min: test_2016_flickr BLEU >= 33 | 32.9 (60.0 min) |  |  |  | fail |"
    )
    saved = json.loads(out.read_text())
    assert saved[0] == rnn and [r["verdict"] for r in saved[1:]] == ["fail"]
