"""Local attention (Luong, Pham & Manning 2015, section 3.2): attend to a window of 2D + 1 source
positions ``[p_t - D, p_t + D]`` around an aligned position p_t.

- ``monotonic`` (local-m): ``p_t = t``, the target position, clamped to the last real source
  position so that a target longer than its source still sees its source end (never an empty
  window). Weights are the scorer's softmax over the window (eq. 7 restricted to the window).
- ``predictive`` (local-p): ``p_t = S * sigmoid(v_p^T tanh(W_p h_t))`` (eq. 9), S the real length
  of each source (not the padded length), and the scores are weighted by a Gaussian centred at
  p_t with ``sigma = D / 2`` (eq. 10). Luong et al. multiply the window softmax by the Gaussian;
  we renormalise the product, ``a_t(s) ∝ exp(score(h_t, h_s)) * exp(-(s - p_t)^2 / (2 sigma^2))``,
  so the weights are a distribution (rows sum to 1) like every other attention here. The weights
  are differentiable in p_t through the Gaussian, so W_p and v_p are trained by backpropagation.

Positions outside the window and padded positions get exactly zero weight. The scorer is any of
:mod:`.attention` (Luong et al. use ``general``).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from .attention import Coverage, masked_softmax


class LocalAttention(nn.Module):
    """Local attention with window half-width ``window`` (D) around p_t.

    mode ``monotonic`` needs the target positions of the query rows: ``first_step + arange(T)``.
    """

    def __init__(
        self,
        scorer: nn.Module,
        query_size: int,
        memory_size: int,
        mode: Literal["monotonic", "predictive"],
        window: int,
        coverage: bool = False,
    ) -> None:
        super().__init__()
        if mode not in ("monotonic", "predictive"):
            raise ValueError(
                f"unknown local attention mode {mode!r}; expected monotonic or predictive"
            )
        if window < (1 if mode == "predictive" else 0):
            raise ValueError(
                f"local attention window must be >= 1 (>= 0 for monotonic), got {window}"
            )
        self.scorer = scorer
        self.mode = mode
        self.window = window
        self.coverage = Coverage(scorer.key_size) if coverage else None
        self.context_size = memory_size
        if mode == "predictive":
            self.position_proj = nn.Linear(query_size, query_size, bias=False)  # W_p, eq. 9
            self.position_v = nn.Linear(query_size, 1, bias=False)  # v_p, eq. 9

    def prepare(self, memory: Tensor) -> Tensor:
        return self.scorer.prepare(memory)

    def positions(self, query: Tensor, mask: Tensor, first_step: int) -> Tensor:
        """The aligned source positions p_t (B, T), real-valued for ``predictive``."""
        lengths = mask.sum(dim=1, keepdim=True).to(query.dtype)  # (B, 1): S of each sentence
        if self.mode == "predictive":
            gate = torch.sigmoid(self.position_v(torch.tanh(self.position_proj(query))))
            return lengths * gate.squeeze(-1)  # (B, T), eq. 9
        t = torch.arange(query.size(1), device=query.device, dtype=query.dtype) + first_step
        return torch.minimum(t.unsqueeze(0), lengths - 1)  # (B, T)

    def forward(
        self,
        query: Tensor,
        keys: Tensor,
        memory: Tensor,
        mask: Tensor,
        first_step: int = 0,
        coverage: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """query (B, T, Hq), keys (B, S, K), memory (B, S, Hm), mask (B, S), coverage (B, S) or
        None -> context (B, T, Hm), weights (B, T, S) with exact zeros outside the window."""
        if self.coverage is not None and coverage is not None:
            keys = self.coverage(keys, coverage)
        scores = self.scorer(query, keys)  # (B, T, S)
        p = self.positions(query, mask, first_step)  # (B, T)
        src_pos = torch.arange(mask.size(1), device=query.device, dtype=query.dtype)
        dist = src_pos.view(1, 1, -1) - p.unsqueeze(-1)  # (B, T, S)
        in_window = (dist.abs() <= self.window) & mask.unsqueeze(1)  # (B, T, S)
        if self.mode == "predictive":
            sigma = self.window / 2
            scores = scores - dist.pow(2) / (2 * sigma**2)  # Gaussian in log space, eq. 10
        weights = masked_softmax(scores, in_window)
        return torch.bmm(weights, memory), weights
