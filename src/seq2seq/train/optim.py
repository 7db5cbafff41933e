"""Optimizers from the ``train.optimizer`` config and learning-rate schedules from
``train.schedule``."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR

from ..config import OptimizerConfig, ScheduleConfig


def build_optimizer(
    cfg: OptimizerConfig, params: Iterable[torch.nn.Parameter]
) -> torch.optim.Optimizer:
    match cfg.kind:
        case "adam":
            return torch.optim.Adam(
                params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay
            )
    raise ValueError(f"unknown optimizer {cfg.kind!r}")


def noam(warmup_steps: int) -> Callable[[int], float]:
    """Factor of the peak rate for update ``n`` (1-based): ``min(n / w, sqrt(w / n))``.

    This is Vaswani et al. 2017, eq. 3, ``d_model^-0.5 * min(n^-0.5, n * w^-1.5)``, rescaled so the
    peak, reached at ``n = w``, is 1 (the peak rate is ``train.optimizer.lr``).
    """

    def factor(n: int) -> float:
        return min(n / warmup_steps, math.sqrt(warmup_steps / n))

    return factor


def build_schedule(cfg: ScheduleConfig, optimizer: torch.optim.Optimizer) -> LambdaLR:
    """A per-update schedule: call ``scheduler.step()`` after every ``optimizer.step()``.

    ``LambdaLR`` counts completed updates from 0, so update n (1-based) runs at ``lr * f(n)``.
    """
    match cfg.kind:
        case "constant":
            return LambdaLR(optimizer, lambda done: 1.0)
        case "noam":
            factor = noam(cfg.warmup_steps)
            return LambdaLR(optimizer, lambda done: factor(done + 1))
    raise ValueError(f"unknown schedule {cfg.kind!r}")
