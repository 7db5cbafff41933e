"""Shared helpers: tiny models built through the real config path, and small corpora on disk."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from seq2seq.build import build_model
from seq2seq.config import AttentionConfig, ModelConfig, RNNDecoderConfig, RNNEncoderConfig
from seq2seq.data.batching import make_batch


def compiles(test: Callable) -> Callable:
    """Marks a test that compiles with torch.compile: skipped without a C++ compiler (inductor
    builds C++ on CPU) and marked slow (29-76 s each on 2 cores, on a cold inductor cache)."""
    no_compiler = shutil.which("c++") is None and shutil.which("g++") is None
    skip = pytest.mark.skipif(no_compiler, reason="torch.compile on CPU needs a C++ compiler")
    return pytest.mark.slow(skip(test))


def tiny_model(
    attention: str = "bahdanau",
    input_feeding: bool = True,
    cell: str = "lstm",
    bridge: str = "linear",
    bidirectional: bool = True,
    num_layers: int = 1,
    src_vocab: int = 13,
    tgt_vocab: int = 11,
    seed: int = 0,
    coverage: bool = False,
    residual: bool = False,
    tie_output: bool = False,
    window: int = 1,
    num_heads: int = 4,
    hidden_dropout: float = 0.0,
) -> torch.nn.Module:
    torch.manual_seed(seed)
    enc_hidden = 8 if bidirectional else 16
    cfg = ModelConfig(
        encoder=RNNEncoderConfig(
            cell=cell,
            embed_dim=6,
            hidden_size=enc_hidden,
            num_layers=num_layers,
            bidirectional=bidirectional,
            residual=residual,
        ),
        decoder=RNNDecoderConfig(
            cell=cell,
            embed_dim=16 if tie_output else 5,
            hidden_size=16,
            num_layers=num_layers,
            input_feeding=input_feeding,
            bridge=bridge,
            residual=residual,
            hidden_dropout=hidden_dropout,
            attention=AttentionConfig(
                kind=attention, coverage=coverage, window=window, num_heads=num_heads
            ),
        ),
        tie_output=tie_output,
    )
    cfg.check("model")
    return build_model(cfg, src_vocab, tgt_vocab).eval()


def replace_cfg(obj, **changes):
    return dataclasses.replace(obj, **changes)


@pytest.fixture
def batch():
    """Three sentences of different lengths, so rows 1 and 2 carry padding."""
    src = [[4, 5, 6, 7, 8, 9], [10, 11], [5, 12, 4]]
    tgt = [[4, 5, 6, 7], [8], [9, 10, 4, 5, 6]]
    return make_batch(src, tgt, [0, 1, 2])


def write_corpus(directory: Path, name: str, pairs: list[tuple[str, str]]) -> str:
    """Writes NAME.src / NAME.tgt and returns the prefix."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.src").write_text("".join(s + "\n" for s, _ in pairs), encoding="utf-8")
    (directory / f"{name}.tgt").write_text("".join(t + "\n" for _, t in pairs), encoding="utf-8")
    return str(directory / name)


def tiny_transformer(
    norm: str = "pre",
    num_layers: int = 2,
    src_vocab: int = 13,
    tgt_vocab: int = 11,
    seed: int = 0,
    encoder: str = "transformer",
    decoder: str = "transformer",
    **changes,
) -> torch.nn.Module:
    """A small Transformer (or a Transformer/RNN mix) in eval mode; ``changes`` go to both the
    Transformer encoder and decoder configs (e.g. positions="learned")."""
    from seq2seq.config import TransformerDecoderConfig, TransformerEncoderConfig

    torch.manual_seed(seed)
    sizes = dict(embed_dim=16, num_heads=4, ff_size=24, num_layers=num_layers, norm=norm)
    sizes.update(changes)
    enc = TransformerEncoderConfig(**sizes) if encoder == "transformer" else RNNEncoderConfig()
    dec = (
        TransformerDecoderConfig(**sizes)
        if decoder == "transformer"
        else RNNDecoderConfig(embed_dim=5, hidden_size=16)
    )
    cfg = ModelConfig(encoder=enc, decoder=dec)
    cfg.check("model")
    return build_model(cfg, src_vocab, tgt_vocab).eval()
