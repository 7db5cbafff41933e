"""Padded batches with masks and lengths, and a length-bucketed sampler.

The sampler groups sentences of similar length so that little of a batch is padding, then fills
either a token budget (``batch_tokens``: sentences x longest side, padded, including BOS/EOS) or a
sentence count (``batch_size``). For a given seed and epoch the batches are always the same.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .vocab import BOS_ID, EOS_ID, PAD_ID


@dataclass
class Batch:
    """A padded batch. Masks are True at real tokens.

    src: (B, S) ids; src_mask: (B, S); src_lengths: (B,)
    tgt_in: (B, T) ``<bos> y1 .. yn``; tgt_out: (B, T) ``y1 .. yn <eos>``; tgt_mask: (B, T)
    index: (B,) position of each row in the dataset
    """

    src: Tensor
    src_mask: Tensor
    src_lengths: Tensor
    tgt_in: Tensor | None
    tgt_out: Tensor | None
    tgt_mask: Tensor | None
    index: Tensor

    @property
    def size(self) -> int:
        return self.src.size(0)

    @property
    def num_tgt_tokens(self) -> int:
        """Real (non-pad) target tokens, EOS included."""
        return int(self.tgt_mask.sum()) if self.tgt_mask is not None else 0

    def to(self, device: torch.device | str) -> Batch:
        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return Batch(*(move(getattr(self, f)) for f in self.__dataclass_fields__))


def pad(
    seqs: Sequence[Sequence[int]], prefix: int | None = None, suffix: int | None = None
) -> tuple[Tensor, Tensor]:
    """(B, L) padded ids and lengths, with optional BOS-like ``prefix`` / EOS-like ``suffix``."""
    extra = (prefix is not None) + (suffix is not None)
    lengths = torch.tensor([len(s) + extra for s in seqs], dtype=torch.long)
    out = torch.full((len(seqs), int(lengths.max()) if len(seqs) else 0), PAD_ID, dtype=torch.long)
    for i, s in enumerate(seqs):
        row = ([prefix] if prefix is not None else []) + list(s)
        if suffix is not None:
            row.append(suffix)
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out, lengths


def make_batch(
    src: Sequence[Sequence[int]],
    tgt: Sequence[Sequence[int]] | None,
    index: Sequence[int],
    src_eos: bool = True,
) -> Batch:
    """Pads a list of id sequences. The source gets an ``<eos>`` so even an empty line has a token."""
    s, s_len = pad(src, suffix=EOS_ID if src_eos else None)
    if tgt is not None:
        t_in, t_len = pad(tgt, prefix=BOS_ID)
        t_out, _ = pad(tgt, suffix=EOS_ID)
        t_mask = t_out != PAD_ID
    else:
        t_in = t_out = t_mask = None
    return Batch(s, s != PAD_ID, s_len, t_in, t_out, t_mask, torch.tensor(list(index)))


class ParallelData:
    """Id sequences of a corpus, ready to be batched."""

    def __init__(self, src: list[list[int]], tgt: list[list[int]] | None = None) -> None:
        if tgt is not None and len(src) != len(tgt):
            raise ValueError(f"{len(src)} sources but {len(tgt)} targets")
        self.src = src
        self.tgt = tgt

    def __len__(self) -> int:
        return len(self.src)

    def batch(self, indices: Sequence[int]) -> Batch:
        src = [self.src[i] for i in indices]
        tgt = None if self.tgt is None else [self.tgt[i] for i in indices]
        return make_batch(src, tgt, indices)

    def subset(self, indices: Sequence[int]) -> ParallelData:
        return ParallelData(
            [self.src[i] for i in indices],
            None if self.tgt is None else [self.tgt[i] for i in indices],
        )

    def lengths(self) -> list[int]:
        """Padded cost of each example: the longer side with its BOS/EOS."""
        if self.tgt is None:
            return [len(s) + 1 for s in self.src]
        return [max(len(s), len(t)) + 1 for s, t in zip(self.src, self.tgt)]


def bucket_batches(
    lengths: Sequence[int],
    *,
    batch_tokens: int | None = None,
    batch_size: int | None = None,
    shuffle: bool = True,
    seed: int = 0,
    pool_factor: int = 100,
) -> list[list[int]]:
    """Index lists of batches of similar lengths.

    With ``shuffle``, examples are shuffled, sorted by length within pools of ``pool_factor``
    batches, cut into batches, and the batches shuffled: random yet compact. Without it, all
    examples are sorted by length (for decoding; the caller restores the order). A single example
    above ``batch_tokens`` still gets a batch of its own rather than being dropped.
    """
    if (batch_tokens is None) == (batch_size is None):
        raise ValueError("give exactly one of batch_tokens and batch_size")
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    if shuffle:
        rng.shuffle(order)
        per_batch = batch_size or max(1, batch_tokens // max(1, _mean(lengths)))
        pool = max(1, per_batch * pool_factor)
        chunks = [order[i : i + pool] for i in range(0, len(order), pool)]
        order = [i for c in chunks for i in sorted(c, key=lambda j: lengths[j])]
    else:
        order.sort(key=lambda j: lengths[j])

    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        new_longest = max(longest, lengths[i])
        full = (
            len(current) >= batch_size
            if batch_size is not None
            else (len(current) + 1) * new_longest > batch_tokens
        )
        if current and full:
            batches.append(current)
            current, new_longest = [], lengths[i]
        current.append(i)
        longest = new_longest
    if current:
        batches.append(current)
    if shuffle:
        rng.shuffle(batches)
    return batches


def _mean(xs: Sequence[int]) -> int:
    return int(sum(xs) / len(xs)) if xs else 1


def iterate(data: ParallelData, batches: list[list[int]]) -> Iterator[Batch]:
    for b in batches:
        yield data.batch(b)
