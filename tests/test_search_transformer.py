"""Search, written once, works unchanged for the Transformer: beam 1 == greedy, batched == one at
a time, reported scores == force-decoded scores, attention comes back per step."""

import pytest
import torch

from seq2seq.data.batching import make_batch
from seq2seq.data.vocab import BOS_ID, PAD_ID
from seq2seq.processors import BanTokens, MaxLength, constraints
from seq2seq.search import beam_search, force_decode, greedy

from .conftest import tiny_transformer

SRCS = [[4, 5, 6, 7, 8, 9, 10], [11, 12], [5, 12, 4], [9]]


def _batch(srcs=SRCS):
    return make_batch(srcs, None, list(range(len(srcs))))


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_beam_one_equals_greedy(norm):
    model = tiny_transformer(norm, seed=3)
    b = _batch()
    limit = constraints(b.src_mask.sum(1))
    g = greedy(model, b.src, b.src_mask, limit)
    beam = beam_search(model, b.src, b.src_mask, limit, beam_size=1)
    assert [h.tokens for h in g] == [n[0].tokens for n in beam]
    assert [h.log_prob for h in g] == pytest.approx([n[0].log_prob for n in beam], abs=1e-5)


@pytest.mark.parametrize("beam_size", [1, 4])
def test_batched_equals_one_at_a_time(beam_size):
    model = tiny_transformer(seed=5)
    b = _batch()
    together = beam_search(
        model, b.src, b.src_mask, constraints(b.src_mask.sum(1)), beam_size, beam_size
    )
    lengths = set()
    for i, src in enumerate(SRCS):
        one = _batch([src])
        alone = beam_search(
            model, one.src, one.src_mask, constraints(one.src_mask.sum(1)), beam_size, beam_size
        )[0]
        assert [h.tokens for h in alone] == [h.tokens for h in together[i]]
        assert [h.score for h in alone] == pytest.approx([h.score for h in together[i]], abs=1e-5)
        lengths.update(len(h.tokens) for h in alone)
    assert len(lengths) > 1  # sentences finished at different steps and left the batch


def test_reported_scores_equal_force_decoding():
    model = tiny_transformer("post", seed=7)
    b = _batch()
    nbest = beam_search(model, b.src, b.src_mask, constraints(b.src_mask.sum(1)), 5, 3)
    for rank in range(3):
        hyps = [n[rank] for n in nbest]
        forced = force_decode(model, b.src, b.src_mask, [h.tokens for h in hyps])
        assert forced == pytest.approx([h.log_prob for h in hyps], abs=1e-4)


def test_attention_is_returned_per_step_over_real_source_positions():
    model = tiny_transformer(seed=1)
    b = _batch()
    lengths = torch.tensor([2, 1, 3, 0])
    limit = [BanTokens([PAD_ID, BOS_ID]), MaxLength(lengths)]
    for hyps in (
        greedy(model, b.src, b.src_mask, limit, return_attention=True),
        [n[0] for n in beam_search(model, b.src, b.src_mask, limit, 3, return_attention=True)],
    ):
        for h, lim, src in zip(hyps, lengths.tolist(), SRCS):
            assert len(h.tokens) <= lim
            assert h.attention.shape == (len(h.tokens) + 1, len(src) + 1)
            torch.testing.assert_close(h.attention.sum(-1), torch.ones(len(h.tokens) + 1))
