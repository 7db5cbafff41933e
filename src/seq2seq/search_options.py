"""How to decode, as one validated value: the search kind (beam, greedy, sampling) and its
settings, turned into the constraint list and the length penalty that :mod:`seq2seq.search` takes.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from .processors import (
    LengthPenalty,
    LogitsProcessor,
    constraints,
    gnmt_length_penalty,
    length_normalization,
)


@dataclass(frozen=True)
class SearchOptions:
    """How to decode: beam search (``beam_size`` > 1), greedy (1), or sampling (``sample``:
    ``num_samples`` draws per input; ``n_best`` applies to beam search).

    Length limits are in tokens before ``<eos>``: at most
    ``min(max_len, max_len_ratio * |src| + max_len_offset)``, at least
    ``max(min_len, min_len_ratio * |src|)`` (|src| counts the source's ``<eos>``).
    ``length_penalty``: ``norm`` (log_prob / length ** alpha) or ``gnmt`` (Wu et al. 2016).
    ``early_stop``: a sentence ends when its best continuation ends (see :func:`beam_search`).
    """

    beam_size: int = 5
    n_best: int = 1
    max_len_ratio: float = 2.0
    max_len_offset: int = 10
    max_len: int = 512
    min_len: int = 0
    min_len_ratio: float = 0.0
    ban_unk: bool = False
    no_repeat_ngram: int = 0
    length_penalty: str = "norm"
    alpha: float = 1.0
    coverage_beta: float = 0.0
    early_stop: bool = False
    sample: bool = False
    num_samples: int = 1
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.beam_size < 1:
            problems.append(f"beam size must be >= 1, got {self.beam_size}")
        if not self.sample and not 1 <= self.n_best <= self.beam_size:
            problems.append(f"n-best must be in 1..beam size ({self.beam_size}), got {self.n_best}")
        if self.num_samples < 1:
            problems.append(f"number of samples must be >= 1, got {self.num_samples}")
        if self.length_penalty not in ("norm", "gnmt"):
            problems.append(f"length penalty must be 'norm' or 'gnmt', got {self.length_penalty!r}")
        if self.temperature <= 0:
            problems.append(f"temperature must be > 0, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            problems.append(f"top-p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0 or self.no_repeat_ngram < 0 or self.min_len < 0:
            problems.append("top-k, no-repeat n-gram size and minimum length must be >= 0")
        if problems:
            raise ValueError("; ".join(problems))

    def processors(self, src_lengths: Tensor) -> list[LogitsProcessor]:
        return constraints(
            src_lengths,
            max_len_ratio=self.max_len_ratio,
            max_len_offset=self.max_len_offset,
            max_len=self.max_len,
            min_len=self.min_len,
            min_len_ratio=self.min_len_ratio,
            ban_unk=self.ban_unk,
            no_repeat_ngram=self.no_repeat_ngram,
        )

    def penalty(self) -> LengthPenalty:
        if self.length_penalty == "gnmt":
            return gnmt_length_penalty(self.alpha)
        return length_normalization(self.alpha)
