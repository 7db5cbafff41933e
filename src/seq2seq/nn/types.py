"""Types shared by every encoder and decoder: what an encoder returns, what a decoder state offers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from torch import Tensor


@dataclass
class EncoderOutput:
    """states: (B, S, H) encoder outputs; mask: (B, S) True at real tokens;
    final: per-layer final states, each (num_layers, B, H), for RNN encoders (``None`` otherwise)."""

    states: Tensor
    mask: Tensor
    final: tuple[Tensor, ...] | None = None


class DecoderState(Protocol):
    """What search needs of any decoder's state: attention of the last step and row selection."""

    attention: Tensor | None  # (B, S) weights of the last step, or None before the first

    def select(self, index: Tensor) -> DecoderState:
        """A new state whose row i is row ``index[i]`` of this one (beam reorder / expansion)."""
        ...
