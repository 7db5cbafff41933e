"""Search options as small callables, each testable alone and composed into any search.

Constraints (``LogitsProcessor``) see the log-probabilities of a step, (N, V), and return them with
forbidden tokens set to ``-inf``; allowed entries keep the model's value, so the score a search
reports is always the model's own log-probability of its output. Warpers reshape the distribution
that sampling draws from (temperature, top-k, top-p) and never touch scores. Hypothesis scorers
turn a finished hypothesis' log-probability into the value beam search ranks by (length penalty,
coverage penalty).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from .data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID

NEG_INF = float("-inf")


@dataclass
class StepInfo:
    """step: tokens generated so far (the token chosen now is number ``step + 1``);
    sentence: (N,) batch index of each row's sentence; history: (N, step) tokens so far."""

    step: int
    sentence: Tensor
    history: Tensor


class LogitsProcessor(Protocol):
    def __call__(self, logp: Tensor, info: StepInfo) -> Tensor: ...


# -- constraints ----------------------------------------------------------------------------------


class BanTokens:
    """Never produce these ids (``<pad>`` and ``<bos>`` always; ``<unk>`` on request)."""

    def __init__(self, ids: Sequence[int]) -> None:
        self.ids = list(ids)
        self._index = torch.tensor(self.ids, dtype=torch.long)  # built once, not every step

    def __call__(self, logp: Tensor, info: StepInfo) -> Tensor:
        if self._index.device != logp.device:  # moved once, not copied to the device every step
            self._index = self._index.to(logp.device)
        return logp.index_fill_(1, self._index, NEG_INF)


class MinLength:
    """No ``<eos>`` before ``min_len[sentence]`` tokens: min_len (B,) per sentence."""

    def __init__(self, min_len: Tensor) -> None:
        self.min_len = min_len
        self._longest = int(min_len.max()) if min_len.numel() else 0

    def __call__(self, logp: Tensor, info: StepInfo) -> Tensor:
        if info.step >= self._longest:  # every sentence is long enough (most steps)
            return logp
        too_short = info.step < self.min_len.to(logp.device)[info.sentence]
        logp[too_short, EOS_ID] = NEG_INF
        return logp


class MaxLength:
    """Only ``<eos>`` once ``max_len[sentence]`` tokens were produced: max_len (B,)."""

    def __init__(self, max_len: Tensor) -> None:
        self.max_len = max_len
        self._shortest = int(max_len.min()) if max_len.numel() else 0

    def __call__(self, logp: Tensor, info: StepInfo) -> Tensor:
        if info.step < self._shortest:  # no sentence at its limit yet (most steps)
            return logp
        at_max = info.step >= self.max_len.to(logp.device)[info.sentence]
        if bool(at_max.any()):
            eos = logp[at_max, EOS_ID]
            logp[at_max] = NEG_INF
            logp[at_max, EOS_ID] = eos
        return logp


class NoRepeatNGram:
    """Forbid any token that would repeat an n-gram already in the row's output."""

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"n-gram size must be >= 1, got {n}")
        self.n = n

    def __call__(self, logp: Tensor, info: StepInfo) -> Tensor:
        n, hist = self.n, info.history
        if hist.size(1) < n:  # no complete n-gram yet
            return logp
        if n == 1:
            rows = torch.arange(hist.size(0), device=hist.device).repeat_interleave(hist.size(1))
            logp[rows, hist.reshape(-1)] = NEG_INF
            return logp
        windows = hist.unfold(1, n, 1)  # (N, W, n): every n-gram so far
        prefix = hist[:, hist.size(1) - (n - 1) :]  # (N, n-1): what the next token would extend
        match = (windows[:, :, : n - 1] == prefix.unsqueeze(1)).all(-1)  # (N, W)
        rows, cols = match.nonzero(as_tuple=True)
        logp[rows, windows[rows, cols, n - 1]] = NEG_INF
        return logp


def constraints(
    src_lengths: Tensor,
    *,
    max_len_ratio: float = 2.0,
    max_len_offset: int = 10,
    max_len: int = 512,
    min_len: int = 0,
    min_len_ratio: float = 0.0,
    ban_unk: bool = False,
    no_repeat_ngram: int = 0,
) -> list[LogitsProcessor]:
    """The standard constraint list for a batch with source lengths (B,) (``<eos>`` included).

    Output length limits, in tokens before ``<eos>``: at most
    ``min(max_len, max_len_ratio * src_len + max_len_offset)``, at least
    ``max(min_len, min_len_ratio * src_len)`` (never above the maximum).
    """
    src = src_lengths.float()
    upper = (src * max_len_ratio + max_len_offset).long().clamp(max=max_len)
    lower = torch.maximum((src * min_len_ratio).long(), torch.full_like(upper, min_len))
    out: list[LogitsProcessor] = [BanTokens([PAD_ID, BOS_ID] + ([UNK_ID] if ban_unk else []))]
    if no_repeat_ngram:
        out.append(NoRepeatNGram(no_repeat_ngram))
    if bool((lower > 0).any()):
        out.append(MinLength(torch.minimum(lower, upper)))
    out.append(MaxLength(upper))
    return out


def apply(processors: Sequence[LogitsProcessor], logp: Tensor, info: StepInfo) -> Tensor:
    for p in processors:
        logp = p(logp, info)
    return logp


# -- sampling warpers -----------------------------------------------------------------------------


def warp(logp: Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Log-weights to sample from: divided by ``temperature``, then only the ``top_k`` best
    (0: all) and the smallest set whose probability reaches ``top_p`` (nucleus; Holtzman et al.
    2020) are kept. logp (N, V) -> (N, V)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    out = logp / temperature
    if top_k > 0 and top_k < out.size(-1):
        kth = out.topk(top_k, dim=-1).values[:, -1:]
        out = out.masked_fill(out < kth, NEG_INF)
    if top_p < 1.0:
        sorted_lp, order = out.sort(dim=-1, descending=True)
        probs = sorted_lp.softmax(-1)
        before = probs.cumsum(-1) - probs  # mass of the better tokens
        drop_sorted = before >= top_p  # the first token is always kept
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        out = out.masked_fill(drop, NEG_INF)
    return out


# -- hypothesis scores ----------------------------------------------------------------------------

LengthPenalty = Callable[[float, int], float]


def length_normalization(alpha: float = 1.0) -> LengthPenalty:
    """``log_prob / length ** alpha`` (length counts ``<eos>``): 1.0 ranks by mean log-probability,
    0.0 by the plain sum."""

    def norm(log_prob: float, length: int) -> float:
        return log_prob / (length**alpha)

    return norm


def gnmt_length_penalty(alpha: float = 0.6) -> LengthPenalty:
    """``log_prob / ((5 + length) / 6) ** alpha`` (Wu et al. 2016, GNMT, eq. 14)."""

    def norm(log_prob: float, length: int) -> float:
        return log_prob / (((5.0 + length) / 6.0) ** alpha)

    return norm


def coverage_penalty(coverage: Tensor, beta: float) -> float:
    """``beta * sum_i log(min(sum_j a_ij, 1))`` over source positions i (Wu et al. 2016, eq. 14):
    zero when every source position received a total attention of at least 1, negative otherwise.
    coverage: (S,) summed attention over the output steps, real source positions only."""
    if beta == 0.0:
        return 0.0
    return beta * float(coverage.clamp(min=1e-10, max=1.0).log().sum())
