"""Search: beam 1 == greedy, batched == one at a time, reported scores == force-decoded scores,
sampling repeats with a seed, and beam search on a scripted decoder whose n-best lists are worked
out on paper."""

import math
from dataclasses import dataclass

import pytest
import torch

from seq2seq.data.batching import make_batch
from seq2seq.data.vocab import BOS_ID, EOS_ID
from seq2seq.ensemble import Ensemble
from seq2seq.nn.types import EncoderOutput
from seq2seq.processors import constraints, length_normalization
from seq2seq.search import SearchOptions, beam_search, force_decode, greedy, sample, search

from .conftest import tiny_model

SRCS = [[4, 5, 6, 7, 8, 9, 10], [11, 12], [5, 12, 4], [9]]


def _batch(srcs=SRCS):
    return make_batch(srcs, None, list(range(len(srcs))))


def _procs(b, **kw):
    return constraints(b.src_mask.sum(1), **kw)


@pytest.mark.parametrize("attention", ["bahdanau", "luong_general"])
def test_beam_one_equals_greedy(attention):
    model = tiny_model(attention, seed=3)
    b = _batch()
    g = greedy(model, b.src, b.src_mask, _procs(b))
    beam = beam_search(model, b.src, b.src_mask, _procs(b), beam_size=1)
    assert [h.tokens for h in g] == [n[0].tokens for n in beam]
    assert [h.log_prob for h in g] == pytest.approx([n[0].log_prob for n in beam], abs=1e-5)


@pytest.mark.parametrize("beam_size", [1, 4])
def test_batched_equals_one_at_a_time(beam_size):
    model = tiny_model("bahdanau", seed=5)
    b = _batch()
    together = beam_search(model, b.src, b.src_mask, _procs(b), beam_size, beam_size)
    for i, src in enumerate(SRCS):
        one = _batch([src])
        alone = beam_search(model, one.src, one.src_mask, _procs(one), beam_size, beam_size)[0]
        assert [h.tokens for h in alone] == [h.tokens for h in together[i]]
        assert [h.score for h in alone] == pytest.approx([h.score for h in together[i]], abs=1e-5)


def test_reported_scores_equal_force_decoding():
    model = tiny_model("luong_general", seed=7)
    b = _batch()
    nbest = beam_search(model, b.src, b.src_mask, _procs(b), 5, 3)
    for rank in range(3):
        hyps = [n[rank] for n in nbest]
        forced = force_decode(model, b.src, b.src_mask, [h.tokens for h in hyps])
        assert forced == pytest.approx([h.log_prob for h in hyps], abs=1e-4)
        for h in hyps:
            assert h.score == pytest.approx(h.log_prob / (len(h.tokens) + 1))
    drawn = sample(
        model,
        b.src,
        b.src_mask,
        _procs(b),
        3,
        temperature=1.5,
        generator=torch.Generator().manual_seed(0),
    )
    forced = force_decode(model, b.src, b.src_mask, [n[0].tokens for n in drawn])
    assert forced == pytest.approx([n[0].log_prob for n in drawn], abs=1e-4)


def test_max_length_forces_eos_and_attention_is_returned():
    model = tiny_model(seed=1)
    b = _batch()
    procs = _procs(b, max_len_ratio=0.0, max_len_offset=2)
    for hyps in (
        greedy(model, b.src, b.src_mask, procs, return_attention=True),
        [n[0] for n in beam_search(model, b.src, b.src_mask, procs, 3, return_attention=True)],
    ):
        for h, src in zip(hyps, SRCS):
            assert len(h.tokens) <= 2
            assert h.attention.shape == (len(h.tokens) + 1, len(src) + 1)
            torch.testing.assert_close(h.attention.sum(-1), torch.ones(len(h.tokens) + 1))


def test_min_length_is_respected_by_every_search():
    model = tiny_model(seed=2)
    b = _batch()
    procs = _procs(b, min_len=4, max_len_ratio=0.0, max_len_offset=6)
    outs = [
        greedy(model, b.src, b.src_mask, procs),
        [n[0] for n in beam_search(model, b.src, b.src_mask, procs, 3)],
        [n[0] for n in sample(model, b.src, b.src_mask, procs)],
    ]
    for hyps in outs:
        assert all(4 <= len(h.tokens) <= 6 for h in hyps)


def test_sampling_repeats_with_a_seed_and_top_k_one_is_greedy():
    model = tiny_model(seed=4)
    b = _batch()

    def draw(seed, **kw):
        out = sample(
            model,
            b.src,
            b.src_mask,
            _procs(b),
            4,
            generator=torch.Generator().manual_seed(seed),
            **kw,
        )
        return [[h.tokens for h in n] for n in out]

    assert draw(1) == draw(1)
    assert draw(1) != draw(2)
    g = [h.tokens for h in greedy(model, b.src, b.src_mask, _procs(b))]
    assert [n[0] for n in draw(3, top_k=1)] == g
    assert all(len(set(map(tuple, n))) == 1 for n in draw(5, top_k=1))
    assert [n[0] for n in draw(3, top_p=1e-6)] == g  # the nucleus holds only the best token


