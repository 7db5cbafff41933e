"""Each search option alone, on hand-made log-probabilities."""

import math

import pytest
import torch

from seq2seq.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from seq2seq.processors import (
    BanTokens,
    MaxLength,
    MinLength,
    NoRepeatNGram,
    StepInfo,
    constraints,
    coverage_penalty,
    gnmt_length_penalty,
    length_normalization,
    warp,
)

NEG = float("-inf")


def info(step, history, sentence=None):
    hist = torch.tensor(history, dtype=torch.long).view(len(history), -1)
    return StepInfo(step, sentence if sentence is not None else torch.arange(len(history)), hist)


def uniform(rows=2, vocab=8):
    return torch.full((rows, vocab), -math.log(vocab))


def test_ban_tokens():
    out = BanTokens([PAD_ID, UNK_ID])(uniform(), info(0, [[], []]))
    assert torch.all(out[:, [PAD_ID, UNK_ID]] == NEG)
    assert torch.all(out[:, [BOS_ID, EOS_ID, 4]] > NEG)


def test_min_and_max_length_per_sentence():
    # two rows of sentence 0 and one of sentence 1; sentence limits differ
    sentence = torch.tensor([0, 0, 1])
    lp = uniform(3)
    out = MinLength(torch.tensor([3, 1]))(lp.clone(), info(2, [[4, 4]] * 3, sentence))
    assert out[:, EOS_ID].tolist() == [NEG, NEG, lp[2, EOS_ID].item()]
    out = MaxLength(torch.tensor([2, 5]))(lp.clone(), info(2, [[4, 4]] * 3, sentence))
    assert torch.all(out[:2, EOS_ID] == lp[:2, EOS_ID])  # EOS keeps the model's value
    assert torch.all(out[:2, 4:] == NEG)
    assert torch.all(out[2] == lp[2])


def test_no_repeat_ngram_bigram():
    # row 0: 4 5 6 4 -> the bigram (4, 5) exists, so after 4 the token 5 is banned
    # row 1: 4 5 6 7 -> last token 7 starts no earlier bigram: nothing banned
    out = NoRepeatNGram(2)(uniform(), info(4, [[4, 5, 6, 4], [4, 5, 6, 7]]))
    assert out[0].eq(NEG).nonzero().flatten().tolist() == [5]
    assert not out[1].eq(NEG).any()
    tri = NoRepeatNGram(3)(uniform(1), info(5, [[4, 5, 6, 4, 5]]))
    assert tri[0].eq(NEG).nonzero().flatten().tolist() == [6]
    assert not NoRepeatNGram(3)(uniform(1), info(2, [[4, 4]])).eq(NEG).any()


def test_constraints_relative_lengths():
    procs = constraints(
        torch.tensor([5, 20]),
        max_len_ratio=1.5,
        max_len_offset=0,
        max_len=25,
        min_len_ratio=0.5,
        ban_unk=True,
    )
    max_len = next(p for p in procs if isinstance(p, MaxLength)).max_len
    min_len = next(p for p in procs if isinstance(p, MinLength)).min_len
    assert max_len.tolist() == [7, 25]
    assert min_len.tolist() == [2, 10]
    assert UNK_ID in next(p for p in procs if isinstance(p, BanTokens)).ids


def test_warp_top_k_top_p_temperature():
    lp = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert warp(lp, top_k=2).isfinite().tolist() == [[True, True, False, False]]
    assert warp(lp, top_p=0.8).isfinite().tolist() == [[True, True, False, False]]
    assert warp(lp, top_p=0.81).isfinite().tolist() == [[True, True, True, False]]
    assert warp(lp, top_p=0.5).isfinite().tolist() == [[True, False, False, False]]
    hot = warp(lp, temperature=2.0).softmax(-1)
    torch.testing.assert_close(hot, (lp / 2).softmax(-1))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        warp(lp, temperature=0.0)


def test_length_and_coverage_penalties():
    assert length_normalization(1.0)(-6.0, 3) == -2.0
    assert length_normalization(0.0)(-6.0, 3) == -6.0
    assert gnmt_length_penalty(1.0)(-6.0, 7) == pytest.approx(-6.0 / 2.0)
    assert coverage_penalty(torch.tensor([1.5, 1.0]), 0.2) == 0.0
    assert coverage_penalty(torch.tensor([0.5, 2.0]), 0.2) == pytest.approx(0.2 * math.log(0.5))
