"""Global attention: scorers and the masked softmax that turns scores into weights.

A scorer maps a query (B, T, Hq) and precomputed keys (B, S, K) to scores (B, T, S). Keys are
computed once per sentence by ``prepare(memory)`` so a decoding step costs one (B, 1, S) scoring.
``GlobalAttention`` masks padded source positions (they get exactly zero weight) and returns the
context vectors and weights. Nothing is mutated inside ``forward``.

References: Bahdanau, Cho & Bengio 2015, "Neural Machine Translation by Jointly Learning to Align
and Translate" (eq. 6, appendix A.1.2); Luong, Pham & Manning 2015, "Effective Approaches to
Attention-based Neural Machine Translation" (eq. 8).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class BahdanauScorer(nn.Module):
    """Additive score: ``score(h_t, h_s) = v_a^T tanh(W_a h_t + U_a h_s)`` (Bahdanau et al. eq. 6).

    As in OpenNMT's "mlp" attention, the query is the current decoder state h_t (Luong's ordering),
    so every scorer plugs into the same decoder.
    """

    def __init__(self, query_size: int, memory_size: int, hidden_size: int) -> None:
        super().__init__()
        self.query_proj = nn.Linear(query_size, hidden_size, bias=True)
        self.memory_proj = nn.Linear(memory_size, hidden_size, bias=False)
        self.v = nn.Linear(hidden_size, 1, bias=False)

    def prepare(self, memory: Tensor) -> Tensor:
        """U_a h_s for all source positions: (B, S, Hm) -> (B, S, A)."""
        return self.memory_proj(memory)

    def forward(self, query: Tensor, keys: Tensor) -> Tensor:
        q = self.query_proj(query)  # (B, T, A)
        return self.v(torch.tanh(q.unsqueeze(2) + keys.unsqueeze(1))).squeeze(-1)  # (B, T, S)


class LuongDotScorer(nn.Module):
    """Dot score: ``score(h_t, h_s) = h_t^T h_s`` (Luong et al. eq. 8, "dot"); needs equal sizes."""

    def __init__(self, query_size: int, memory_size: int) -> None:
        super().__init__()
        if query_size != memory_size:
            raise ValueError(
                f"dot attention needs query size == memory size, got {query_size} and {memory_size}"
            )

    def prepare(self, memory: Tensor) -> Tensor:
        return memory

    def forward(self, query: Tensor, keys: Tensor) -> Tensor:
        return torch.bmm(query, keys.transpose(1, 2))  # (B, T, S)


class LuongGeneralScorer(nn.Module):
    """Bilinear score: ``score(h_t, h_s) = h_t^T W_a h_s`` (Luong et al. eq. 8, "general").

    W_a h_s is computed once per sentence in ``prepare``.
    """

    def __init__(self, query_size: int, memory_size: int) -> None:
        super().__init__()
        self.memory_proj = nn.Linear(memory_size, query_size, bias=False)

    def prepare(self, memory: Tensor) -> Tensor:
        return self.memory_proj(memory)  # (B, S, Hq)

    def forward(self, query: Tensor, keys: Tensor) -> Tensor:
        return torch.bmm(query, keys.transpose(1, 2))


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax over the last axis with ``mask`` (B, S) False positions set to exactly 0.

    scores: (B, T, S). Every row must have at least one True position (a source always has EOS).
    """
    return scores.masked_fill(~mask.unsqueeze(1), float("-inf")).softmax(dim=-1)


class GlobalAttention(nn.Module):
    """Attention over all source positions with a pluggable scorer."""

    def __init__(self, scorer: nn.Module) -> None:
        super().__init__()
        self.scorer = scorer

    def prepare(self, memory: Tensor) -> Tensor:
        return self.scorer.prepare(memory)

    def forward(
        self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """query (B, T, Hq), keys (B, S, K), memory (B, S, Hm), mask (B, S)
        -> context (B, T, Hm), weights (B, T, S)."""
        weights = masked_softmax(self.scorer(query, keys), mask)
        return torch.bmm(weights, memory), weights
