"""Typed configuration: YAML -> a tree of frozen dataclasses, validated at load time.

Every error names the dotted key at fault, the value found and what was expected, e.g.
``model.encoder.hidden_size: expected an integer, got 'big' (str)``. Variants are tagged by a
``kind`` field and resolved with one small dict per choice (no registries).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .typed_config import (  # noqa: F401  (re-exported: the config API)
    ConfigError,
    apply_overrides,
    build,
    parse_override,
    read_yaml,
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
        _require(self.vocab_size >= 8, f"{path}.vocab_size", self.vocab_size, "an integer >= 8")
        _require(
            0.0 < self.character_coverage <= 1.0,
            f"{path}.character_coverage",
            self.character_coverage,
            "a number in (0, 1]",
        )
        _require(self.min_freq >= 1, f"{path}.min_freq", self.min_freq, "an integer >= 1")
        if self.max_size is not None:
            _require(self.max_size >= 1, f"{path}.max_size", self.max_size, "an integer >= 1")


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
        _require(
            bool(self.train), f"{path}.train", self.train, "a path prefix of the training files"
        )
        _require(bool(self.dev), f"{path}.dev", self.dev, "a path prefix of the dev files")
        _require(
            self.src_suffix != self.tgt_suffix,
            f"{path}.tgt_suffix",
            self.tgt_suffix,
            "a suffix different from data.src_suffix",
        )
        if self.max_len is not None:
            _require(self.max_len >= 1, f"{path}.max_len", self.max_len, "an integer >= 1 or null")
        if self.src_truncate is not None:
            _require(
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
            _require(
                self.hidden_size >= 1, f"{path}.hidden_size", self.hidden_size, "an integer >= 1"
            )
        if self.kind == "local_p":
            _require(
                self.window >= 1,
                f"{path}.window",
                self.window,
                "an integer >= 1 for local_p (the Gaussian's sigma is window / 2)",
            )
        _require(self.window >= 0, f"{path}.window", self.window, "an integer >= 0")
        _require(self.num_heads >= 1, f"{path}.num_heads", self.num_heads, "an integer >= 1")


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
        _require(
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
            _require(v >= 1, f"{path}.{name}", v, "an integer >= 1")
        for name in ("dropout", "attention_dropout", "activation_dropout"):
            v = getattr(self, name)
            _require(0.0 <= v < 1.0, f"{path}.{name}", v, "a number in [0, 1)")
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
class OptimizerConfig:
    kind: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    lr: float = 1e-3  # the peak rate; schedules scale it
    betas: tuple[float, float] = (0.9, 0.999)  # adam, adamw
    eps: float = 1e-8  # adam, adamw, rmsprop
    weight_decay: float = 0.0  # decoupled for adamw, L2 otherwise
    momentum: float = 0.0  # sgd, rmsprop
    nesterov: bool = False  # sgd

    def check(self, path: str) -> None:
        _require(self.lr > 0, f"{path}.lr", self.lr, "a number > 0")
        for i, b in enumerate(self.betas):
            _require(0.0 <= b < 1.0, f"{path}.betas[{i}]", b, "a number in [0, 1)")
        _require(self.weight_decay >= 0, f"{path}.weight_decay", self.weight_decay, "a number >= 0")
        _require(
            0.0 <= self.momentum < 1.0, f"{path}.momentum", self.momentum, "a number in [0, 1)"
        )
        if self.nesterov and (self.kind != "sgd" or self.momentum == 0):
            raise ConfigError(
                f"{path}.nesterov: true needs kind 'sgd' with momentum > 0, got "
                f"kind {self.kind!r}, momentum {self.momentum}"
            )


def _check_warmup(cfg: Any, path: str) -> None:
    _require(cfg.warmup_steps >= 0, f"{path}.warmup_steps", cfg.warmup_steps, "an integer >= 0")


@dataclass(frozen=True)
class ConstantScheduleConfig:
    """The optimizer's rate, after an optional linear warm-up."""

    kind: Literal["constant"] = "constant"
    warmup_steps: int = 0

    def check(self, path: str) -> None:
        _check_warmup(self, path)


@dataclass(frozen=True)
class NoamScheduleConfig:
    """Linear warm-up then inverse square root decay (Vaswani et al. 2017, eq. 3), peaking at
    ``train.optimizer.lr`` at step ``warmup_steps``."""

    kind: Literal["noam"] = "noam"
    warmup_steps: int = 4000

    def check(self, path: str) -> None:
        _require(
            self.warmup_steps >= 1, f"{path}.warmup_steps", self.warmup_steps, "an integer >= 1"
        )


@dataclass(frozen=True)
class LinearScheduleConfig:
    """Linear warm-up, then linear decay to ``min_lr_ratio * lr`` at ``total_steps``
    (default: train.max_steps)."""

    kind: Literal["linear"] = "linear"
    warmup_steps: int = 0
    total_steps: int | None = None
    min_lr_ratio: float = 0.0

    def check(self, path: str) -> None:
        _check_decay(self, path)


@dataclass(frozen=True)
class CosineScheduleConfig:
    """Linear warm-up, then half a cosine down to ``min_lr_ratio * lr`` at ``total_steps``
    (default: train.max_steps; Loshchilov & Hutter 2017, without restarts)."""

    kind: Literal["cosine"] = "cosine"
    warmup_steps: int = 0
    total_steps: int | None = None
    min_lr_ratio: float = 0.0

    def check(self, path: str) -> None:
        _check_decay(self, path)


