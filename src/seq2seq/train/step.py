"""One optimizer update: teacher-forced forward passes under autocast, the fused output-layer loss,
backward over the accumulated batches (DDP synchronises on the last one only), the skip of a
non-finite loss, clipping, and the optimizer, scaler and schedule steps. The
:class:`~.trainer.Trainer` owns the loop around it, the run directory and the checkpoints."""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from ..data.batching import Batch
from ..runtime import autocast
from ..train_config import TrainConfig
from .loss import output_layer_nll
from .optim import build_optimizer, build_schedule


class TrainingError(RuntimeError):
    """Training cannot go on: repeated non-finite losses, out of memory."""


@dataclass
class Updater:
    """The model's optimizer, schedule and gradient scaler, and the update they make together.
    ``ddp`` (the DistributedDataParallel wrapper, or None) runs the forward passes."""

    model: torch.nn.Module
    cfg: TrainConfig
    precision: str
    device: torch.device
    higher: bool  # the validation metric improves upwards (for a plateau schedule)
    ddp: torch.nn.Module | None = None
    optimizer: torch.optim.Optimizer = field(init=False)
    schedule: Any = field(init=False)
    scaler: torch.amp.GradScaler = field(init=False)

    def __post_init__(self) -> None:
        t = self.cfg
        self.optimizer = build_optimizer(t.optimizer, self.model.parameters())
        self.schedule = build_schedule(t.schedule, self.optimizer, t.max_steps, self.higher)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def __call__(self, batches: list[Batch]) -> tuple[float, int]:
        """One optimizer step over ``batches`` (gradient accumulation): the gradient is that of
        the summed loss over all their target tokens divided by the token count, as one big
        batch would give. Returns (mean loss, tokens); a non-finite loss skips the step and is
        returned as it is."""
        t = self.cfg
        model = self.model if self.ddp is None else self.ddp
        tokens = sum(b.num_tgt_tokens for b in batches)
        total = 0.0
        for i, batch in enumerate(batches):
            b = batch.to(self.device)
            sync = nullcontext() if self.ddp is None or i == len(batches) - 1 else model.no_sync()
            try:
                with sync:
                    with autocast(self.precision, self.device):
                        hidden = model(b.src, b.src_mask, b.tgt_in, features=True)
                        loss, _, _ = output_layer_nll(
                            hidden, self.model.output_layer, b.tgt_out, t.label_smoothing
                        )
                    self.scaler.scale(loss / tokens).backward()
            except (torch.OutOfMemoryError, RuntimeError) as e:
                if not isinstance(e, torch.OutOfMemoryError) and "can't allocate memory" not in str(
                    e
                ):
                    raise
                raise TrainingError(
                    f"out of memory on a batch of {b.size} sentences x {b.src.size(1)} source / "
                    f"{b.tgt_in.size(1)} target tokens; lower train.batch_tokens (now "
                    f"{t.batch_tokens}) or train.batch_size (now {t.batch_size})"
                ) from None
            total += float(loss.detach())
        if not math.isfinite(total):  # skipped: the trainer counts these
            self.optimizer.zero_grad(set_to_none=True)
            return total, tokens
        if t.clip_norm is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.schedule.after_update()
        self.optimizer.zero_grad(set_to_none=True)
        return total / tokens, tokens
