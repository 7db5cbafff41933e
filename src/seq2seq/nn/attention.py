"""Global attention: scorers, the masked softmax, and the attention modules the RNN decoder uses.

A scorer maps a query (B, T, Hq) and precomputed keys (B, S, K) to scores (B, T, S). Keys are
computed once per sentence by ``prepare(memory)`` so a decoding step costs one (B, 1, S) scoring.
An attention module (``GlobalAttention``, ``MultiHeadAttention`` here, ``LocalAttention`` in
:mod:`.local_attention`) masks padded source positions (they get exactly zero weight) and returns
context vectors (B, T, context_size) and weights (B, T, S). Every attention module has the same
``forward(query, keys, memory, mask, first_step, coverage)``; nothing is mutated inside it.

Coverage (Tu et al. 2016, "Modeling Coverage for Neural Machine Translation", eq. 6-7 with the
simplest, linguistic coverage C_t = C_{t-1} + a_t): the coverage of each source position so far,
(B, S), is fed to the scorer by adding ``w_c * C_{t-1,s}`` to its keys, i.e. for the additive
scorers ``v_a^T tanh(W_a h_t + U_a h_s + w_c C_{t-1,s})`` exactly as in Tu et al.

References: Bahdanau, Cho & Bengio 2015, "Neural Machine Translation by Jointly Learning to Align
and Translate" (eq. 6, appendix A.1.2); Luong, Pham & Manning 2015, "Effective Approaches to
Attention-based Neural Machine Translation" (eq. 8); Vaswani et al. 2017, "Attention Is All You
Need" (eq. 1, section 3.2.2).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class _AdditiveTanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor) -> Tensor:  # noqa: ANN001
        dtype = torch.promote_types(a.dtype, b.dtype)
        acc = torch.promote_types(dtype, torch.float32)
        z = torch.add(a.to(acc) * 2, b, alpha=2)  # 2 (a + b), in float32 (or float64)
        t = z.sigmoid_().mul_(2).sub_(1).to(dtype)  # tanh(x) = 2 sigmoid(2x) - 1
        ctx.save_for_backward(t)
        ctx.shapes = a.shape, b.shape
        return t

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor]:  # noqa: ANN001
        (t,) = ctx.saved_tensors
        g = torch.ops.aten.tanh_backward(grad, t)  # grad * (1 - t^2)
        return g.sum_to_size(ctx.shapes[0]), g.sum_to_size(ctx.shapes[1])


def additive_tanh(a: Tensor, b: Tensor) -> Tensor:
    """``tanh(a + b)`` (broadcast), the additive scorers' inner term, for every (query, source)
    pair: ``2 sigmoid(2 (a + b)) - 1`` with the sum and the sigmoid in float32 (float64 for float64
    inputs), the result in the inputs' dtype, and tanh's own backward pass.

    On CPU ``torch.tanh`` is far slower than ``torch.sigmoid``: for tanh(q + k) over 227 x 18 x
    256 (a Multi30k RNN batch's decoding step, 2 threads, Zen 4) 2.0 ms against 0.43 in float32
    and 1.1 against 0.65 in bf16 (max error against float64: 1.9e-7 against 5.5e-8 in float32;
    in bf16 0.0020 against 0.0033, as the sum is not rounded to bf16 first).
    """
    return _AdditiveTanh.apply(a, b)


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
        self.key_size = hidden_size

    def prepare(self, memory: Tensor) -> Tensor:
        """U_a h_s for all source positions: (B, S, Hm) -> (B, S, A)."""
        return self.memory_proj(memory)

    def forward(self, query: Tensor, keys: Tensor) -> Tensor:
        q = self.query_proj(query)  # (B, T, A)
        return self.v(additive_tanh(q.unsqueeze(2), keys.unsqueeze(1))).squeeze(-1)  # (B, T, S)


class LuongDotScorer(nn.Module):
    """Dot score: ``score(h_t, h_s) = h_t^T h_s`` (Luong et al. eq. 8, "dot"); needs equal sizes."""

    def __init__(self, query_size: int, memory_size: int) -> None:
        super().__init__()
        if query_size != memory_size:
            raise ValueError(
                f"dot attention needs query size == memory size, got {query_size} and {memory_size}"
            )
        self.key_size = memory_size

    def prepare(self, memory: Tensor) -> Tensor:
        return memory

    def forward(self, query: Tensor, keys: Tensor) -> Tensor:
        return torch.bmm(query, keys.transpose(1, 2))  # (B, T, S)


class ScaledDotScorer(LuongDotScorer):
    """Scaled dot score: ``score(h_t, h_s) = h_t^T h_s / sqrt(d)`` (Vaswani et al. eq. 1).

    The scaling keeps the softmax out of saturation when d is large; needs equal sizes.
    """

    def forward(self, query: Tensor, keys: Tensor) -> Tensor:
        return torch.bmm(query, keys.transpose(1, 2)) / math.sqrt(self.key_size)


class LuongGeneralScorer(nn.Module):
    """Bilinear score: ``score(h_t, h_s) = h_t^T W_a h_s`` (Luong et al. eq. 8, "general").

    W_a h_s is computed once per sentence in ``prepare``.
    """

    def __init__(self, query_size: int, memory_size: int) -> None:
        super().__init__()
        self.memory_proj = nn.Linear(memory_size, query_size, bias=False)
        self.key_size = query_size

    def prepare(self, memory: Tensor) -> Tensor:
        return self.memory_proj(memory)  # (B, S, Hq)

    def forward(self, query: Tensor, keys: Tensor) -> Tensor:
        return torch.bmm(query, keys.transpose(1, 2))


class LuongConcatScorer(nn.Module):
    """Concat score: ``score(h_t, h_s) = v_a^T tanh(W_a [h_t; h_s])`` (Luong et al. eq. 8).

    W_a (A x (Hq + Hm), no bias) is applied as ``W_q h_t + W_m h_s`` (the same product, split by
    columns) so the source half is computed once per sentence. Unlike ``BahdanauScorer`` there is
    no bias, and the inner size A defaults to the decoder hidden size as in the paper.
    """

    def __init__(self, query_size: int, memory_size: int, hidden_size: int) -> None:
        super().__init__()
        self.query_proj = nn.Linear(query_size, hidden_size, bias=False)
        self.memory_proj = nn.Linear(memory_size, hidden_size, bias=False)
        self.v = nn.Linear(hidden_size, 1, bias=False)
        self.key_size = hidden_size

    def prepare(self, memory: Tensor) -> Tensor:
        return self.memory_proj(memory)  # (B, S, A)

    def forward(self, query: Tensor, keys: Tensor) -> Tensor:
        q = self.query_proj(query)  # (B, T, A)
        return self.v(additive_tanh(q.unsqueeze(2), keys.unsqueeze(1))).squeeze(-1)  # (B, T, S)


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax over the last axis with ``mask`` False positions set to exactly 0.

    scores: (B, T, S); mask: (B, S) or (B, T, S). Every row must have at least one True position
    (a source always has EOS).
    """
    if mask.dim() == 2:
        mask = mask.unsqueeze(1)
    return scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)


