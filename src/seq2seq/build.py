"""Config -> model: the only place that maps configuration to classes."""

from __future__ import annotations

from typing import Literal

from torch import nn

from .config import (
    AttentionConfig,
    DecoderConfig,
    EncoderConfig,
    ModelConfig,
    TransformerEncoderConfig,
)
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
from .nn.embeddings import (
    LearnedPositions,
    SinusoidalPositions,
    TransformerEmbedding,
    token_embedding,
)
from .nn.local_attention import LocalAttention
from .nn.rnn import RNNDecoder, RNNEncoder
from .nn.transformer import TransformerDecoder, TransformerEncoder


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


def build_embedding(cfg: TransformerEncoderConfig, tokens: nn.Embedding) -> TransformerEmbedding:
    """Token table (possibly shared) + positions for one side of a Transformer."""
    match cfg.positions:
        case "sinusoidal":
            positions: nn.Module = SinusoidalPositions(cfg.max_positions, cfg.embed_dim)
        case "learned":
            positions = LearnedPositions(cfg.max_positions, cfg.embed_dim)
    return TransformerEmbedding(tokens, positions, cfg.scale_embeddings, cfg.dropout)


def build_encoder(
    cfg: EncoderConfig,
    vocab_size: int,
    tokens: nn.Embedding | None = None,
) -> RNNEncoder | TransformerEncoder:
    match cfg.kind:
        case "rnn":
            return RNNEncoder(
                vocab_size=vocab_size,
                embed_dim=cfg.embed_dim,
                hidden_size=cfg.hidden_size,
                num_layers=cfg.num_layers,
                cell=cfg.cell,
                bidirectional=cfg.bidirectional,
                dropout=cfg.dropout,
                embed_dropout=cfg.embed_dropout,
                residual=cfg.residual,
            )
        case "transformer":
            tokens = tokens or token_embedding(vocab_size, cfg.embed_dim)
            return TransformerEncoder(
                embedding=build_embedding(cfg, tokens),
                embed_dim=cfg.embed_dim,
                num_layers=cfg.num_layers,
                num_heads=cfg.num_heads,
                ff_size=cfg.ff_size,
                activation=cfg.activation,
                norm=cfg.norm,
                dropout=cfg.dropout,
                attention_dropout=cfg.attention_dropout,
                activation_dropout=cfg.activation_dropout,
            )
    raise ValueError(f"unknown encoder kind {cfg.kind!r}")


def build_decoder(
    cfg: DecoderConfig,
    vocab_size: int,
    memory_size: int,
    tokens: nn.Embedding | None = None,
    tie_output: bool = False,
) -> RNNDecoder | TransformerDecoder:
    match cfg.kind:
        case "rnn":
            return RNNDecoder(
                vocab_size=vocab_size,
                embed_dim=cfg.embed_dim,
                hidden_size=cfg.hidden_size,
                memory_size=memory_size,
                attention=build_attention(cfg.attention, cfg.hidden_size, memory_size),
                num_layers=cfg.num_layers,
                cell=cfg.cell,
                dropout=cfg.dropout,
                embed_dropout=cfg.embed_dropout,
                hidden_dropout=cfg.hidden_dropout,
                input_feeding=cfg.input_feeding,
                bridge=cfg.bridge,
                residual=cfg.residual,
                tie_output=tie_output,
            )
        case "transformer":
            tokens = tokens or token_embedding(vocab_size, cfg.embed_dim)
            return TransformerDecoder(
                embedding=build_embedding(cfg, tokens),
                vocab_size=vocab_size,
                embed_dim=cfg.embed_dim,
                memory_size=memory_size,
                num_layers=cfg.num_layers,
                num_heads=cfg.num_heads,
                ff_size=cfg.ff_size,
                activation=cfg.activation,
                norm=cfg.norm,
                dropout=cfg.dropout,
                attention_dropout=cfg.attention_dropout,
                activation_dropout=cfg.activation_dropout,
                tie_output=tie_output,
            )
    raise ValueError(f"unknown decoder kind {cfg.kind!r}")


def build_model(cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int) -> Seq2Seq:
    shared = None
    if cfg.share_embeddings:
        if src_vocab_size != tgt_vocab_size:
            raise ValueError(
                "model.share_embeddings needs one vocabulary (data.joint: true), got sizes "
                f"{src_vocab_size} and {tgt_vocab_size}"
            )
        shared = token_embedding(src_vocab_size, cfg.encoder.embed_dim)
    encoder = build_encoder(cfg.encoder, src_vocab_size, shared)
    decoder = build_decoder(
        cfg.decoder, tgt_vocab_size, encoder.output_size, shared, cfg.tie_output
    )
    return Seq2Seq(encoder, decoder)
