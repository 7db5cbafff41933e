"""Token embeddings with positions for the Transformer (Vaswani et al. 2017, sections 3.4 and 3.5).

``TransformerEmbedding`` maps ids (B, T) starting at position ``start`` to
``dropout(E[x] * sqrt(d_model) + P[start : start + T])`` (the scaling is optional). The token table
``E`` is injected, so the source and target sides can share one table and the decoder can tie it
with its output projection (section 3.4).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..data.vocab import PAD_ID
from .dropout import Dropout


def token_embedding(vocab_size: int, embed_dim: int) -> nn.Embedding:
    """A token table initialised N(0, d^-1/2) with a zero ``<pad>`` row, so that scaling by
    sqrt(d) gives unit-variance inputs (the usual companion of ``scale_embeddings``)."""
    embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
    nn.init.normal_(embed.weight, mean=0.0, std=embed_dim**-0.5)
    with torch.no_grad():
        embed.weight[PAD_ID].zero_()
    return embed


def sinusoid_table(max_positions: int, embed_dim: int) -> Tensor:
    """(max_positions, D): ``PE(pos, 2i) = sin(pos / 10000^(2i/D))``,
    ``PE(pos, 2i+1) = cos(pos / 10000^(2i/D))`` (Vaswani et al. section 3.5)."""
    pos = torch.arange(max_positions, dtype=torch.float).unsqueeze(1)  # (P, 1)
    inv_freq = torch.exp(
        torch.arange(0, embed_dim, 2, dtype=torch.float) * (-math.log(10000.0) / embed_dim)
    )  # (ceil(D/2),)
    table = torch.zeros(max_positions, embed_dim)
    table[:, 0::2] = torch.sin(pos * inv_freq)
    table[:, 1::2] = torch.cos(pos * inv_freq[: embed_dim // 2])
    return table


class SinusoidalPositions(nn.Module):
    """Fixed sinusoidal positions; the table is a non-persistent buffer (not in checkpoints)."""

    def __init__(self, max_positions: int, embed_dim: int) -> None:
        super().__init__()
        self.max_positions = max_positions
        self.register_buffer("table", sinusoid_table(max_positions, embed_dim), persistent=False)

    def forward(self, start: int, length: int) -> Tensor:
        """Positions ``start .. start + length - 1`` -> (length, D)."""
        _check_range(start, length, self.max_positions)
        # narrow, not a slice: exactly ``length`` rows even where ``start`` is symbolic (compiled
        # decoding), whereas a slice's length would be unknown to the graph (clamped at the end)
        return self.table.narrow(0, start, length)


class LearnedPositions(nn.Module):
    """One learned vector per position (Gehring et al. 2017; Vaswani et al. table 3, row E)."""

    def __init__(self, max_positions: int, embed_dim: int) -> None:
        super().__init__()
        self.max_positions = max_positions
        self.table = nn.Embedding(max_positions, embed_dim)
        nn.init.normal_(self.table.weight, mean=0.0, std=embed_dim**-0.5)

    def forward(self, start: int, length: int) -> Tensor:
        _check_range(start, length, self.max_positions)
        return self.table.weight.narrow(0, start, length)


def _check_range(start: int, length: int, max_positions: int) -> None:
    if start + length > max_positions:
        raise ValueError(
            f"sequence position {start + length - 1} is beyond max_positions={max_positions}; "
            "raise model.encoder/decoder.max_positions"
        )


class TransformerEmbedding(nn.Module):
    """``dropout(E[x] * sqrt(D) + P[pos])``: ids (B, T) from position ``start`` -> (B, T, D)."""

    def __init__(
        self,
        tokens: nn.Embedding,
        positions: nn.Module,
        scale: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.tokens = tokens
        self.positions = positions
        self.scale = math.sqrt(tokens.embedding_dim) if scale else 1.0
        self.dropout = Dropout(dropout)

    def forward(self, ids: Tensor, start: int = 0) -> Tensor:
        x = self.tokens(ids) * self.scale  # (B, T, D)
        return self.dropout(x + self.positions(start, ids.size(1)))
