"""Tokenizers: character, whitespace word, and SentencePiece (BPE, unigram) trained by the toolkit.

Each tokenizer turns a line into a list of string tokens and back. ``to_state`` returns plain data
(str, bool, bytes) that ``torch.load(weights_only=True)`` accepts, so a checkpoint carries its
tokenizers, SentencePiece model included.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterable
from typing import Protocol

import sentencepiece as spm

log = logging.getLogger(__name__)

SPACE = "\u2581"  # "▁": how the character tokenizer shows a space (as SentencePiece does)


class Tokenizer(Protocol):
    kind: str

    def encode(self, text: str) -> list[str]: ...

    def decode(self, tokens: list[str]) -> str: ...

    def to_state(self) -> dict: ...


class CharTokenizer:
    """One token per character; spaces become ``▁`` so they stay visible in vocabularies and plots."""

    kind = "char"

    def __init__(self, lowercase: bool = False) -> None:
        self.lowercase = lowercase

    def encode(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        return [SPACE if c == " " else c for c in text]

    def decode(self, tokens: list[str]) -> str:
        return "".join(tokens).replace(SPACE, " ")

    def to_state(self) -> dict:
        return {"kind": self.kind, "lowercase": self.lowercase}


class WordTokenizer:
    """Whitespace-separated words; decoding joins with single spaces."""

    kind = "word"

    def __init__(self, lowercase: bool = False) -> None:
        self.lowercase = lowercase

    def encode(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        return text.split()

    def decode(self, tokens: list[str]) -> str:
        return " ".join(tokens)

    def to_state(self) -> dict:
        return {"kind": self.kind, "lowercase": self.lowercase}


class SentencePieceTokenizer:
    """SentencePiece BPE or unigram model held in memory as its serialized bytes.

    Trained with the identity normalization and whitespace kept as it is, so ``decode(encode(x))``
    gives back ``x`` exactly for text whose characters the model covers.
    """

    def __init__(self, model: bytes, kind: str, lowercase: bool = False) -> None:
        self.kind = kind
        self.model = model
        self.lowercase = lowercase
        self._sp = spm.SentencePieceProcessor(model_proto=model)

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        kind: str,
        vocab_size: int,
        character_coverage: float = 1.0,
        lowercase: bool = False,
        threads: int | None = None,
    ) -> SentencePieceTokenizer:
        """Trains a model on ``texts``; ``vocab_size`` is a soft limit on small data."""
        if kind not in ("bpe", "unigram"):
            raise ValueError(f"SentencePiece model type must be 'bpe' or 'unigram', got {kind!r}")
        lines = [t.lower() if lowercase else t for t in texts]
        lines = [t for t in lines if t.strip()]
        if not lines:
            raise ValueError("cannot train a SentencePiece model on no text")
        buf = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines),
            model_writer=buf,
            model_type=kind,
            vocab_size=vocab_size,
            character_coverage=character_coverage,
            hard_vocab_limit=False,
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            input_sentence_size=2_000_000,
            shuffle_input_sentence=True,
            unk_id=0,
            bos_id=-1,
            eos_id=-1,
            pad_id=-1,
            num_threads=threads or os.cpu_count() or 1,
            minloglevel=2,
        )
        return cls(buf.getvalue(), kind, lowercase)

    def encode(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        return self._sp.encode(text, out_type=str)

    def decode(self, tokens: list[str]) -> str:
        return self._sp.decode_pieces(tokens)

    def to_state(self) -> dict:
        return {"kind": self.kind, "lowercase": self.lowercase, "model": self.model}


def train_tokenizer(
    kind: str,
    texts: Iterable[str],
    vocab_size: int = 8000,
    character_coverage: float = 1.0,
    lowercase: bool = False,
    threads: int | None = None,
) -> Tokenizer:
    """A tokenizer of ``kind`` (char | word | bpe | unigram); only SentencePiece kinds learn."""
    match kind:
        case "char":
            return CharTokenizer(lowercase)
        case "word":
            return WordTokenizer(lowercase)
        case "bpe" | "unigram":
            return SentencePieceTokenizer.train(
                texts, kind, vocab_size, character_coverage, lowercase, threads
            )
    raise ValueError(f"unknown tokenizer kind {kind!r}; expected char, word, bpe or unigram")


def tokenizer_from_state(state: dict) -> Tokenizer:
    kind = state["kind"]
    match kind:
        case "char":
            return CharTokenizer(state["lowercase"])
        case "word":
            return WordTokenizer(state["lowercase"])
        case "bpe" | "unigram":
            return SentencePieceTokenizer(state["model"], kind, state["lowercase"])
    raise ValueError(f"unknown tokenizer kind {kind!r} in saved state")
