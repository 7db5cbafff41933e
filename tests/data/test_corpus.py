import pytest
import torch

from seq2seq.cli import main
from seq2seq.config import DataConfig
from seq2seq.data.corpus import CorpusError, read_lines, read_parallel
from seq2seq.data.prepare import prepare_data

from ..conftest import write_corpus


def test_misaligned_files_name_both_paths_and_counts(tmp_path):
    (tmp_path / "a.src").write_text("x\ny\nz\n")
    (tmp_path / "a.tgt").write_text("x\ny\n")
    with pytest.raises(CorpusError) as e:
        read_parallel(tmp_path / "a.src", tmp_path / "a.tgt")
    assert str(e.value) == (
        f"misaligned corpus: {tmp_path / 'a.src'} has 3 lines but {tmp_path / 'a.tgt'} has 2 lines"
    )


def test_invalid_utf8_names_path_and_line(tmp_path):
    p = tmp_path / "bad.src"
    p.write_bytes(b"fine\nalso fine\nbro\xffken\n")
    with pytest.raises(CorpusError) as e:
        read_lines(p)
    assert str(e.value).startswith(f"{p}:3: invalid UTF-8 (invalid start byte at byte 3")


def test_missing_file(tmp_path):
    with pytest.raises(CorpusError, match="nope.src: file not found"):
        read_lines(tmp_path / "nope.src")


def test_crlf_and_missing_final_newline(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(b"a\r\nb")
    assert read_lines(p) == ["a", "b"]


def _cfg(prefix, dev, **kw):
    return DataConfig(train=prefix, dev=dev, **kw)


def test_empty_line_is_an_error_unless_dropping_is_configured(tmp_path):
    pairs = [("ab", "ba"), ("", "x"), ("cd", "dc"), ("ef", "")]
    prefix = write_corpus(tmp_path, "train", pairs)
    dev = write_corpus(tmp_path, "dev", [("ab", "ba")])
    with pytest.raises(CorpusError) as e:
        prepare_data(_cfg(prefix, dev))
    assert str(e.value).startswith(f"{prefix}.src:2: empty source line;")
    assert "data.drop_empty: true" in str(e.value)
    data = prepare_data(_cfg(prefix, dev, drop_empty=True))
    assert data.train.report.dropped_empty == 2
    assert data.train.src_text == ["ab", "cd"]


def test_long_pairs_dropped_only_when_configured_and_counted(tmp_path):
    pairs = [("abc", "cba"), ("abcdefgh", "hgfedcba"), ("ab", "ba")]
    prefix = write_corpus(tmp_path, "train", pairs)
    dev = write_corpus(tmp_path, "dev", [("abcdefgh", "hgfedcba")])
    assert len(prepare_data(_cfg(prefix, dev)).train.data) == 3
    data = prepare_data(_cfg(prefix, dev, max_len=5))
    assert data.train.report.dropped_long == 1
    assert data.train.report.kept == 2
    assert len(data.dev.data) == 1  # dev is never length-filtered


def test_src_truncate_keeps_the_first_tokens_in_training_and_translation(tmp_path):
    from seq2seq.data.vocab import EOS_ID
    from seq2seq.translator import Translator

    pairs = [("abcdefgh", "x"), ("ab", "y")]
    prefix = write_corpus(tmp_path, "train", pairs)
    dev = write_corpus(tmp_path, "dev", [("abcdefgh", "x")])
    data = prepare_data(_cfg(prefix, dev, src_truncate=3))
    decoded = [data.src_vocab.decode(ids) for ids in data.train.data.src]
    assert [d[:3] for d in decoded] == [["a", "b", "c"], ["a", "b"]]
    assert all(EOS_ID not in ids[:-1] for ids in data.train.data.src)
    assert [data.src_vocab.decode(ids)[:3] for ids in data.dev.data.src] == [["a", "b", "c"]]
    assert max(len(ids) for ids in data.train.data.src) <= 4  # 3 tokens (+ <eos> if stored)
    t = Translator(
        torch.nn.Linear(1, 1),
        data.src_tokenizer,
        data.tgt_tokenizer,
        data.src_vocab,
        data.tgt_vocab,
        src_truncate=3,
    )
    assert t.source_tokens("abcdefgh") == ["a", "b", "c"]
    assert t.encode_sources(["abcdefgh"]).src == [data.src_vocab.encode(["a", "b", "c"])]


def test_cli_misaligned_corpus_exits_nonzero_with_paths(tmp_path, capsys):
    (tmp_path / "train.src").write_text("a\nb\n")
    (tmp_path / "train.tgt").write_text("a\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"data: {{train: {tmp_path}/train, dev: {tmp_path}/train}}\ntrain: {{max_steps: 1}}\n"
    )
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}/train.src has 2 lines but {tmp_path}/train.tgt has 1 lines" in err


def test_cli_invalid_utf8_exits_nonzero_with_line(tmp_path, capsys):
    (tmp_path / "train.src").write_bytes(b"a\n\xc3\x28\n")
    (tmp_path / "train.tgt").write_text("a\nb\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"data: {{train: {tmp_path}/train, dev: {tmp_path}/train}}\ntrain: {{max_steps: 1}}\n"
    )
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "-q"]) == 2
    assert f"{tmp_path}/train.src:2: invalid UTF-8" in capsys.readouterr().err
