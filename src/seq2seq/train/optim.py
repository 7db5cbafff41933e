"""Optimizers from ``train.optimizer`` and learning-rate schedules from ``train.schedule``.

Schedules are factors of the peak rate ``train.optimizer.lr`` as a function of the 1-based update
number n, stepped after every update; ``plateau`` instead reacts to validation results.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR, ReduceLROnPlateau

from ..config import OptimizerConfig, ScheduleConfig


def build_optimizer(
    cfg: OptimizerConfig, params: Iterable[torch.nn.Parameter]
) -> torch.optim.Optimizer:
    """Adam and AdamW take torch's fused kernel (one pass over each parameter) where every
    parameter is a floating-point tensor on the CPU or a CUDA device: on the CPU the default is a
    loop of a dozen elementwise operations per parameter."""
    params = list(params)
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    match cfg.kind:
        case "adam":
            return torch.optim.Adam(
                params,
                lr=cfg.lr,
                betas=cfg.betas,
                eps=cfg.eps,
                weight_decay=cfg.weight_decay,
                fused=fused or None,
            )
        case "adamw":
            return torch.optim.AdamW(
                params,
                lr=cfg.lr,
                betas=cfg.betas,
                eps=cfg.eps,
                weight_decay=cfg.weight_decay,
                fused=fused or None,
            )
        case "sgd":
            return torch.optim.SGD(
                params,
                lr=cfg.lr,
                momentum=cfg.momentum,
                weight_decay=cfg.weight_decay,
                nesterov=cfg.nesterov,
            )
        case "rmsprop":
            return torch.optim.RMSprop(
                params, lr=cfg.lr, eps=cfg.eps, momentum=cfg.momentum, weight_decay=cfg.weight_decay
            )
    raise ValueError(f"unknown optimizer {cfg.kind!r}")


Factor = Callable[[int], float]


def warmup(warmup_steps: int) -> Factor:
    """``min(1, n / w)``: linear warm-up to the peak at update ``w`` (none when w = 0)."""
    return lambda n: min(1.0, n / warmup_steps) if warmup_steps > 0 else 1.0


def noam(warmup_steps: int) -> Factor:
    """``min(n / w, sqrt(w / n))``: Vaswani et al. 2017, eq. 3,
    ``d_model^-0.5 * min(n^-0.5, n * w^-1.5)``, rescaled so the peak at ``n = w`` is 1."""
    return lambda n: min(n / warmup_steps, math.sqrt(warmup_steps / n))


def linear_decay(warmup_steps: int, total_steps: int, min_ratio: float) -> Factor:
    """Warm-up, then ``r + (1 - r) * (T - n) / (T - w)`` down to ``r`` at ``n = T`` and after."""
    up = warmup(warmup_steps)

    def factor(n: int) -> float:
        if n <= warmup_steps:
            return up(n)
        left = max(0.0, (total_steps - n) / (total_steps - warmup_steps))
        return min_ratio + (1.0 - min_ratio) * left

    return factor


def cosine_decay(warmup_steps: int, total_steps: int, min_ratio: float) -> Factor:
    """Warm-up, then ``r + (1 - r) * (1 + cos(pi * p)) / 2`` with ``p = (n - w) / (T - w)``
    clipped to 1."""
    up = warmup(warmup_steps)

    def factor(n: int) -> float:
        if n <= warmup_steps:
            return up(n)
        p = min(1.0, (n - warmup_steps) / (total_steps - warmup_steps))
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * p))

    return factor


class Schedule:
    """Call ``after_update()`` after every optimizer step and ``after_validation(value)`` after
    every validation; ``state_dict`` / ``load_state_dict`` for exact resume."""

    def __init__(self, per_update: LambdaLR | None, plateau: ReduceLROnPlateau | None) -> None:
        self.per_update, self.plateau = per_update, plateau

    def after_update(self) -> None:
        if self.per_update is not None:
            self.per_update.step()

    def after_validation(self, value: float) -> None:
        if self.plateau is not None:
            self.plateau.step(value)

    def state_dict(self) -> dict[str, Any]:
        sched = self.per_update or self.plateau
        return sched.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        (self.per_update or self.plateau).load_state_dict(state)


def build_schedule(
    cfg: ScheduleConfig,
    optimizer: torch.optim.Optimizer,
    max_steps: int | None = None,
    higher_is_better: bool = True,
) -> Schedule:
    """The schedule of ``cfg``; ``max_steps`` is the default decay length, ``higher_is_better``
    the direction of the validation metric (for ``plateau``).

    ``LambdaLR`` counts completed updates from 0, so update n (1-based) runs at ``lr * f(n)``.
    """
    match cfg.kind:
        case "constant":
            factor = warmup(cfg.warmup_steps)
        case "noam":
            factor = noam(cfg.warmup_steps)
        case "linear":
            factor = linear_decay(cfg.warmup_steps, cfg.total_steps or max_steps, cfg.min_lr_ratio)
        case "cosine":
            factor = cosine_decay(cfg.warmup_steps, cfg.total_steps or max_steps, cfg.min_lr_ratio)
        case "plateau":
            mode = "max" if higher_is_better else "min"
            return Schedule(
                None,
                ReduceLROnPlateau(
                    optimizer,
                    mode=mode,
                    factor=cfg.factor,
                    patience=cfg.patience,
                    min_lr=cfg.min_lr,
                ),
            )
        case _:
            raise ValueError(f"unknown schedule {cfg.kind!r}")
    return Schedule(LambdaLR(optimizer, lambda done: factor(done + 1)), None)
