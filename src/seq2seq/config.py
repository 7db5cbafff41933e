"""Typed configuration: YAML -> a tree of frozen dataclasses, validated at load time.

Every error names the dotted key at fault, the value found and what was expected, e.g.
``model.encoder.hidden_size: expected an integer, got 'big' (str)``. Variants are tagged by a
``kind`` field and resolved with one small dict per choice (no registries).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .train_config import (  # noqa: F401  (re-exported: the config API)
    ConstantScheduleConfig,
    CosineScheduleConfig,
    LinearScheduleConfig,
    NoamScheduleConfig,
    OptimizerConfig,
    PlateauScheduleConfig,
    ScheduleConfig,
    TrainConfig,
)
from .typed_config import (  # noqa: F401  (re-exported: the config API)
    ConfigError,
    apply_overrides,
    build,
    parse_override,
    read_yaml,
    require,
    to_dict,
)

SCHEMA_VERSION = 1


# ---------------------------------------------------------------------------------------------
# The schema
# ---------------------------------------------------------------------------------------------

TokenizerKind = Literal["char", "word", "bpe", "unigram"]


@dataclass(frozen=True)
class SideConfig:
    """Tokenization and vocabulary of one side (source or target)."""

    tokenizer: TokenizerKind = "char"
    vocab_size: int = 8000  # SentencePiece (bpe/unigram) model size
    character_coverage: float = 1.0  # SentencePiece
    min_freq: int = 1
    max_size: int | None = None  # vocabulary cap (specials excluded)
    lowercase: bool = False

    def check(self, path: str) -> None:
        require(self.vocab_size >= 8, f"{path}.vocab_size", self.vocab_size, "an integer >= 8")
        require(
            0.0 < self.character_coverage <= 1.0,
            f"{path}.character_coverage",
            self.character_coverage,
            "a number in (0, 1]",
        )
        require(self.min_freq >= 1, f"{path}.min_freq", self.min_freq, "an integer >= 1")
        if self.max_size is not None:
            require(self.max_size >= 1, f"{path}.max_size", self.max_size, "an integer >= 1")


@dataclass(frozen=True)
class DataConfig:
    train: str = ""  # path prefix: PREFIX.SRC_SUFFIX / PREFIX.TGT_SUFFIX
    dev: str = ""
    src_suffix: str = "src"
    tgt_suffix: str = "tgt"
    src: SideConfig = field(default_factory=SideConfig)
    tgt: SideConfig = field(default_factory=SideConfig)
    joint: bool = False  # one tokenizer model and one vocabulary for both sides
    drop_empty: bool = False  # otherwise an empty line is an error
    max_len: int | None = None  # drop pairs longer than this (tokens, either side); None keeps all
    # keep only the first N source tokens (long inputs such as email bodies); applied in training
    # and, from the checkpoint's config, in translation; None keeps whole sources
    src_truncate: int | None = None

    def check(self, path: str) -> None:
        require(
            bool(self.train), f"{path}.train", self.train, "a path prefix of the training files"
        )
        require(bool(self.dev), f"{path}.dev", self.dev, "a path prefix of the dev files")
        require(
            self.src_suffix != self.tgt_suffix,
            f"{path}.tgt_suffix",
            self.tgt_suffix,
            "a suffix different from data.src_suffix",
        )
        if self.max_len is not None:
            require(self.max_len >= 1, f"{path}.max_len", self.max_len, "an integer >= 1 or null")
        if self.src_truncate is not None:
            require(
                self.src_truncate >= 1,
                f"{path}.src_truncate",
                self.src_truncate,
                "an integer >= 1 or null",
            )
        if self.joint and self.src != self.tgt:
            raise ConfigError(
                f"{path}.joint: true needs identical data.src and data.tgt settings "
                f"(one tokenizer and vocabulary serve both), got src={self.src} tgt={self.tgt}"
            )


CellKind = Literal["lstm", "gru", "rnn"]


@dataclass(frozen=True)
class RNNEncoderConfig:
    kind: Literal["rnn"] = "rnn"
    cell: CellKind = "lstm"
    embed_dim: int = 128
    hidden_size: int = 256  # per direction
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.1  # between layers and on the outputs
    embed_dropout: float = 0.1
    residual: bool = False  # add each stacked layer's input to its output (from layer 2 on)

    def check(self, path: str) -> None:
        _check_sizes(self, path)


AttentionKind = Literal[
    "bahdanau",
    "luong_dot",
    "luong_general",
    "luong_concat",
    "scaled_dot",
    "multihead",
    "local_m",
    "local_p",
]


@dataclass(frozen=True)
class AttentionConfig:
    kind: AttentionKind = "bahdanau"
    hidden_size: int | None = None  # additive scorers' inner size; default: decoder hidden size
    window: int = 10  # local_m / local_p: half-width D of the window [p_t - D, p_t + D]
    num_heads: int = 4  # multihead
    coverage: bool = False  # feed the coverage vector (Tu et al. 2016) to the scorer

    def check(self, path: str) -> None:
        if self.hidden_size is not None:
            require(
                self.hidden_size >= 1, f"{path}.hidden_size", self.hidden_size, "an integer >= 1"
            )
        if self.kind == "local_p":
            require(
                self.window >= 1,
                f"{path}.window",
                self.window,
                "an integer >= 1 for local_p (the Gaussian's sigma is window / 2)",
            )
        require(self.window >= 0, f"{path}.window", self.window, "an integer >= 0")
        require(self.num_heads >= 1, f"{path}.num_heads", self.num_heads, "an integer >= 1")


@dataclass(frozen=True)
class RNNDecoderConfig:
    kind: Literal["rnn"] = "rnn"
    cell: CellKind = "lstm"
    embed_dim: int = 128
    hidden_size: int = 256
    num_layers: int = 1
    dropout: float = 0.1
    embed_dropout: float = 0.1
    hidden_dropout: float = 0.0  # on the recurrent output h_t, before attention
    input_feeding: bool = True
    bridge: Literal["zero", "last", "mean", "linear"] = "linear"
    residual: bool = False  # add each stacked layer's input to its output (from layer 2 on)
    attention: AttentionConfig = field(default_factory=AttentionConfig)

    def check(self, path: str) -> None:
        _check_sizes(self, path)
        require(
            0.0 <= self.hidden_dropout < 1.0,
            f"{path}.hidden_dropout",
            self.hidden_dropout,
            "a number in [0, 1)",
        )


NormKind = Literal["pre", "post"]


@dataclass(frozen=True)
class TransformerEncoderConfig:
    kind: Literal["transformer"] = "transformer"
    embed_dim: int = 256  # d_model
    num_layers: int = 3
    num_heads: int = 4
    ff_size: int = 1024
    activation: Literal["relu", "gelu"] = "relu"
    norm: NormKind = "pre"  # layer norm before (pre) or after (post) each residual sublayer
    dropout: float = 0.1  # on embeddings and sublayer outputs
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    positions: Literal["sinusoidal", "learned"] = "sinusoidal"
    max_positions: int = 1024
    scale_embeddings: bool = True  # multiply token embeddings by sqrt(embed_dim)

    def check(self, path: str) -> None:
        for name in ("embed_dim", "num_layers", "num_heads", "ff_size", "max_positions"):
            v = getattr(self, name)
            require(v >= 1, f"{path}.{name}", v, "an integer >= 1")
        for name in ("dropout", "attention_dropout", "activation_dropout"):
            v = getattr(self, name)
            require(0.0 <= v < 1.0, f"{path}.{name}", v, "a number in [0, 1)")
        if self.embed_dim % self.num_heads:
            raise ConfigError(
                f"{path}.num_heads: expected a divisor of {path}.embed_dim={self.embed_dim}, "
                f"got {self.num_heads}"
            )


@dataclass(frozen=True)
class TransformerDecoderConfig(TransformerEncoderConfig):
    pass


EncoderConfig = RNNEncoderConfig | TransformerEncoderConfig
DecoderConfig = RNNDecoderConfig | TransformerDecoderConfig


def encoder_output_size(enc: EncoderConfig) -> int:
    if isinstance(enc, RNNEncoderConfig):
        return enc.hidden_size * (2 if enc.bidirectional else 1)
    return enc.embed_dim


@dataclass(frozen=True)
class ModelConfig:
    encoder: EncoderConfig = field(default_factory=RNNEncoderConfig)
    decoder: DecoderConfig = field(default_factory=RNNDecoderConfig)
    share_embeddings: bool = False  # one token table for source and target (needs data.joint)
    tie_output: bool = False  # the target token table is also the output projection

    def check(self, path: str) -> None:
        enc, dec = self.encoder, self.decoder
        enc_out = encoder_output_size(enc)
        if self.share_embeddings and not (
            isinstance(enc, TransformerEncoderConfig)
            and isinstance(dec, TransformerDecoderConfig)
            and enc.embed_dim == dec.embed_dim
        ):
            raise ConfigError(
                f"{path}.share_embeddings: true needs Transformer encoder and decoder with equal "
                f"embed_dim, got encoder {enc.kind} (embed_dim {enc.embed_dim}) and decoder "
                f"{dec.kind} (embed_dim {dec.embed_dim})"
            )
        if not isinstance(dec, RNNDecoderConfig):
            return
        kind = dec.attention.kind
        if kind in ("luong_dot", "scaled_dot") and enc_out != dec.hidden_size:
            raise ConfigError(
                f"{path}.decoder.attention.kind: {kind} needs encoder output size == decoder "
                f"hidden size, got {enc_out} ({_size_source(enc)}) and "
                f"model.decoder.hidden_size={dec.hidden_size}; use luong_general or bahdanau"
            )
        if kind == "multihead" and dec.hidden_size % dec.attention.num_heads:
            raise ConfigError(
                f"{path}.decoder.attention.num_heads: multihead needs model.decoder.hidden_size "
                f"divisible by num_heads, got hidden_size={dec.hidden_size} and "
                f"num_heads={dec.attention.num_heads}"
            )
        if self.tie_output and dec.embed_dim != dec.hidden_size:
            raise ConfigError(
                f"{path}.tie_output: true shares the target embedding with the output projection, "
                f"so it needs model.decoder.embed_dim == model.decoder.hidden_size, got "
                f"{dec.embed_dim} and {dec.hidden_size}"
            )
        if dec.bridge == "mean" and enc_out != dec.hidden_size:
            raise ConfigError(
                f"{path}.decoder.bridge: 'mean' copies the mean encoder state, so it needs encoder "
                f"output size == decoder hidden size, got {enc_out} and {dec.hidden_size}; "
                "use 'linear'"
            )
        if dec.bridge == "last" and not isinstance(enc, RNNEncoderConfig):
            raise ConfigError(
                f"{path}.decoder.bridge: 'last' copies an RNN encoder's final states, but "
                f"model.encoder.kind is {enc.kind!r}; use 'linear' (masked mean of the encoder "
                "states), 'mean' or 'zero'"
            )
        if dec.bridge == "last" and (
            enc_out != dec.hidden_size or enc.num_layers < dec.num_layers or enc.cell != dec.cell
        ):
            raise ConfigError(
                f"{path}.decoder.bridge: 'last' copies the encoder's final states, so it needs the "
                f"same cell ({enc.cell} vs {dec.cell}), encoder output size == decoder hidden size "
                f"({enc_out} vs {dec.hidden_size}) and at least as many encoder layers "
                f"({enc.num_layers} vs {dec.num_layers}); use 'linear'"
            )


def _size_source(enc: EncoderConfig) -> str:
    if isinstance(enc, RNNEncoderConfig):
        return (
            f"model.encoder.hidden_size={enc.hidden_size}"
            f"{' x 2 directions' if enc.bidirectional else ''}"
        )
    return f"model.encoder.embed_dim={enc.embed_dim}"


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def check(self, path: str) -> None:
        if self.model.share_embeddings and not self.data.joint:
            raise ConfigError(
                "model.share_embeddings: true needs data.joint: true (one vocabulary for both "
                "sides), got data.joint: false"
            )


def _check_sizes(cfg: Any, path: str) -> None:
    for name in ("embed_dim", "hidden_size", "num_layers"):
        v = getattr(cfg, name)
        require(v >= 1, f"{path}.{name}", v, "an integer >= 1")
    for name in ("dropout", "embed_dropout"):
        v = getattr(cfg, name)
        require(0.0 <= v < 1.0, f"{path}.{name}", v, "a number in [0, 1)")


# ---------------------------------------------------------------------------------------------
# Loading (the typed machinery is in typed_config.py)
# ---------------------------------------------------------------------------------------------


def from_dict(raw: dict, source: str = "config") -> Config:
    """Builds and validates a :class:`Config`; ``source`` names the file in error messages."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: expected a mapping at the top level, got {type(raw).__name__}"
        )
    try:
        return build(Config, raw, "")
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def load(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Reads a YAML config, applies ``--set`` overrides and validates the result."""
    raw = apply_overrides(read_yaml(path), overrides or [])
    return from_dict(raw, source=str(path))
