"""The Transformer's layers (Vaswani et al. 2017): multi-head attention (section 3.2.2, eq. 1 with
``Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V``), the position-wise feed-forward network
(section 3.3, eq. 2), and the encoder and decoder layers that wrap them in residual connections
with layer normalisation, post-norm or pre-norm. The stacks and the decoder's key/value cache are
in :mod:`.transformer`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .dropout import Dropout, dropout, uses_cheap_mask

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


def autocast_input(x: Tensor) -> Tensor:
    """``x`` in the autocast dtype of its device when autocast is on there and ``x`` is float32
    (what autocast would cast it to for a matrix product), else ``x`` itself.

    A tensor that feeds several linear layers (the query, key and value projections; the
    cross-attention keys and values of every decoder layer) is then cast once: autocast casts a
    layer's input at every call and caches the casts of parameters only, so LayerNorm's float32
    output was cast three times per self-attention, and the encoder states twice per decoder
    layer, each cast with its own copy back in the backward pass."""
    device = x.device.type
    if x.dtype == torch.float32 and torch.is_autocast_enabled(device):
        return x.to(torch.get_autocast_dtype(device))
    return x


class MultiHeadAttention(nn.Module):
    """``MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O`` with
    ``head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)`` (Vaswani et al. section 3.2.2).

    Keys and values are projected by :meth:`keys_values` so callers can cache them. Attention runs
    on ``scaled_dot_product_attention`` unless the weights are asked for, in which case the same
    softmax is computed explicitly (used for cross-attention, whose weights are returned).
    """

    def __init__(
        self, embed_dim: int, num_heads: int, memory_size: int | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        kv_dim = memory_size or embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(kv_dim, embed_dim)
        self.v_proj = nn.Linear(kv_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        self.dropout = dropout

    def _heads(self, x: Tensor) -> Tensor:
        """(B, T, D) -> (B, heads, T, d_k)."""
        return x.view(x.size(0), x.size(1), self.num_heads, self.head_dim).transpose(1, 2)

    def keys_values(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, S, Dk) -> keys, values each (B, heads, S, d_k)."""
        return self._heads(self.k_proj(x)), self._heads(self.v_proj(x))

    def forward(
        self,
        query: Tensor,
        keys: Tensor,
        values: Tensor,
        mask: Tensor | None = None,
        causal: bool = False,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """query (B, T, D); keys, values (B, heads, S, d_k); mask broadcastable to
        (B, heads, T, S), True where a key may be attended; ``causal``: position t sees keys
        <= t (needs T == S). Returns (B, T, D) and, with ``need_weights``, (B, heads, T, S)."""
        q = self._heads(self.q_proj(query))  # (B, h, T, dk)
        p = self.dropout if self.training else 0.0
        weights = None
        if need_weights and causal:
            raise ValueError("need_weights is only supported without a causal mask")
        if need_weights or uses_cheap_mask(q, p, self.training):
            # written out where the weights are wanted, and where .dropout's cheap mask applies
            # (CPU training): SDPA's own attention dropout draws one Bernoulli sample per weight
            scores = q @ keys.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, h, T, S)
            if causal:
                t, s = scores.shape[-2:]
                allowed = torch.ones(t, s, dtype=torch.bool, device=q.device).tril()
                mask = allowed if mask is None else mask & allowed
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            weights = scores.softmax(dim=-1)
            context = dropout(weights, p, self.training) @ values
            weights = weights if need_weights else None
        else:
            context = F.scaled_dot_product_attention(
                q, keys, values, attn_mask=mask, dropout_p=p, is_causal=causal
            )
        b, _, t, _ = context.shape
        out = self.out_proj(context.transpose(1, 2).reshape(b, t, -1))  # (B, T, D)
        return out, weights

    def attend_one(
        self,
        query: Tensor,
        keys: Tensor,
        values: Tensor,
        mask: Tensor | None = None,
        rows: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """One query position per row, the decoding step's case: query (N, 1, D); keys, values
        (M, h, S, d_k), row ``rows[n]`` of them for query n (``rows`` None: M == N); mask (N, 1, S)
        True where a key may be attended. Returns (N, 1, D) and the weights (N, h, 1, S).

        Written as broadcast products and sums rather than batched matrix products: compiled,
        the row gather, both products and the softmax fuse into loops that never copy the keys
        and values per row (beam search's rows share their sentence's), and even eager this beats
        thousands of one-row matrix products."""
        q = self._heads(self.q_proj(query))  # (N, h, 1, dk)
        if rows is not None:
            keys, values = keys[rows], values[rows]
        scores = (q * keys).sum(-1) / math.sqrt(self.head_dim)  # (N, h, S)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = dropout(scores.softmax(dim=-1), self.dropout, self.training)
        context = (weights.unsqueeze(-1) * values).sum(2)  # (N, h, dk)
        out = self.out_proj(context.reshape(context.size(0), 1, -1))
        return out, weights.unsqueeze(2)


class FeedForward(nn.Module):
    """``FFN(x) = act(x W1 + b1) W2 + b2`` (eq. 2), dropout after the activation."""

    def __init__(
        self, embed_dim: int, ff_size: int, activation: str = "relu", dropout: float = 0.0
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; expected relu or gelu")
        self.w1 = nn.Linear(embed_dim, ff_size)
        self.w2 = nn.Linear(ff_size, embed_dim)
        self.activation = ACTIVATIONS[activation]
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(self.dropout(self.activation(self.w1(x))))


class _Sublayers(nn.Module):
    """Residual wiring shared by both layer types: pre-norm or post-norm."""

    def __init__(self, norm: str, dropout: float) -> None:
        super().__init__()
        if norm not in ("pre", "post"):
            raise ValueError(f"unknown norm {norm!r}; expected pre or post")
        self.pre_norm = norm == "pre"
        self.dropout = Dropout(dropout)

    def _in(self, x: Tensor, norm: nn.LayerNorm) -> Tensor:
        """The sublayer's input: LayerNorm(x) in pre-norm, x in post-norm; under autocast, in
        its dtype (:func:`autocast_input`)."""
        return autocast_input(norm(x) if self.pre_norm else x)

    def _out(self, x: Tensor, y: Tensor, norm: nn.LayerNorm) -> Tensor:
        """Residual sum (section 5.4: dropout on the sublayer output before the sum)."""
        x = x + self.dropout(y)
        return x if self.pre_norm else norm(x)

    def _reset(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)


class EncoderLayer(_Sublayers):
    """Self-attention then feed-forward (section 3.1)."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        ff_size: int,
        activation: str = "relu",
        norm: str = "pre",
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        activation_dropout: float = 0.0,
    ) -> None:
        super().__init__(norm, dropout)
        self.self_attn = MultiHeadAttention(embed_dim, num_heads, dropout=attention_dropout)
        self.ff = FeedForward(embed_dim, ff_size, activation, activation_dropout)
        self.norm1 = nn.LayerNorm(embed_dim)
        self.norm2 = nn.LayerNorm(embed_dim)
        self._reset()

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x (B, S, D); mask (B, 1, 1, S) True at real tokens -> (B, S, D)."""
        h = self._in(x, self.norm1)
        a, _ = self.self_attn(h, *self.self_attn.keys_values(h), mask=mask)
        x = self._out(x, a, self.norm1)
        return self._out(x, self.ff(self._in(x, self.norm2)), self.norm2)


class DecoderLayer(_Sublayers):
    """Masked self-attention, cross-attention over the encoder, feed-forward (section 3.1)."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        ff_size: int,
        memory_size: int,
        activation: str = "relu",
        norm: str = "pre",
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        activation_dropout: float = 0.0,
    ) -> None:
        super().__init__(norm, dropout)
        self.self_attn = MultiHeadAttention(embed_dim, num_heads, dropout=attention_dropout)
        self.cross_attn = MultiHeadAttention(
            embed_dim, num_heads, memory_size, dropout=attention_dropout
        )
        self.ff = FeedForward(embed_dim, ff_size, activation, activation_dropout)
        self.norm1 = nn.LayerNorm(embed_dim)
        self.norm2 = nn.LayerNorm(embed_dim)
        self.norm3 = nn.LayerNorm(embed_dim)
        self._reset()

    def forward(
        self,
        x: Tensor,
        past_keys: Tensor,
        past_values: Tensor,
        cross_keys: Tensor,
        cross_values: Tensor,
        src_mask: Tensor,
        need_weights: bool = False,
        cross_rows: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """x (B, T, D) at positions past..past+T-1; past_keys/values (B, h, past, d_k) (past must
        be 0 when T > 1: teacher forcing starts from an empty cache); cross_keys/values
        (M, h, S, d_k), row ``cross_rows[b]`` of them for row b (None: M == B); src_mask
        (B, 1, 1, S).

        Returns x (B, T, D), the grown self-attention keys and values (B, h, past+T, d_k) and the
        cross-attention weights (B, h, T, S) when ``need_weights`` (always with one position)."""
        one = x.size(1) == 1
        if not one and past_keys.size(2):
            raise ValueError("several new positions need an empty self-attention cache")
        h = self._in(x, self.norm1)
        k, v = self.self_attn.keys_values(h)  # (B, h, T, dk)
        if past_keys.size(2):
            keys = torch.cat([past_keys, k], dim=2)
            values = torch.cat([past_values, v], dim=2)
        else:  # no copy, and under autocast no float32 result from an empty float32 cache
            keys, values = k, v
        if one and torch.compiler.is_compiling():  # fuses; eager, SDPA is faster on long caches
            a, _ = self.self_attn.attend_one(h, keys, values)
        else:  # target padding is on the right: the causal mask alone keeps real positions clean
            a, _ = self.self_attn(h, keys, values, causal=not one)
        x = self._out(x, a, self.norm1)
        hc = self._in(x, self.norm2)
        if one:
            c, weights = self.cross_attn.attend_one(
                hc, cross_keys, cross_values, src_mask[:, 0], cross_rows
            )
        else:
            if cross_rows is not None:
                cross_keys, cross_values = cross_keys[cross_rows], cross_values[cross_rows]
            c, weights = self.cross_attn(
                hc, cross_keys, cross_values, src_mask, need_weights=need_weights
            )
        x = self._out(x, c, self.norm2)
        x = self._out(x, self.ff(self._in(x, self.norm3)), self.norm3)
        return x, keys, values, weights
