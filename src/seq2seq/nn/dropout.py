"""Dropout with a cheaper mask on CPU (Srivastava et al. 2014; inverted: kept values scaled by
1 / (1 - p)).

``torch.nn.functional.dropout`` on CPU draws one Bernoulli sample per element from the Mersenne
Twister, one element at a time: on the Multi30k reference Transformer that was ~8% of a float32
training step (docs/benchmarks.md). Here the mask comes from 16 random bits per element, taken four
at a time from 64-bit draws of the same generator (so ``torch.manual_seed`` and the checkpointed RNG
state govern it as before), and one compare. The drop probability is rounded to a multiple of
2^-16 (0.1 becomes 0.100006) and the scale uses the rounded value, so the expectation is kept
exactly. Only the boolean mask is saved for the backward pass.

On CUDA (whose fused kernel is fast already), in evaluation mode and for p = 0 or 1 this is
``F.dropout`` itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_LEVELS = 1 << 16


def _keep_mask(shape: torch.Size, p: float, device: torch.device) -> tuple[Tensor, float]:
    """A boolean mask of ``shape``, each element True with probability 1 - p' (p' = p rounded to
    a multiple of 2^-16), and the scale 1 / (1 - p')."""
    n = shape.numel()
    words = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=device)
    bits = words.view(torch.int16)[:n].view(shape)  # uniform over [-2^15, 2^15)
    dropped = round(p * _LEVELS)
    return bits >= dropped - _LEVELS // 2, _LEVELS / (_LEVELS - dropped)


class _MaskedScale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, keep: Tensor, scale: float) -> Tensor:  # noqa: ANN001
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return torch.where(keep, x * scale, 0.0)

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: ANN001, ANN205
        (keep,) = ctx.saved_tensors
        return torch.where(keep, grad * ctx.scale, 0.0), None, None


def uses_cheap_mask(x: Tensor, p: float, training: bool) -> bool:
    """Whether :func:`dropout` of ``x`` takes the cheap mask (else it is ``F.dropout``)."""
    return (
        training
        and 0.0 < p < 1.0
        and x.device.type == "cpu"
        and x.is_floating_point()
        and not torch.compiler.is_compiling()  # compiled, F.dropout becomes a fused counter RNG
    )


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """``F.dropout(x, p, training)`` with the cheaper CPU mask."""
    if not uses_cheap_mask(x, p, training):
        return F.dropout(x, p, training)
    keep, scale = _keep_mask(x.shape, p, x.device)
    return _MaskedScale.apply(x, keep, scale)


class Dropout(nn.Module):
    """Drop-in for ``nn.Dropout`` using :func:`dropout`."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
