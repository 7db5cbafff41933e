"""Ensembles of models that share vocabularies, behind the same decode contract as one model.

Each step averages the members' log-probabilities (a log-linear combination); search takes the
log-softmax of the result, so the ensemble's distribution is renormalised. Attention is the
members' mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


@dataclass
class EnsembleState:
    states: list[Any]
    attention: Tensor | None = None

    def select(self, index: Tensor) -> EnsembleState:
        return EnsembleState(
            [s.select(index) for s in self.states],
            None if self.attention is None else self.attention.index_select(0, index),
        )


class Ensemble(nn.Module):
    """Several models decoding together: ``encode`` / ``init_state`` / ``decode_step``."""

    def __init__(self, models: list[nn.Module]) -> None:
        super().__init__()
        if not models:
            raise ValueError("an ensemble needs at least one model")
        self.models = nn.ModuleList(models)

    def encode(self, src: Tensor, src_mask: Tensor) -> list[Any]:
        return [m.encode(src, src_mask) for m in self.models]

    def init_state(self, encs: list[Any]) -> EnsembleState:
        return EnsembleState([m.init_state(e) for m, e in zip(self.models, encs)])

    def decode_step(self, prev: Tensor, state: EnsembleState) -> tuple[Tensor, EnsembleState]:
        """prev (B,) -> mean of the members' log-probabilities (B, V) and the new state."""
        logps, states = [], []
        for m, s in zip(self.models, state.states):
            logits, s = m.decode_step(prev, s)
            logps.append(torch.log_softmax(logits.float(), dim=-1))
            states.append(s)
        atts = [s.attention for s in states if s.attention is not None]
        attention = torch.stack(atts).mean(0) if len(atts) == len(states) else None
        return torch.stack(logps).mean(0), EnsembleState(states, attention)
