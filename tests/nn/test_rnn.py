"""The decode contract holds for every RNN variant: step-by-step == teacher forcing, padding inert."""

import itertools

import pytest
import torch

from seq2seq.data.batching import make_batch
from seq2seq.nn.attention import masked_softmax
from seq2seq.nn.residual_rnn import ResidualRNN
from seq2seq.nn.rnn import _steps_by_cell, rnn_step

from ..conftest import tiny_model

KINDS = [
    "bahdanau",
    "luong_dot",
    "luong_general",
    "luong_concat",
    "scaled_dot",
    "multihead",
    "local_m",
    "local_p",
]
# every kind with the default cell and bridge; the other cells and bridges with two kinds (the
# attention does not interact with the cell or bridge, and the whole product is slow on 2 cores)
VARIANTS = [
    (att, feed, cell, bridge)
    for att, feed, (cell, bridge) in itertools.product(KINDS, [True, False], [("lstm", "linear")])
] + [
    (att, feed, cell, bridge)
    for att, feed, (cell, bridge) in itertools.product(
        ["bahdanau", "local_m"],
        [True, False],
        [("gru", "last"), ("rnn", "mean"), ("lstm", "zero"), ("lstm", "last")],
    )
]
OPTIONS = {
    "coverage": dict(coverage=True),
    "residual": dict(residual=True, num_layers=3),
    "all": dict(coverage=True, residual=True, num_layers=2, tie_output=True, hidden_dropout=0.3),
}


def assert_steps_equal_forced(model, batch):
    forced, forced_att = model.forward_with_attention(batch.src, batch.src_mask, batch.tgt_in)
    state = model.init_state(model.encode(batch.src, batch.src_mask))
    steps, atts = [], []
    for t in range(batch.tgt_in.size(1)):
        logits, state = model.decode_step(batch.tgt_in[:, t], state)
        steps.append(logits)
        atts.append(state.attention)
    torch.testing.assert_close(torch.stack(steps, 1), forced, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.stack(atts, 1), forced_att, atol=1e-6, rtol=1e-5)
    return state


@pytest.mark.parametrize("attention,input_feeding,cell,bridge", VARIANTS)
def test_step_by_step_equals_teacher_forcing(batch, attention, input_feeding, cell, bridge):
    assert_steps_equal_forced(tiny_model(attention, input_feeding, cell, bridge), batch)


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("input_feeding", [True, False])
@pytest.mark.parametrize("attention", KINDS)
def test_step_by_step_equals_teacher_forcing_with_options(batch, attention, input_feeding, option):
    model = tiny_model(attention, input_feeding, **OPTIONS[option])
    state = assert_steps_equal_forced(model, batch)
    if model.decoder.attention.coverage is not None:  # C_T = a_1 + ... + a_T
        _, att = model.forward_with_attention(batch.src, batch.src_mask, batch.tgt_in)
        torch.testing.assert_close(state.coverage, att.sum(1), atol=1e-5, rtol=1e-5)
    else:
        assert state.coverage is None


@pytest.mark.parametrize("coverage", [False, True])
@pytest.mark.parametrize("attention", KINDS)
def test_padded_positions_get_exactly_zero_and_rows_sum_to_one(batch, attention, coverage):
    model = tiny_model(attention, coverage=coverage)
    _, att = model.forward_with_attention(batch.src, batch.src_mask, batch.tgt_in)
    pad = ~batch.src_mask.unsqueeze(1).expand_as(att)
    assert pad.any()
    assert torch.all(att[pad] == 0.0)
    torch.testing.assert_close(att.sum(-1), torch.ones(att.shape[:2]))


def test_tied_output_shares_the_embedding_and_residual_adds_layers():
    tied = tiny_model(tie_output=True)
    assert tied.decoder.output.weight is tied.decoder.embed.weight
    untied = tiny_model(residual=True, num_layers=2)
    assert untied.decoder.output.weight is not untied.decoder.embed.weight
    assert len(untied.encoder.rnn.layers) == len(untied.decoder.rnn.layers) == 2


def test_residual_connection_is_used(batch):
    """Zeroing the second layer's RNN leaves (residual) a copy of the first layer's output."""
    model = tiny_model(residual=True, num_layers=2, bidirectional=False)
    with torch.no_grad():
        for p in model.encoder.rnn.layers[1].parameters():
            p.zero_()
    enc = model.encode(batch.src, batch.src_mask)
    first, _ = model.encoder.rnn.layers[0](model.encoder.embed(batch.src))
    # a zero LSTM outputs 0 everywhere, so the top layer is the first layer's output (forward
    # only: padding at the end does not change real positions)
    real = batch.src_mask.unsqueeze(-1)
    torch.testing.assert_close(enc.states * real, first * real)


def test_hidden_dropout_acts_in_training_only(batch):
    model = tiny_model("luong_general", input_feeding=False, hidden_dropout=0.5)
    eval_out = model(batch.src, batch.src_mask, batch.tgt_in)
    model.train()
    model.encoder.dropout.p = model.decoder.dropout.p = 0.0
    model.encoder.embed_dropout.p = model.decoder.embed_dropout.p = 0.0
    torch.manual_seed(0)
    train_out = model(batch.src, batch.src_mask, batch.tgt_in)
    assert not torch.allclose(train_out, eval_out)
    model.decoder.hidden_dropout.p = 0.0
    torch.testing.assert_close(model(batch.src, batch.src_mask, batch.tgt_in), eval_out)


