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
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .embeddings import TransformerEmbedding
from .projection import output_logits
from .transformer_layers import DecoderLayer, EncoderLayer, MultiHeadAttention, autocast_input
from .types import EncoderOutput

__all__ = [
    "MultiHeadAttention",
    "TransformerDecoder",
    "TransformerDecoderState",
    "TransformerEncoder",
]


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

        source_rows, cache_rows = compose(self.source_rows), compose(self.cache_rows)
        if source_rows is cache_rows:  # two tensors: compiled graphs guard on aliased inputs
            cache_rows = cache_rows.clone()
        return dataclasses.replace(
            self,
            source_rows=source_rows,
            cache_rows=cache_rows,
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
        memory = autocast_input(enc.states)
        cross = [layer.cross_attn.keys_values(memory) for layer in self.layers]
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
            if order is not None:  # index_select: compiled size-obliviously, indexing an
                # empty cache (a first step with row indices) fails in fake-tensor propagation
                past_k, past_v = past_k.index_select(0, order), past_v.index_select(0, order)
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
