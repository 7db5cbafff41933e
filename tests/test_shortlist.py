"""Vocabulary shortlists: IBM Model 1 tables, the per-batch id set, restricted search, files."""

import random

import pytest
import torch

from seq2seq.data.batching import make_batch
from seq2seq.data.vocab import SPECIALS, Vocab
from seq2seq.processors import constraints
from seq2seq.quantize import quantize
from seq2seq.search import beam_search, force_decode
from seq2seq.shortlist import Restricted, Restrictor, Shortlist, float_output_layer, ibm1_table

from .conftest import tiny_model, tiny_transformer

SRCS = [[4, 5, 6, 7, 8, 9, 10], [11, 12], [5, 12, 4], [9], [6, 6, 7, 8, 11]]


def dictionary_corpus(n: int = 400, seed: int = 0):
    """Source words s0..s9 translate to target words t(9-i), in shuffled order, plus a target
    word 'the' in half of the sentences that no source word stands for."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        words = rng.sample(range(10), rng.randint(1, 5))
        tgt = [f"t{9 - w}" for w in words]
        rng.shuffle(tgt)
        if rng.random() < 0.5:
            tgt.insert(rng.randint(0, len(tgt)), "the")
        pairs.append(([f"s{w}" for w in words], tgt))
    src_vocab = Vocab.build(s for s, _ in pairs)
    tgt_vocab = Vocab.build(t for _, t in pairs)
    ids = [(src_vocab.encode(s), tgt_vocab.encode(t)) for s, t in pairs]
    return ids, src_vocab, tgt_vocab


def test_ibm1_recovers_a_word_dictionary_and_sends_unexplained_words_to_null():
    pairs, sv, tv = dictionary_corpus()
    src, tgt, prob = ibm1_table(pairs, len(sv), len(tv), iterations=10)
    totals = torch.zeros(len(sv) + 1).index_add_(0, src, prob)
    present = totals > 0
    assert totals[present].tolist() == pytest.approx([1.0] * int(present.sum()), abs=1e-5)
    for w in range(10):
        s = sv.stoi[f"s{w}"]
        mine = src == s
        best = tgt[mine][prob[mine].argmax()]
        assert tv.itos[best] == f"t{9 - w}"
    null = src == len(sv)
    assert tv.itos[tgt[null][prob[null].argmax()]] == "the"


def test_shortlist_ids_hold_specials_frequent_tokens_translations_and_namesakes():
    pairs, sv, tv = dictionary_corpus()
    sl = Shortlist.build(pairs, sv, tv, top=1, frequent=1, iterations=10)
    assert sl.frequent.tolist() == [tv.stoi["the"]]  # the most frequent target word
    src = torch.tensor([[sv.stoi["s3"], sv.stoi["s7"], 0]])  # with a pad
    got = sl.ids(src).tolist()
    assert got == sorted(got)
    assert [tv.itos[i] for i in got] == [*SPECIALS, *sorted(["the", "t6", "t2"], key=tv.stoi.get)]
    # a joint vocabulary: each source token also allows the target token spelled the same way
    joint = Vocab([*SPECIALS, "a", "b", "c"])
    sl = Shortlist.build([([4, 5], [5, 4])] * 3, joint, joint, top=1, frequent=0)
    assert sl.ids(torch.tensor([[6]])).tolist() == [0, 1, 2, 3, 6]


def test_shortlist_build_checks_its_arguments():
    pairs, sv, tv = dictionary_corpus(20)
    with pytest.raises(
        ValueError, match=r"need top >= 1, frequent >= 0 and iterations >= 1, got 0"
    ):
        Shortlist.build(pairs, sv, tv, top=0)
    with pytest.raises(ValueError, match="no sentence pairs to build a shortlist from"):
        Shortlist.build([], sv, tv)


@pytest.mark.parametrize("make", [tiny_model, tiny_transformer], ids=["rnn", "transformer"])
def test_search_over_the_whole_vocabulary_as_a_shortlist_equals_plain_search(make):
    model = make()
    w, b = float_output_layer(model.output_layer)
    every = Restricted(model, torch.arange(11), w, b, 11)
    batch = make_batch(SRCS, None, list(range(len(SRCS))))
    limit = constraints(batch.src_mask.sum(1))
    for k in (1, 4):
        want = beam_search(model, batch.src, batch.src_mask, limit, beam_size=k, n_best=1)
        got = beam_search(every, batch.src, batch.src_mask, limit, beam_size=k, n_best=1)
        assert [n[0].tokens for n in got] == [n[0].tokens for n in want]
        assert [n[0].log_prob for n in got] == pytest.approx(
            [n[0].log_prob for n in want], abs=1e-5
        )


@pytest.mark.parametrize("make", [tiny_model, tiny_transformer], ids=["rnn", "transformer"])
def test_restricted_search_writes_only_shortlisted_tokens_scored_over_the_shortlist(make):
    model = make()
    ids = torch.tensor([0, 1, 2, 3, 5, 7, 8])
    w, b = float_output_layer(model.output_layer)
    restricted = Restricted(model, ids, w, b, 11)
    batch = make_batch(SRCS, None, list(range(len(SRCS))))
    limit = constraints(batch.src_mask.sum(1))
    hyps = [n[0] for n in beam_search(restricted, batch.src, batch.src_mask, limit, beam_size=3)]
    assert {t for h in hyps for t in h.tokens} <= set(ids.tolist())
    assert len({t for h in hyps for t in h.tokens}) > 1
    # the same log-probabilities as the full model renormalised over the shortlist, step by step
    forced = force_decode(restricted, batch.src, batch.src_mask, [h.tokens for h in hyps])
    assert forced == pytest.approx([h.log_prob for h in hyps], abs=1e-4)
    state = model.init_state(model.encode(batch.src, batch.src_mask))
    logits, _ = model.decode_step(torch.full((len(SRCS),), 2), state)
    want = torch.log_softmax(logits[:, ids], dim=-1)
    got, _ = restricted.decode_log_probs(
        torch.full((len(SRCS),), 2), model.init_state(model.encode(batch.src, batch.src_mask))
    )
    assert torch.allclose(got[:, ids], want, atol=1e-5)
    assert torch.isinf(got[:, [4, 6, 9, 10]]).all()


def test_models_without_an_output_layer_are_restricted_by_renormalising_every_logit():
    from seq2seq.ensemble import Ensemble

    ens = Ensemble([tiny_model(seed=1), tiny_model(seed=2)])
    sl = Shortlist(torch.full((13, 1), -1), torch.tensor([5, 7]), "", "", 11, 1)
    restricted = Restrictor(ens, sl)(torch.tensor([[4, 5]]))
    assert restricted.weight is None
    batch = make_batch(SRCS[:2], None, [0, 1])
    state = ens.init_state(ens.encode(batch.src, batch.src_mask))
    got, _ = restricted.decode_log_probs(torch.full((2,), 2), state)
    state = ens.init_state(ens.encode(batch.src, batch.src_mask))
    logits, _ = ens.decode_step(torch.full((2,), 2), state)
    ids = [0, 1, 2, 3, 5, 7]
    assert torch.allclose(got[:, ids], torch.log_softmax(logits[:, ids], dim=-1), atol=1e-5)


@pytest.mark.parametrize("compiled", [False, True], ids=["dynamic", "int8linear"])
def test_int8_output_layers_give_their_dequantized_weights(compiled):
    model = tiny_transformer()
    q = quantize(model, "int8", compiled=compiled)
    w, b = float_output_layer(q.output_layer)
    assert torch.allclose(w, model.output_layer.weight, atol=0.02)
    assert torch.allclose(b, model.output_layer.bias)


def test_shortlist_file_round_trip_and_errors(tmp_path):
    pairs, sv, tv = dictionary_corpus(50)
    sl = Shortlist.build(pairs, sv, tv, top=2, frequent=3)
    sl.save(tmp_path / "sl.pt")
    back = Shortlist.load(tmp_path / "sl.pt")
    assert torch.equal(back.candidates, sl.candidates) and torch.equal(back.frequent, sl.frequent)
    back.check(sv, tv)
    other = Vocab([*tv.itos[:-1], "zzz"])
    with pytest.raises(ValueError) as e:
        back.check(sv, other, "sl.pt")
    assert str(e.value).startswith("sl.pt: built for another target vocabulary than the model's")
    with pytest.raises(ValueError, match=r"missing\.pt: shortlist file not found"):
        Shortlist.load(tmp_path / "missing.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ValueError, match=r"text\.pt: not a shortlist file"):
        Shortlist.load(tmp_path / "text.pt")
    torch.save({"format": "seq2seq-shortlist", "version": 99}, tmp_path / "new.pt")
    with pytest.raises(ValueError, match=r"new\.pt: shortlist format version 99, this seq2seq"):
        Shortlist.load(tmp_path / "new.pt")
