"""Transformer encoder and decoder (Vaswani et al. 2017, "Attention Is All You Need").

Both stacks are built from multi-head attention (section 3.2.2, eq. 1 with
``Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V``) and the position-wise feed-forward network
``FFN(x) = act(x W1 + b1) W2 + b2`` (section 3.3, eq. 2), each wrapped in a residual connection
with layer normalisation, either after the residual sum (post-norm, the paper's
``LayerNorm(x + Sublayer(x))``) or before the sublayer (pre-norm, ``x + Sublayer(LayerNorm(x))``,
with one more LayerNorm at the top of the stack; Xiong et al. 2020).

The decoder implements the same decode contract as the RNN decoder. Its state carries a key/value
cache: self-attention keys/values grow by one position per step, and cross-attention keys/values
are computed once per sentence in ``init_state``, so a decoding step only runs the new position
through the stack. ``state.attention`` is the last decoder layer's cross-attention averaged over
heads (one alignment per step, like the RNN's); ``state.cross_attention`` keeps every layer and
head, (L, B, heads, S).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .dropout import Dropout, dropout
from .embeddings import TransformerEmbedding
from .projection import output_logits
from .types import EncoderOutput

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


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
        if need_weights or (p > 0 and q.device.type == "cpu"):
            # written out where the weights are wanted, and for CPU training, where SDPA's
            # attention dropout takes the slow per-element Bernoulli mask (see .dropout)
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
        """The sublayer's input: LayerNorm(x) in pre-norm, x in post-norm."""
        return norm(x) if self.pre_norm else x

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
        keys = torch.cat([past_keys, k], dim=2)
        values = torch.cat([past_values, v], dim=2)
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


