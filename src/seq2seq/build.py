"""Config -> model: the only place that maps configuration to classes."""

from __future__ import annotations

from typing import Literal

from torch import nn

from .config import AttentionConfig, ModelConfig
from .model import Seq2Seq
from .nn.attention import (
    BahdanauScorer,
    GlobalAttention,
    LuongConcatScorer,
    LuongDotScorer,
    LuongGeneralScorer,
    MultiHeadAttention,
    ScaledDotScorer,
)
from .nn.local_attention import LocalAttention
from .nn.rnn import RNNDecoder, RNNEncoder


def build_attention(cfg: AttentionConfig, query_size: int, memory_size: int) -> nn.Module:
    q, m, inner = query_size, memory_size, cfg.hidden_size or query_size

    def global_(scorer: nn.Module) -> GlobalAttention:
        return GlobalAttention(scorer, m, cfg.coverage)

    def local(mode: Literal["monotonic", "predictive"]) -> LocalAttention:
        # Luong et al. (2015, section 4.1) score local attention with "general"
        return LocalAttention(LuongGeneralScorer(q, m), q, m, mode, cfg.window, cfg.coverage)

    match cfg.kind:
        case "bahdanau":
            return global_(BahdanauScorer(q, m, inner))
        case "luong_dot":
            return global_(LuongDotScorer(q, m))
        case "luong_general":
            return global_(LuongGeneralScorer(q, m))
        case "luong_concat":
            return global_(LuongConcatScorer(q, m, inner))
        case "scaled_dot":
            return global_(ScaledDotScorer(q, m))
        case "multihead":
            return MultiHeadAttention(q, m, cfg.num_heads, cfg.coverage)
        case "local_m":
            return local("monotonic")
        case "local_p":
            return local("predictive")
    raise ValueError(f"unknown attention kind {cfg.kind!r}")


def build_model(cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int) -> Seq2Seq:
    e, d = cfg.encoder, cfg.decoder
    encoder = RNNEncoder(
        vocab_size=src_vocab_size,
        embed_dim=e.embed_dim,
        hidden_size=e.hidden_size,
        num_layers=e.num_layers,
        cell=e.cell,
        bidirectional=e.bidirectional,
        dropout=e.dropout,
        embed_dropout=e.embed_dropout,
        residual=e.residual,
    )
    decoder = RNNDecoder(
        vocab_size=tgt_vocab_size,
        embed_dim=d.embed_dim,
        hidden_size=d.hidden_size,
        memory_size=encoder.output_size,
        attention=build_attention(d.attention, d.hidden_size, encoder.output_size),
        num_layers=d.num_layers,
        cell=d.cell,
        dropout=d.dropout,
        embed_dropout=d.embed_dropout,
        hidden_dropout=d.hidden_dropout,
        input_feeding=d.input_feeding,
        bridge=d.bridge,
        residual=d.residual,
        tie_output=cfg.tie_output,
    )
    return Seq2Seq(encoder, decoder)
