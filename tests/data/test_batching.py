import random

import torch

from seq2seq.data.batching import ParallelData, bucket_batches, make_batch
from seq2seq.data.vocab import BOS_ID, EOS_ID, PAD_ID


def test_make_batch_pads_and_masks():
    b = make_batch([[5, 6, 7], [8]], [[9], [10, 11]], [3, 7])
    assert b.src.tolist() == [[5, 6, 7, EOS_ID], [8, EOS_ID, PAD_ID, PAD_ID]]
    assert b.src_lengths.tolist() == [4, 2]
    assert b.src_mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert b.tgt_in.tolist() == [[BOS_ID, 9, PAD_ID], [BOS_ID, 10, 11]]
    assert b.tgt_out.tolist() == [[9, EOS_ID, PAD_ID], [10, 11, EOS_ID]]
    assert b.num_tgt_tokens == 5
    assert b.index.tolist() == [3, 7]


def _data(n=500, seed=0):
    rng = random.Random(seed)
    src = [[4] * rng.randint(1, 40) for _ in range(n)]
    tgt = [[5] * rng.randint(1, 40) for _ in range(n)]
    return ParallelData(src, tgt)


def test_token_budget_is_respected_and_every_example_used_once():
    data = _data()
    lengths = data.lengths()
    batches = bucket_batches(lengths, batch_tokens=300, seed=3)
    assert sorted(i for b in batches for i in b) == list(range(len(data)))
    for b in batches:
        assert len(b) * max(lengths[i] for i in b) <= 300
        padded = data.batch(b)
        assert max(padded.src.size(1), padded.tgt_out.size(1)) <= max(lengths[i] for i in b)


def test_bucketing_keeps_padding_low():
    data = _data(2000)
    batches = bucket_batches(data.lengths(), batch_tokens=1000, seed=0)
    real = sum(data.lengths())
    padded = sum(len(b) * max(data.lengths()[i] for i in b) for b in batches)
    assert real / padded > 0.9


def test_deterministic_per_seed_and_varies_across_seeds():
    lengths = _data().lengths()
    a = bucket_batches(lengths, batch_tokens=300, seed=1)
    assert a == bucket_batches(lengths, batch_tokens=300, seed=1)
    assert a != bucket_batches(lengths, batch_tokens=300, seed=2)


def test_sentence_count_mode_and_sorted_mode():
    lengths = _data(103).lengths()
    batches = bucket_batches(lengths, batch_size=10, shuffle=False)
    assert [len(b) for b in batches] == [10] * 10 + [3]
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat)


def test_an_example_over_budget_gets_its_own_batch():
    batches = bucket_batches([3, 50, 4], batch_tokens=10, shuffle=False)
    assert [1] in batches
    assert torch.tensor([i for b in batches for i in b]).sort().values.tolist() == [0, 1, 2]
