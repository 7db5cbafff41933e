"""Search: beam 1 == greedy, batched == one at a time, reported scores == force-decoded scores,
and beam search on a scripted decoder whose n-best list is worked out by hand."""

import math
from dataclasses import dataclass

import pytest
import torch

from seq2seq.data.batching import make_batch
from seq2seq.data.vocab import BOS_ID, EOS_ID
from seq2seq.nn.types import EncoderOutput
from seq2seq.search import beam_search, force_decode, greedy, length_normalization, max_lengths

from .conftest import tiny_model

SRCS = [[4, 5, 6, 7, 8, 9, 10], [11, 12], [5, 12, 4], [9]]


def _batch(srcs=SRCS):
    return make_batch(srcs, None, list(range(len(srcs))))


@pytest.mark.parametrize("attention", ["bahdanau", "luong_general"])
def test_beam_one_equals_greedy(attention):
    model = tiny_model(attention, seed=3)
    b = _batch()
    limit = max_lengths(b.src_mask)
    g = greedy(model, b.src, b.src_mask, limit)
    beam = beam_search(model, b.src, b.src_mask, limit, beam_size=1)
    assert [h.tokens for h in g] == [n[0].tokens for n in beam]
    assert [h.log_prob for h in g] == pytest.approx([n[0].log_prob for n in beam], abs=1e-5)


@pytest.mark.parametrize("beam_size", [1, 4])
def test_batched_equals_one_at_a_time(beam_size):
    model = tiny_model("bahdanau", seed=5)
    b = _batch()
    together = beam_search(model, b.src, b.src_mask, max_lengths(b.src_mask), beam_size, beam_size)
    for i, src in enumerate(SRCS):
        one = _batch([src])
        alone = beam_search(
            model, one.src, one.src_mask, max_lengths(one.src_mask), beam_size, beam_size
        )[0]
        assert [h.tokens for h in alone] == [h.tokens for h in together[i]]
        assert [h.score for h in alone] == pytest.approx([h.score for h in together[i]], abs=1e-5)


def test_reported_scores_equal_force_decoding():
    model = tiny_model("luong_general", seed=7)
    b = _batch()
    nbest = beam_search(model, b.src, b.src_mask, max_lengths(b.src_mask), 5, 3)
    for rank in range(3):
        hyps = [n[rank] for n in nbest]
        forced = force_decode(model, b.src, b.src_mask, [h.tokens for h in hyps])
        assert forced == pytest.approx([h.log_prob for h in hyps], abs=1e-4)
        for h in hyps:
            assert h.score == pytest.approx(h.log_prob / (len(h.tokens) + 1))


def test_max_length_forces_eos_and_attention_is_returned():
    model = tiny_model(seed=1)
    b = _batch()
    limit = torch.tensor([2, 1, 3, 0])
    for hyps in (
        greedy(model, b.src, b.src_mask, limit, return_attention=True),
        [n[0] for n in beam_search(model, b.src, b.src_mask, limit, 3, return_attention=True)],
    ):
        for h, lim, src in zip(hyps, limit.tolist(), SRCS):
            assert len(h.tokens) <= lim
            assert h.attention.shape == (len(h.tokens) + 1, len(src) + 1)
            torch.testing.assert_close(h.attention.sum(-1), torch.ones(len(h.tokens) + 1))


# -- a decoder whose probabilities are written by hand ---------------------------------------------

A, B = 4, 5  # two word ids; EOS_ID = 3; vocabulary of 6


@dataclass
class ScriptState:
    prefix: list  # one tuple of ids per row
    attention: torch.Tensor | None = None

    def select(self, index):
        return ScriptState([self.prefix[i] for i in index.tolist()])


class ScriptedModel(torch.nn.Module):
    """p(next | tokens so far) from a table; prefixes not in the table end with certainty."""

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
            probs = torch.full((6,), 1e-9)
            for tok, pr in self.table.get(p, {EOS_ID: 1.0}).items():
                probs[tok] = pr
            rows.append(probs.log())
        return torch.stack(rows), ScriptState(prefixes)


TABLE = {
    (): {A: 0.5, B: 0.4, EOS_ID: 0.1},
    (A,): {EOS_ID: 0.4, A: 0.3, B: 0.3},
    (B,): {B: 0.9, EOS_ID: 0.1},
    (B, B): {EOS_ID: 1.0},
    (A, A): {EOS_ID: 1.0},
    (A, B): {EOS_ID: 1.0},
}


def _run(beam, alpha, n_best=None):
    model = ScriptedModel(TABLE)
    src = torch.tensor([[7, EOS_ID]])
    mask = torch.ones_like(src, dtype=torch.bool)
    return beam_search(
        model, src, mask, torch.tensor([5]), beam, n_best or beam, length_normalization(alpha)
    )[0]


def test_scripted_beam_without_length_normalization():
    # Paper: sequences and probabilities (EOS included):
    #   A EOS 0.2 | B B EOS 0.36 | A A EOS 0.15 | A B EOS 0.15 | EOS 0.1 | B EOS 0.04
    # beam 2, no normalisation. Step 1 top-4 of {A .5, B .4, EOS .1}: A, B finished? EOS is 3rd,
    # not in the first K=2, so not finished. Step 2 from A (.5) and B (.4): B B .36, A EOS .2,
    # A A .15, A B .15 -> A EOS finishes (rank 2); B B and A A continue.
    # Step 3: B B EOS .36 and A A EOS .15 finish. Sentence has 3 >= 2 finished.
    hyps = _run(beam=2, alpha=0.0, n_best=2)
    assert [h.tokens for h in hyps] == [[B, B], [A]]
    assert [math.exp(h.log_prob) for h in hyps] == pytest.approx([0.36, 0.2], rel=1e-5)


def test_scripted_greedy_takes_the_locally_best_path():
    model = ScriptedModel(TABLE)
    src = torch.tensor([[7, EOS_ID]])
    h = greedy(model, src, torch.ones_like(src, dtype=torch.bool), torch.tensor([5]))[0]
    assert h.tokens == [A]  # A (.5) then EOS (.4): greedy misses B B EOS (.36 > .2)
    assert math.exp(h.log_prob) == pytest.approx(0.2, rel=1e-5)


def test_scripted_beam_one_equals_scripted_greedy():
    assert [h.tokens for h in _run(beam=1, alpha=1.0)] == [[A]]
