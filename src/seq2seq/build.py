"""Config -> model: the only place that maps configuration to classes."""

from __future__ import annotations

from torch import nn

from .config import AttentionConfig, ModelConfig
from .model import Seq2Seq
from .nn.attention import BahdanauScorer, GlobalAttention, LuongDotScorer, LuongGeneralScorer
from .nn.rnn import RNNDecoder, RNNEncoder


def build_attention(cfg: AttentionConfig, query_size: int, memory_size: int) -> GlobalAttention:
    match cfg.kind:
        case "bahdanau":
            scorer: nn.Module = BahdanauScorer(
                query_size, memory_size, cfg.hidden_size or query_size
            )
        case "luong_dot":
            scorer = LuongDotScorer(query_size, memory_size)
        case "luong_general":
            scorer = LuongGeneralScorer(query_size, memory_size)
    return GlobalAttention(scorer)


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
        input_feeding=d.input_feeding,
        bridge=d.bridge,
    )
    return Seq2Seq(encoder, decoder)
