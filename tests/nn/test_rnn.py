"""The decode contract holds for every RNN variant: step-by-step == teacher forcing, padding inert."""

import itertools

import pytest
import torch

from seq2seq.data.batching import make_batch
from seq2seq.nn.attention import masked_softmax

from ..conftest import tiny_model

VARIANTS = [
    (att, feed, cell, bridge)
    for att, feed, (cell, bridge) in itertools.product(
        ["bahdanau", "luong_dot", "luong_general"],
        [True, False],
        [("lstm", "linear"), ("gru", "last"), ("rnn", "mean"), ("lstm", "zero"), ("lstm", "last")],
    )
]


@pytest.mark.parametrize("attention,input_feeding,cell,bridge", VARIANTS)
def test_step_by_step_equals_teacher_forcing(batch, attention, input_feeding, cell, bridge):
    model = tiny_model(attention, input_feeding, cell, bridge)
    forced, forced_att = model.forward_with_attention(batch.src, batch.src_mask, batch.tgt_in)
    state = model.init_state(model.encode(batch.src, batch.src_mask))
    steps, atts = [], []
    for t in range(batch.tgt_in.size(1)):
        logits, state = model.decode_step(batch.tgt_in[:, t], state)
        steps.append(logits)
        atts.append(state.attention)
    torch.testing.assert_close(torch.stack(steps, 1), forced, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.stack(atts, 1), forced_att, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("attention", ["bahdanau", "luong_dot", "luong_general"])
def test_padded_positions_get_exactly_zero_and_rows_sum_to_one(batch, attention):
    model = tiny_model(attention)
    _, att = model.forward_with_attention(batch.src, batch.src_mask, batch.tgt_in)
    pad = ~batch.src_mask.unsqueeze(1).expand_as(att)
    assert pad.any()
    assert torch.all(att[pad] == 0.0)
    torch.testing.assert_close(att.sum(-1), torch.ones(att.shape[:2]))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_padding_changes_no_output_of_a_sentence(batch, cell):
    """Each sentence decoded alone gives the same logits as inside the padded batch."""
    model = tiny_model("luong_general", cell=cell, num_layers=2)
    together = model(batch.src, batch.src_mask, batch.tgt_in)
    srcs = [[4, 5, 6, 7, 8, 9], [10, 11], [5, 12, 4]]
    tgts = [[4, 5, 6, 7], [8], [9, 10, 4, 5, 6]]
    for i in range(3):
        one = make_batch([srcs[i]], [tgts[i]], [0])
        alone = model(one.src, one.src_mask, one.tgt_in)
        n = one.tgt_in.size(1)
        torch.testing.assert_close(alone[0], together[i, :n], atol=1e-5, rtol=1e-5)


def test_masked_softmax_against_hand_computation():
    scores = torch.tensor([[[1.0, 2.0, 50.0]]])
    mask = torch.tensor([[True, True, False]])
    w = masked_softmax(scores, mask)
    e1, e2 = torch.exp(torch.tensor(1.0)), torch.exp(torch.tensor(2.0))
    torch.testing.assert_close(
        w, torch.stack([e1, e2, torch.tensor(0.0)]).div(e1 + e2).view(1, 1, 3)
    )


@pytest.mark.parametrize("attention", ["bahdanau", "luong_dot", "luong_general"])
def test_scorers_gradcheck_float64(attention):
    model = tiny_model(attention).double()
    scorer = model.decoder.attention.scorer
    query = torch.randn(2, 3, 16, dtype=torch.float64, requires_grad=True)
    memory = torch.randn(2, 4, 16, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True] * 4, [True, True, False, False]])

    def f(q, m):
        return model.decoder.attention(q, scorer.prepare(m), m, mask)

    assert torch.autograd.gradcheck(f, (query, memory))


def test_state_select_reorders_rows(batch):
    model = tiny_model()
    state = model.init_state(model.encode(batch.src, batch.src_mask))
    _, state = model.decode_step(batch.tgt_in[:, 0], state)
    index = torch.tensor([2, 0, 0])
    picked = state.select(index)
    torch.testing.assert_close(picked.hidden, state.hidden[:, index])
    torch.testing.assert_close(picked.memory, state.memory[index])
    torch.testing.assert_close(picked.attention, state.attention[index])
    logits_a, _ = model.decode_step(torch.tensor([5, 6, 6]), picked)
    logits_b, _ = model.decode_step(torch.tensor([6, 5, 6]), state)
    torch.testing.assert_close(logits_a[1], logits_b[0])
