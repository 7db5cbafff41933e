import pytest

from seq2seq.data.vocab import BOS_ID, EOS_ID, PAD_ID, SPECIALS, UNK_ID, Vocab


def test_specials_frequency_order_and_limits():
    seqs = [["b", "a", "a"], ["c", "a", "b"], ["d"]]
    v = Vocab.build(seqs)
    assert v.itos[:4] == list(SPECIALS)
    assert v.itos[4:] == ["a", "b", "c", "d"]  # by count, ties alphabetical
    assert Vocab.build(seqs, min_freq=2).itos[4:] == ["a", "b"]
    assert Vocab.build(seqs, max_size=1).itos[4:] == ["a"]
    assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)


def test_encode_decode_unknown_and_eos():
    v = Vocab.build([["x", "y"]])
    assert v.encode(["x", "zzz"]) == [v.stoi["x"], UNK_ID]
    assert v.decode([BOS_ID, v.stoi["y"], EOS_ID, v.stoi["x"]]) == ["y"]


def test_save_load(tmp_path):
    v = Vocab.build([["héllo", "wörld", "▁"]])
    v.save(tmp_path / "v.txt")
    assert Vocab.load(tmp_path / "v.txt") == v


def test_invalid_vocab():
    with pytest.raises(ValueError, match="must start with"):
        Vocab(["a", "b"])
    with pytest.raises(ValueError, match="duplicate token 'a'"):
        Vocab([*SPECIALS, "a", "a"])
