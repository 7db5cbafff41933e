import pytest

from seq2seq.data.tokenize import (
    CharTokenizer,
    WordTokenizer,
    tokenizer_from_state,
    train_tokenizer,
)

TEXT = [
    "A man in a blue shirt is standing on a ladder.",
    "Two dogs play  in the snow, near a red barn!",
    "  Eine Frau mit großem Hut liest ein Buch.",
] * 40


def test_char_round_trip_shows_spaces():
    tok = CharTokenizer()
    assert tok.encode("a b") == ["a", "\u2581", "b"]
    assert tok.decode(tok.encode(" x  y ")) == " x  y "


def test_word():
    tok = WordTokenizer(lowercase=True)
    assert tok.encode("Hello  World ") == ["hello", "world"]
    assert tok.decode(["hello", "world"]) == "hello world"


@pytest.mark.parametrize("kind", ["bpe", "unigram"])
def test_sentencepiece_detokenizes_to_the_original_text(kind):
    tok = train_tokenizer(kind, TEXT, vocab_size=60)
    for line in TEXT[:3] + ["Ein Mann, zwei Hunde.", "  spaces   inside  "]:
        pieces = tok.encode(line)
        assert len(pieces) < len(line)  # it learned merges
        assert tok.decode(pieces) == line
    again = tokenizer_from_state(tok.to_state())
    assert again.encode(TEXT[1]) == tok.encode(TEXT[1])
    assert again.kind == kind


def test_sentencepiece_rejects_unknown_type():
    with pytest.raises(ValueError, match="unknown tokenizer kind 'wordpiece'"):
        train_tokenizer("wordpiece", TEXT)