def test_search_dispatch_and_option_errors():
    model = tiny_model(seed=6)
    b = _batch()
    assert len(search(model, b.src, b.src_mask, SearchOptions(beam_size=3, n_best=2))[0]) == 2
    assert len(search(model, b.src, b.src_mask, SearchOptions(sample=True, num_samples=3))[0]) == 3
    with pytest.raises(ValueError, match=r"n-best must be in 1..beam size \(2\), got 3"):
        SearchOptions(beam_size=2, n_best=3)
    with pytest.raises(ValueError, match="temperature must be > 0, got 0"):
        SearchOptions(temperature=0)
    with pytest.raises(ValueError, match="needs a MaxLength constraint"):
        greedy(model, b.src, b.src_mask, [])


def test_ensemble_of_copies_equals_the_model():
    model = tiny_model(seed=8)
    b = _batch()
    single = beam_search(model, b.src, b.src_mask, _procs(b), 3, 3, return_attention=True)
    double = beam_search(
        Ensemble([model, model]), b.src, b.src_mask, _procs(b), 3, 3, return_attention=True
    )
    for s, d in zip(single, double):
        assert [h.tokens for h in s] == [h.tokens for h in d]
        assert [h.log_prob for h in s] == pytest.approx([h.log_prob for h in d], abs=1e-5)
        torch.testing.assert_close(s[0].attention, d[0].attention)


def test_ensemble_averages_log_probabilities():
    m1, m2 = tiny_model(seed=1), tiny_model(seed=2)
    b = _batch()
    prev = torch.full((b.size,), BOS_ID)
    ens = Ensemble([m1, m2])
    logits, _ = ens.decode_step(prev, ens.init_state(ens.encode(b.src, b.src_mask)))
    parts = [
        torch.log_softmax(m.decode_step(prev, m.init_state(m.encode(b.src, b.src_mask)))[0], -1)
        for m in (m1, m2)
    ]
    torch.testing.assert_close(logits, (parts[0] + parts[1]) / 2)


# -- a decoder whose probabilities are written by hand ---------------------------------------------

A, B = 4, 5  # two word ids; EOS_ID = 3; vocabulary of 6


@dataclass
class ScriptState:
    prefix: list  # tokens produced so far, one tuple per row
    attention: torch.Tensor | None = None

    def select(self, index):
        return ScriptState([self.prefix[i] for i in index.tolist()])


class ScriptedModel(torch.nn.Module):
    """p(next | tokens so far) from a table; tokens not listed have probability 0. Prefixes
    outside the table only occur on dead beams (score -inf), which just end."""

    def __init__(self, table):
        super().__init__()
        self.table = table

    def encode(self, src, src_mask):
        return EncoderOutput(src.float().unsqueeze(-1), src_mask)

    def init_state(self, enc):
        return ScriptState([() for _ in range(enc.states.size(0))])

    def decode_step(self, prev, state):
        prefixes = [p if t == BOS_ID else p + (t,) for p, t in zip(state.prefix, prev.tolist())]
        rows = []
        for p in prefixes:
            probs = torch.zeros(6)
            for tok, pr in self.table.get(p, {EOS_ID: 1.0}).items():  # dead beams: anything
                probs[tok] = pr
            rows.append(probs.log())
        return torch.stack(rows), ScriptState(prefixes)


# Complete sequences and their probabilities (EOS included), worked out by hand:
#   B EOS    .4 x .9  = .36  (length 2)  log -1.0217  /2 = -0.511
#   A A EOS  .6 x .55 = .33  (length 3)  log -1.1087  /3 = -0.370
#   A EOS    .6 x .45 = .27  (length 2)  log -1.3093  /2 = -0.655
#   B B EOS  .4 x .1  = .04  (length 3)  log -3.2189  /3 = -1.073
TABLE = {
    (): {A: 0.6, B: 0.4},
    (A,): {EOS_ID: 0.45, A: 0.55},
    (B,): {EOS_ID: 0.9, B: 0.1},
    (A, A): {EOS_ID: 1.0},
    (B, B): {EOS_ID: 1.0},
}


def _scripted(beam, alpha, n_best=3, early_stop=False, **constraint_options):
    src = torch.tensor([[7, EOS_ID]])
    mask = torch.ones_like(src, dtype=torch.bool)
    procs = constraints(mask.sum(1), **constraint_options)
    return beam_search(
        ScriptedModel(TABLE),
        src,
        mask,
        procs,
        beam,
        n_best,
        length_normalization(alpha),
        early_stop=early_stop,
    )[0]


def _show(hyps):
    return [(h.tokens, round(math.exp(h.log_prob), 6)) for h in hyps]


def test_scripted_beam_without_length_normalization():
    # Step 1 keeps A (.6) and B (.4). Step 2: B EOS .36, A A .33, A EOS .27, B B .04: the two EOS
    # candidates among the first 3 finish; A A and B B go on. Step 3: both end.
    assert _show(_scripted(3, alpha=0.0)) == [([B], 0.36), ([A, A], 0.33), ([A], 0.27)]


