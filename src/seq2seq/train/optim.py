"""Optimizers from the ``train.optimizer`` config."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ..config import OptimizerConfig


def build_optimizer(
    cfg: OptimizerConfig, params: Iterable[torch.nn.Parameter]
) -> torch.optim.Optimizer:
    match cfg.kind:
        case "adam":
            return torch.optim.Adam(
                params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay
            )
    raise ValueError(f"unknown optimizer {cfg.kind!r}")