@dataclass(frozen=True)
class PlateauScheduleConfig:
    """Multiply the rate by ``factor`` after ``patience`` validations without improvement of
    ``train.metric``, down to ``min_lr``."""

    kind: Literal["plateau"] = "plateau"
    factor: float = 0.5
    patience: int = 2
    min_lr: float = 0.0

    def check(self, path: str) -> None:
        _require(0.0 < self.factor < 1.0, f"{path}.factor", self.factor, "a number in (0, 1)")
        _require(self.patience >= 0, f"{path}.patience", self.patience, "an integer >= 0")
        _require(self.min_lr >= 0, f"{path}.min_lr", self.min_lr, "a number >= 0")


def _check_decay(cfg: Any, path: str) -> None:
    _check_warmup(cfg, path)
    _require(
        0.0 <= cfg.min_lr_ratio <= 1.0,
        f"{path}.min_lr_ratio",
        cfg.min_lr_ratio,
        "a number in [0, 1]",
    )
    if cfg.total_steps is not None:
        _require(
            cfg.total_steps > cfg.warmup_steps,
            f"{path}.total_steps",
            cfg.total_steps,
            f"an integer > warmup_steps ({cfg.warmup_steps})",
        )


ScheduleConfig = (
    ConstantScheduleConfig
    | NoamScheduleConfig
    | LinearScheduleConfig
    | CosineScheduleConfig
    | PlateauScheduleConfig
)


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 1
    batch_tokens: int | None = 4096  # token budget per batch (padded source+target tokens)
    batch_size: int | None = None  # sentence-count mode (exclusive with batch_tokens)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ConstantScheduleConfig)  # LR per update
    clip_norm: float | None = 1.0
    label_smoothing: float = 0.1
    accumulate: int = 1  # batches per update
    max_steps: int | None = None  # updates
    max_epochs: int | None = None
    max_minutes: float | None = None
    validate_every: int = 500
    checkpoint_every: int | None = None  # steps between checkpoints besides validations
    keep_last: int = 3  # numbered checkpoints ckpt-STEP.pt kept for averaging
    keep_best: int = 1  # best-STEP.pt files kept by the validation metric (best.pt: the best)
    patience: int | None = None  # validations without improvement before stopping
    log_every: int = 50
    tensorboard: bool = True  # event files in RUN_DIR/tensorboard
    metric: Literal["exact_match", "bleu", "chrf", "ter", "loss", "ppl"] = "bleu"
    valid_beam_size: int = 1
    valid_max_len_ratio: float = 2.0  # decoding stops at ratio * source length + 10
    max_bad_steps: int = 5  # consecutive NaN/inf losses before the run stops
    # autocast; fp16 needs CUDA, bf16 on CPU native bf16; auto: bf16 where native, else float32
    precision: Literal["float32", "bf16", "fp16", "auto"] = "float32"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = None  # torch intra-op threads; None leaves torch's default

    def check(self, path: str) -> None:
        if (self.batch_tokens is None) == (self.batch_size is None):
            raise ConfigError(
                f"{path}.batch_tokens / {path}.batch_size: set exactly one of them (the other to "
                f"null), got batch_tokens={self.batch_tokens}, batch_size={self.batch_size}"
            )
        for name in (
            "batch_tokens",
            "batch_size",
            "max_steps",
            "max_epochs",
            "threads",
            "checkpoint_every",
            "patience",
            "accumulate",
            "max_bad_steps",
        ):
            v = getattr(self, name)
            if v is not None:
                _require(v >= 1, f"{path}.{name}", v, "an integer >= 1 or null")
        if self.max_minutes is not None:
            _require(self.max_minutes > 0, f"{path}.max_minutes", self.max_minutes, "a number > 0")
        if self.max_steps is None and self.max_epochs is None and self.max_minutes is None:
            raise ConfigError(
                f"{path}: no stopping rule; set train.max_steps, train.max_epochs or train.max_minutes"
            )
        if self.clip_norm is not None:
            _require(
                self.clip_norm > 0, f"{path}.clip_norm", self.clip_norm, "a number > 0 or null"
            )
        _require(
            0.0 <= self.label_smoothing < 1.0,
            f"{path}.label_smoothing",
            self.label_smoothing,
            "a number in [0, 1)",
        )
        _require(
            self.validate_every >= 1,
            f"{path}.validate_every",
            self.validate_every,
            "an integer >= 1",
        )
        _require(self.log_every >= 1, f"{path}.log_every", self.log_every, "an integer >= 1")
        _require(self.keep_last >= 0, f"{path}.keep_last", self.keep_last, "an integer >= 0")
        _require(self.keep_best >= 1, f"{path}.keep_best", self.keep_best, "an integer >= 1")
        _require(
            self.valid_beam_size >= 1,
            f"{path}.valid_beam_size",
            self.valid_beam_size,
            "an integer >= 1",
        )
        sched = self.schedule
        if sched.kind in ("linear", "cosine") and sched.total_steps is None:
            if self.max_steps is None:
                raise ConfigError(
                    f"{path}.schedule.total_steps: a {sched.kind} decay needs total_steps or "
                    f"{path}.max_steps, both are null"
                )
            _require(
                self.max_steps > sched.warmup_steps,
                f"{path}.max_steps",
                self.max_steps,
                f"an integer > {path}.schedule.warmup_steps ({sched.warmup_steps})",
            )
        _require(
            self.valid_max_len_ratio > 0,
            f"{path}.valid_max_len_ratio",
            self.valid_max_len_ratio,
            "a number > 0",
        )


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
        _require(v >= 1, f"{path}.{name}", v, "an integer >= 1")
    for name in ("dropout", "embed_dropout"):
        v = getattr(cfg, name)
        _require(0.0 <= v < 1.0, f"{path}.{name}", v, "a number in [0, 1)")


def _require(ok: bool, path: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{path}: expected {expected}, got {value!r}")


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