class Coverage(nn.Module):
    """Adds ``w_c * C_{t-1,s}`` to the keys (Tu et al. 2016, eq. 6): keys (B, S, K), coverage
    (B, S) -> (B, T=1 broadcast, S, K) keys for this step."""

    def __init__(self, key_size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(key_size) / math.sqrt(key_size))

    def forward(self, keys: Tensor, coverage: Tensor) -> Tensor:
        return keys + coverage.unsqueeze(-1) * self.weight  # (B, S, K)


class GlobalAttention(nn.Module):
    """Attention over all source positions with a pluggable scorer (Luong et al. section 3.1)."""

    def __init__(self, scorer: nn.Module, memory_size: int, coverage: bool = False) -> None:
        super().__init__()
        self.scorer = scorer
        self.coverage = Coverage(scorer.key_size) if coverage else None
        self.context_size = memory_size

    def prepare(self, memory: Tensor) -> Tensor:
        """Per-sentence keys: (B, S, Hm) -> (B, S, K)."""
        return self.scorer.prepare(memory)

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
        None -> context (B, T, Hm), weights (B, T, S). ``first_step`` (the target position of the
        first query row) is unused by global attention."""
        if self.coverage is not None and coverage is not None:
            keys = self.coverage(keys, coverage)
        weights = masked_softmax(self.scorer(query, keys), mask)
        return torch.bmm(weights, memory), weights


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product attention of the decoder state over the source (Vaswani et al.
    section 3.2.2): ``head_i = softmax(Q W_i^Q (K W_i^K)^T / sqrt(d_k)) V W_i^V``, context
    ``W^O [head_1; ...; head_h]`` of the decoder hidden size. The weights reported are the mean
    over heads, so rows still sum to 1 and padded positions still get exactly 0.
    """

    def __init__(
        self, query_size: int, memory_size: int, num_heads: int, coverage: bool = False
    ) -> None:
        super().__init__()
        if query_size % num_heads:
            raise ValueError(
                f"multi-head attention needs query size {query_size} divisible by "
                f"num_heads {num_heads}"
            )
        self.num_heads = num_heads
        self.head_size = query_size // num_heads
        self.query_proj = nn.Linear(query_size, query_size, bias=False)  # W^Q
        self.memory_proj = nn.Linear(memory_size, 2 * query_size, bias=False)  # [W^K; W^V]
        self.out_proj = nn.Linear(query_size, query_size, bias=False)  # W^O
        self.coverage = Coverage(query_size) if coverage else None
        self.context_size = query_size

    def prepare(self, memory: Tensor) -> Tensor:
        """Keys and values side by side: (B, S, Hm) -> (B, S, 2 Hq)."""
        return self.memory_proj(memory)

    def _heads(self, x: Tensor) -> Tensor:
        """(B, L, Hq) -> (B, heads, L, d_k)."""
        return x.view(x.size(0), x.size(1), self.num_heads, self.head_size).transpose(1, 2)

    def forward(
        self,
        query: Tensor,
        keys: Tensor,
        memory: Tensor,
        mask: Tensor,
        first_step: int = 0,
        coverage: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """query (B, T, Hq), keys (B, S, 2 Hq) from ``prepare``, mask (B, S), coverage (B, S) or
        None -> context (B, T, Hq), weights (B, T, S) averaged over heads."""
        k, v = keys.chunk(2, dim=-1)  # (B, S, Hq) each
        if self.coverage is not None and coverage is not None:
            k = self.coverage(k, coverage)
        q, k, v = self._heads(self.query_proj(query)), self._heads(k), self._heads(v)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_size)  # (B, h, T, S)
        weights = scores.masked_fill(~mask[:, None, None, :], float("-inf")).softmax(dim=-1)
        heads = (weights @ v).transpose(1, 2).reshape(query.shape)  # (B, T, Hq)
        return self.out_proj(heads), weights.mean(dim=1)
