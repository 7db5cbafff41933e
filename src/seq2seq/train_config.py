"""The ``train:`` section of the configuration schema: optimizer, learning-rate schedule and the
training loop's settings (batching, stopping rules, validation, checkpoints, precision). Part of
:mod:`seq2seq.config`, which re-exports every class here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .typed_config import ConfigError, require


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
        require(self.lr > 0, f"{path}.lr", self.lr, "a number > 0")
        for i, b in enumerate(self.betas):
            require(0.0 <= b < 1.0, f"{path}.betas[{i}]", b, "a number in [0, 1)")
        require(self.weight_decay >= 0, f"{path}.weight_decay", self.weight_decay, "a number >= 0")
        require(0.0 <= self.momentum < 1.0, f"{path}.momentum", self.momentum, "a number in [0, 1)")
        if self.nesterov and (self.kind != "sgd" or self.momentum == 0):
            raise ConfigError(
                f"{path}.nesterov: true needs kind 'sgd' with momentum > 0, got "
                f"kind {self.kind!r}, momentum {self.momentum}"
            )


def _check_warmup(cfg: Any, path: str) -> None:
    require(cfg.warmup_steps >= 0, f"{path}.warmup_steps", cfg.warmup_steps, "an integer >= 0")


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
        require(
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
class CosineScheduleConfig(LinearScheduleConfig):
    """Linear warm-up, then half a cosine down to ``min_lr_ratio * lr`` at ``total_steps``
    (default: train.max_steps; Loshchilov & Hutter 2017, without restarts). The linear
    schedule's settings and checks; only the shape of the decay differs."""

    kind: Literal["cosine"] = "cosine"  # type: ignore[assignment]


@dataclass(frozen=True)
class PlateauScheduleConfig:
    """Multiply the rate by ``factor`` after ``patience`` validations without improvement of
    ``train.metric``, down to ``min_lr``."""

    kind: Literal["plateau"] = "plateau"
    factor: float = 0.5
    patience: int = 2
    min_lr: float = 0.0

    def check(self, path: str) -> None:
        require(0.0 < self.factor < 1.0, f"{path}.factor", self.factor, "a number in (0, 1)")
        require(self.patience >= 0, f"{path}.patience", self.patience, "an integer >= 0")
        require(self.min_lr >= 0, f"{path}.min_lr", self.min_lr, "a number >= 0")


def _check_decay(cfg: Any, path: str) -> None:
    _check_warmup(cfg, path)
    require(
        0.0 <= cfg.min_lr_ratio <= 1.0,
        f"{path}.min_lr_ratio",
        cfg.min_lr_ratio,
        "a number in [0, 1]",
    )
    if cfg.total_steps is not None:
        require(
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
    # autocast; fp16 needs CUDA, bf16 on CPU native bf16; auto: bf16 where native and faster
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
                require(v >= 1, f"{path}.{name}", v, "an integer >= 1 or null")
        if self.max_minutes is not None:
            require(self.max_minutes > 0, f"{path}.max_minutes", self.max_minutes, "a number > 0")
        if self.max_steps is None and self.max_epochs is None and self.max_minutes is None:
            raise ConfigError(
                f"{path}: no stopping rule; set train.max_steps, train.max_epochs or train.max_minutes"
            )
        if self.clip_norm is not None:
            require(self.clip_norm > 0, f"{path}.clip_norm", self.clip_norm, "a number > 0 or null")
        require(
            0.0 <= self.label_smoothing < 1.0,
            f"{path}.label_smoothing",
            self.label_smoothing,
            "a number in [0, 1)",
        )
        require(
            self.validate_every >= 1,
            f"{path}.validate_every",
            self.validate_every,
            "an integer >= 1",
        )
        require(self.log_every >= 1, f"{path}.log_every", self.log_every, "an integer >= 1")
        require(self.keep_last >= 0, f"{path}.keep_last", self.keep_last, "an integer >= 0")
        require(self.keep_best >= 1, f"{path}.keep_best", self.keep_best, "an integer >= 1")
        require(
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
            require(
                self.max_steps > sched.warmup_steps,
                f"{path}.max_steps",
                self.max_steps,
                f"an integer > {path}.schedule.warmup_steps ({sched.warmup_steps})",
            )
        require(
            self.valid_max_len_ratio > 0,
            f"{path}.valid_max_len_ratio",
            self.valid_max_len_ratio,
            "a number > 0",
        )
