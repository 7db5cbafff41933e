"""The length-sorted LSTM equals nn.LSTM over a packed sequence: outputs, final states, gradients."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seq2seq.nn.residual_rnn import ResidualRNN
from seq2seq.nn.sorted_lstm import sorted_lstm, takes


def packed(rnn, x, lengths):
    p = pack_padded_sequence(x, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
    out, final = rnn(p)
    return pad_packed_sequence(out, batch_first=True, total_length=x.size(1))[0], final


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("layers", [1, 2])
def test_sorted_lstm_equals_the_packed_module_with_gradients(layers, bidirectional, bias):
    torch.manual_seed(0)
    rnn = torch.nn.LSTM(7, 5, layers, batch_first=True, bidirectional=bidirectional, bias=bias)
    rnn = rnn.double()
    x = torch.randn(6, 10, 7, dtype=torch.float64, requires_grad=True)
    lengths = [3, 9, 1, 5, 5, 9]  # ties, a single token, and one padded column past the longest
    results = []
    for run in (packed, sorted_lstm):
        out, (h, c) = run(rnn, x, lengths)
        loss = (out * out.detach().cos()).sum() + (h * h.detach().sin()).sum() + c.pow(2).sum()
        results.append((out, h, c, torch.autograd.grad(loss, [x, *rnn.parameters()])))
    for ours, theirs in zip(results[1], results[0]):
        torch.testing.assert_close(ours, theirs)
    out = results[1][0]
    for b, n in enumerate(lengths):
        assert out[b, n:].abs().sum() == 0  # padded positions are zero, as packing gives


def test_sorted_lstm_drops_between_layers_in_training_only():
    torch.manual_seed(0)
    rnn = torch.nn.LSTM(4, 3, 2, batch_first=True, bidirectional=True, dropout=0.5)
    x, lengths = torch.randn(3, 5, 4), [5, 2, 4]
    rnn.eval()
    torch.testing.assert_close(sorted_lstm(rnn, x, lengths)[0], packed(rnn, x, lengths)[0])
    rnn.train()
    (_, (h, _)), (_, (h_ref, _)) = sorted_lstm(rnn, x, lengths), packed(rnn, x, lengths)
    torch.testing.assert_close(h[:2], h_ref[:2])  # the first layer sees no dropout
    assert not torch.allclose(h[2:], h_ref[2:])  # the second sees a dropped first layer


def test_only_plain_lstms_on_cpu_are_taken():
    x = torch.zeros(2, 3, 4)
    assert takes(torch.nn.LSTM(4, 3, batch_first=True, bidirectional=True), x)
    assert not takes(torch.nn.GRU(4, 3, batch_first=True), x)
    assert not takes(torch.nn.LSTM(4, 3, batch_first=True, proj_size=2), x)
    assert not takes(torch.nn.LSTM(4, 3), x)  # time-major
    assert not takes(ResidualRNN(torch.nn.LSTM, 4, 3, 2, True, 0.0), x)
    with torch.no_grad():  # decoding: the packed module's forward pass is faster
        assert not takes(torch.nn.LSTM(4, 3, batch_first=True, bidirectional=True), x)