@pytest.mark.parametrize("attention", ["luong_general", "luong_concat", "multihead", "local_p"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_padding_changes_no_output_of_a_sentence(batch, cell, attention):
    """Each sentence decoded alone gives the same logits as inside the padded batch."""
    model = tiny_model(attention, cell=cell, num_layers=2, coverage=attention == "local_p")
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


class Prepared(torch.nn.Module):
    """attention(query, prepare(memory), memory, mask, first_step=2, coverage) as one forward."""

    def __init__(self, attention, mask):
        super().__init__()
        self.attention, self.mask = attention, mask

    def forward(self, query, memory, coverage):
        a = self.attention
        return a(query, a.prepare(memory), memory, self.mask, 2, coverage)


@pytest.mark.parametrize("coverage", [False, True])
@pytest.mark.parametrize("attention", KINDS)
def test_scorers_gradcheck_float64(attention, coverage):
    """Gradients w.r.t. query, memory, coverage and every parameter (local_p: through p_t)."""
    torch.manual_seed(0)
    attn = tiny_model(attention, coverage=coverage, window=2).decoder.attention.double()
    query = torch.randn(2, 3, 16, dtype=torch.float64, requires_grad=True)
    memory = torch.randn(2, 6, 16, dtype=torch.float64, requires_grad=True)
    cov = torch.rand(2, 6, dtype=torch.float64, requires_grad=True) if coverage else None
    mask = torch.tensor([[True] * 6, [True, True, True, False, False, False]])
    module = Prepared(attn, mask)
    names = [n for n, _ in module.named_parameters()]

    def f(q, m, c, *weights):
        return torch.func.functional_call(module, dict(zip(names, weights)), (q, m, c))

    weights = tuple(p.detach().clone().requires_grad_() for p in module.parameters())
    inputs = (query, memory, cov, *weights)
    assert torch.autograd.gradcheck(f, inputs, fast_mode=True)


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


CELL_MODULES = {
    "lstm": (torch.nn.LSTM, {}),
    "lstm_nobias": (torch.nn.LSTM, {"bias": False}),
    "gru": (torch.nn.GRU, {}),
    "rnn_tanh": (torch.nn.RNN, {}),
    "rnn_relu": (torch.nn.RNN, {"nonlinearity": "relu"}),
}


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("kind", CELL_MODULES)
def test_rnn_step_equals_the_fused_module_with_its_gradients(kind, layers):
    module, kwargs = CELL_MODULES[kind]
    torch.manual_seed(0)
    rnn = module(6, 5, layers, batch_first=True, **kwargs).double()
    x = torch.randn(3, 1, 6, dtype=torch.float64, requires_grad=True)
    h = torch.randn(layers, 3, 5, dtype=torch.float64, requires_grad=True)
    c = torch.randn(layers, 3, 5, dtype=torch.float64, requires_grad=True)
    hx = (h, c) if module is torch.nn.LSTM else h
    assert _steps_by_cell(rnn, x)
    results = []
    for run in (lambda: rnn(x, hx), lambda: rnn_step(rnn, x, hx)):
        out, final = run()
        finals = final if isinstance(final, tuple) else (final,)
        loss = out.pow(2).sum() + sum((f * f.detach().sin()).sum() for f in finals)
        inputs = [x, h, *([c] if module is torch.nn.LSTM else []), *rnn.parameters()]
        results.append((out, finals, torch.autograd.grad(loss, inputs)))
    (out_a, finals_a, grads_a), (out_b, finals_b, grads_b) = results
    torch.testing.assert_close(out_b, out_a)
    torch.testing.assert_close(finals_b, finals_a)
    torch.testing.assert_close(grads_b, grads_a)


def test_rnn_step_drops_between_layers_in_training_only():
    torch.manual_seed(0)
    rnn = torch.nn.LSTM(6, 5, 2, batch_first=True, dropout=0.5)
    x, hx = torch.randn(4, 1, 6), (torch.randn(2, 4, 5), torch.randn(2, 4, 5))
    rnn.eval()
    fused, (h_fused, _) = rnn(x, hx)
    stepped, (h_stepped, _) = rnn_step(rnn, x, hx)
    torch.testing.assert_close(stepped, fused)
    rnn.train()
    dropped, (h_dropped, _) = rnn_step(rnn, x, hx)
    torch.testing.assert_close(h_dropped[0], h_fused[0])  # the first layer sees no dropout
    assert not torch.allclose(dropped, fused)  # the second sees a dropped first layer


def test_only_single_steps_of_plain_unidirectional_modules_go_by_cell():
    step, seq = torch.zeros(2, 1, 6), torch.zeros(2, 3, 6)
    assert not _steps_by_cell(torch.nn.LSTM(6, 5, batch_first=True), seq)
    assert not _steps_by_cell(torch.nn.LSTM(6, 5, batch_first=True, bidirectional=True), step)
    assert not _steps_by_cell(torch.nn.LSTM(6, 5, batch_first=True, proj_size=3), step)
    assert not _steps_by_cell(ResidualRNN(torch.nn.LSTM, 6, 6, 2, False, 0.0), step)
    assert _steps_by_cell(torch.nn.GRU(6, 5, batch_first=True), step)
    with torch.no_grad():  # decoding keeps the module (thread-count independent)
        assert not _steps_by_cell(torch.nn.GRU(6, 5, batch_first=True), step)