def test_scripted_beam_wider_than_half_the_vocabulary():
    # beam 5 on a vocabulary of 6: fewer than 2K candidates per step (dead ones fill the gap);
    # every one of the four possible outputs is found, then the search ends
    hyps = _scripted(5, alpha=0.0, n_best=5)
    assert _show(hyps) == [([B], 0.36), ([A, A], 0.33), ([A], 0.27), ([B, B], 0.04)]


def test_scripted_eos_that_wins_only_after_length_normalization():
    hyps = _scripted(3, alpha=1.0)
    assert _show(hyps) == [([A, A], 0.33), ([B], 0.36), ([A], 0.27)]
    assert [h.score for h in hyps] == pytest.approx(
        [math.log(0.33) / 3, math.log(0.36) / 2, math.log(0.27) / 2]
    )


def test_scripted_early_stop_ends_when_the_best_continuation_ends():
    # step 2's best continuation is B EOS (.36): with early stop the sentence ends there with
    # B and A, and misses A A (.33), which would have won after length normalization
    assert _show(_scripted(3, alpha=1.0, n_best=1, early_stop=True)) == [([B], 0.36)]
    assert _show(_scripted(3, alpha=1.0, n_best=1)) == [([A, A], 0.33)]
    # but not before n_best hypotheses have ended: 2 ended at step 2, so step 3 runs
    hyps = _scripted(3, alpha=1.0, n_best=3, early_stop=True)
    assert _show(hyps) == [([A, A], 0.33), ([B], 0.36), ([A], 0.27)]


def test_scripted_sentence_goes_on_while_its_best_open_hypothesis_can_win():
    # beam 2: step 1 finishes EOS (.06) beside A; step 2 finishes A EOS (.09) beside A A (.81).
    # K hypotheses have ended, but A A, scored as if it ended now (log .81 / 2), beats the K-th
    # finished one, so the sentence goes on and A A EOS (.81, the best) is found at step 3
    table = {(): {A: 0.9, EOS_ID: 0.06, B: 0.04}, (A,): {A: 0.9, EOS_ID: 0.1}, (B,): {EOS_ID: 1.0}}
    table[(A, A)] = {EOS_ID: 1.0}
    src = torch.tensor([[7, EOS_ID]])
    mask = torch.ones_like(src, dtype=torch.bool)
    procs = constraints(mask.sum(1))
    hyps = beam_search(ScriptedModel(table), src, mask, procs, 2, 2, length_normalization(1.0))[0]
    assert _show(hyps) == [([A, A], 0.81), ([A], 0.09)]


def test_chunked_topk_equals_topk():
    from seq2seq.search import _topk

    torch.manual_seed(0)
    for width in (7795, 8000, 130, 64 * 21):
        x = torch.randn(37, width)
        x[3] = float("-inf")  # a row where only one token is allowed (at the length limit)
        x[3, 5] = 0.0
        x[4, 100:] = float("-inf")
        x[5, -3:] = torch.tensor([10.0, 11.0, 12.0])  # the best ones in the partial last chunk
        expected, got = x.topk(10, dim=1), _topk(x, 10)
        assert torch.equal(got[0], expected.values)
        finite = torch.isfinite(expected.values)  # ties among -inf may come in any order
        assert torch.equal(got[1][finite], expected.indices[finite])


def test_scripted_min_length_removes_short_outputs():
    # no EOS at step 1 or 2... only A A EOS and B B EOS remain
    assert _show(_scripted(3, alpha=0.0, min_len=2)) == [([A, A], 0.33), ([B, B], 0.04)]


def test_scripted_ngram_blocking_forbids_repeats():
    # with no repeated 1-gram, A A and B B are impossible: best under alpha=1 becomes B
    assert _show(_scripted(3, alpha=1.0, no_repeat_ngram=1)) == [([B], 0.36), ([A], 0.27)]


def test_scripted_greedy_and_beam_one():
    src = torch.tensor([[7, EOS_ID]])
    mask = torch.ones_like(src, dtype=torch.bool)
    h = greedy(ScriptedModel(TABLE), src, mask, constraints(mask.sum(1)))[0]
    assert (h.tokens, round(math.exp(h.log_prob), 6)) == ([A, A], 0.33)
    assert _show(_scripted(1, alpha=1.0, n_best=1)) == [([A, A], 0.33)]


def test_coverage_penalty_enters_the_beam_score():
    from seq2seq.processors import coverage_penalty

    model = tiny_model("bahdanau", seed=9)
    b = _batch()
    short = _procs(b, max_len_ratio=0.0, max_len_offset=3)  # too short to cover every source token
    nbest = beam_search(
        model, b.src, b.src_mask, short, 4, 4, coverage_beta=0.5, return_attention=True
    )
    for hyps in nbest:
        for h in hyps:
            expected = h.log_prob / (len(h.tokens) + 1) + coverage_penalty(h.attention.sum(0), 0.5)
            assert h.score == pytest.approx(expected, abs=1e-5)
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    assert all(coverage_penalty(h.attention.sum(0), 0.5) < 0 for h in nbest[0])
    plain = beam_search(model, b.src, b.src_mask, short, 4, 4)
    assert [h.score for h in plain[0]] != pytest.approx([h.score for h in nbest[0]])