class TransformerEncoder(nn.Module):
    """A stack of encoder layers over embedded source tokens; output size is ``embed_dim``."""

    def __init__(
        self,
        embedding: TransformerEmbedding,
        embed_dim: int,
        num_layers: int,
        num_heads: int,
        ff_size: int,
        activation: str = "relu",
        norm: str = "pre",
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        activation_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.embedding = embedding
        self.layers = nn.ModuleList(
            EncoderLayer(
                embed_dim,
                num_heads,
                ff_size,
                activation,
                norm,
                dropout,
                attention_dropout,
                activation_dropout,
            )
            for _ in range(num_layers)
        )
        self.final_norm = nn.LayerNorm(embed_dim) if norm == "pre" else nn.Identity()
        self.output_size = embed_dim

    def forward(self, src: Tensor, src_mask: Tensor) -> EncoderOutput:
        """src, src_mask (B, S) -> states (B, S, D), zero at padded positions; final is None."""
        x = self.embedding(src)  # (B, S, D)
        mask = src_mask[:, None, None, :]  # (B, 1, 1, S)
        for layer in self.layers:
            x = layer(x, mask)
        x = self.final_norm(x).masked_fill(~src_mask.unsqueeze(-1), 0.0)
        return EncoderOutput(states=x, mask=src_mask)


@dataclass
class TransformerDecoderState:
    """The decoder's key/value cache, one entry per layer, for B rows.

    self_keys, self_values: (R, heads, t, d_k) after t steps, row ``cache_rows[b]`` of them for
    row b (None: R == B); cross_keys, cross_values: (M, heads, S, d_k), computed once per sentence
    in ``init_state`` and never copied, row ``source_rows[b]`` for row b (None: M == B); mask:
    (M, S) True at real source tokens; step: positions decoded so far (the next position's index);
    attention: (B, S) last layer's cross-attention of the last step, averaged over heads;
    cross_attention: (L, B, heads, S).

    ``select`` only composes the row indices: the self-attention cache is gathered by the next
    step, in the same pass that appends to it, and the cross-attention keys and values are read
    through ``source_rows`` (beam search's K rows of a sentence share them).
    """

    self_keys: tuple[Tensor, ...]
    self_values: tuple[Tensor, ...]
    cross_keys: tuple[Tensor, ...]
    cross_values: tuple[Tensor, ...]
    mask: Tensor
    step: int = 0
    attention: Tensor | None = None
    cross_attention: Tensor | None = None
    source_rows: Tensor | None = None
    cache_rows: Tensor | None = None

    def select(self, index: Tensor) -> TransformerDecoderState:
        def compose(rows: Tensor | None) -> Tensor:
            return index if rows is None else rows.index_select(0, index)

        return dataclasses.replace(
            self,
            source_rows=compose(self.source_rows),
            cache_rows=compose(self.cache_rows),
            attention=None if self.attention is None else self.attention.index_select(0, index),
            cross_attention=None
            if self.cross_attention is None
            else self.cross_attention.index_select(1, index),
        )


class TransformerDecoder(nn.Module):
    """A stack of decoder layers with a key/value cache and an output projection.

    With ``tie_output`` the output projection reuses the target token table (section 3.4).
    ``memory_size`` is the encoder's output size (any encoder: keys/values are projected from it).
    """

    def __init__(
        self,
        embedding: TransformerEmbedding,
        vocab_size: int,
        embed_dim: int,
        memory_size: int,
        num_layers: int,
        num_heads: int,
        ff_size: int,
        activation: str = "relu",
        norm: str = "pre",
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        activation_dropout: float = 0.0,
        tie_output: bool = False,
    ) -> None:
        super().__init__()
        self.embedding = embedding
        self.layers = nn.ModuleList(
            DecoderLayer(
                embed_dim,
                num_heads,
                ff_size,
                memory_size,
                activation,
                norm,
                dropout,
                attention_dropout,
                activation_dropout,
            )
            for _ in range(num_layers)
        )
        self.final_norm = nn.LayerNorm(embed_dim) if norm == "pre" else nn.Identity()
        self.output = nn.Linear(embed_dim, vocab_size)
        if tie_output:
            tokens = embedding.tokens.weight
            if tokens.shape != self.output.weight.shape:
                raise ValueError(
                    f"tie_output needs a target embedding of shape {tuple(self.output.weight.shape)}"
                    f", got {tuple(tokens.shape)}"
                )
            self.output.weight = tokens
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads

    def init_state(self, enc: EncoderOutput) -> TransformerDecoderState:
        """Projects the encoder states to every layer's cross-attention keys and values once."""
        cross = [layer.cross_attn.keys_values(enc.states) for layer in self.layers]
        empty = enc.states.new_zeros(enc.states.size(0), self.num_heads, 0, self.head_dim)
        n = len(self.layers)
        return TransformerDecoderState(
            self_keys=(empty,) * n,
            self_values=(empty,) * n,
            cross_keys=tuple(k for k, _ in cross),
            cross_values=tuple(v for _, v in cross),
            mask=enc.mask,
        )

    def _run(
        self, tgt: Tensor, state: TransformerDecoderState, weights_from: int
    ) -> tuple[Tensor, TransformerDecoderState, list[Tensor]]:
        """tgt (B, T) at positions state.step.. -> top states (B, T, D), the grown cache and the
        cross-attention weights (B, h, T, S) of layers >= ``weights_from``."""
        x = self.embedding(tgt, start=state.step)  # (B, T, D)
        rows, order = state.source_rows, state.cache_rows
        mask = (state.mask if rows is None else state.mask[rows])[:, None, None, :]  # (B,1,1,S)
        keys, values, weights = [], [], []
        for i, layer in enumerate(self.layers):
            past_k, past_v = state.self_keys[i], state.self_values[i]
            if order is not None:
                past_k, past_v = past_k[order], past_v[order]
            x, k, v, w = layer(
                x,
                past_k,
                past_v,
                state.cross_keys[i],
                state.cross_values[i],
                mask,
                need_weights=i >= weights_from,
                cross_rows=rows,
            )
            keys.append(k)
            values.append(v)
            if w is not None:
                weights.append(w)
        new = TransformerDecoderState(
            self_keys=tuple(keys),
            self_values=tuple(values),
            cross_keys=state.cross_keys,
            cross_values=state.cross_values,
            mask=state.mask,
            step=state.step + tgt.size(1),
            source_rows=rows,
        )
        return self.final_norm(x), new, weights

    def decode_step(
        self, prev: Tensor, state: TransformerDecoderState
    ) -> tuple[Tensor, TransformerDecoderState]:
        """prev (B,) ids -> logits (B, V) and a new state with one more cached position and the
        step's cross-attention (``attention`` (B, S), ``cross_attention`` (L, B, h, S))."""
        hidden, new = self.decode_features(prev, state)
        return output_logits(self.output, hidden), new

    def decode_features(
        self, prev: Tensor, state: TransformerDecoderState
    ) -> tuple[Tensor, TransformerDecoderState]:
        """``decode_step`` up to the output layer: the final state (B, d_model), the new state."""
        x, new, weights = self._run(prev.unsqueeze(1), state, weights_from=0)
        every = torch.stack(weights).squeeze(3)  # (L, B, h, S)
        new.cross_attention = every
        new.attention = every[-1].mean(dim=1)  # (B, S)
        return x.squeeze(1), new

    def forward(self, tgt_in: Tensor, state: TransformerDecoderState) -> tuple[Tensor, Tensor]:
        """Teacher forcing from a fresh state: tgt_in (B, T) -> logits (B, T, V) and the last
        layer's cross-attention averaged over heads (B, T, S)."""
        hidden, attention = self.features(tgt_in, state)
        return output_logits(self.output, hidden), attention

    def features(self, tgt_in: Tensor, state: TransformerDecoderState) -> tuple[Tensor, Tensor]:
        """Teacher forcing up to the output layer: the final states (B, T, d_model) and the
        last layer's cross-attention averaged over heads (B, T, S)."""
        x, _, weights = self._run(tgt_in, state, weights_from=len(self.layers) - 1)
        return x, weights[-1].mean(dim=1)
