"""The sliced vocabulary projection equals F.linear, and quantized layers are left alone."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import seq2seq.nn.projection as projection
from seq2seq.nn.projection import output_logits, project


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(7, 16), (3, 4, 16)])
def test_slices_equal_f_linear(monkeypatch, bias, shape):
    monkeypatch.setattr(projection, "SLICE_COLUMNS", 4)  # 11 columns: slices of 4, 4 and 3
    monkeypatch.setattr(projection, "SLICE_MIN_ROWS", 1)
    torch.manual_seed(0)
    layer = nn.Linear(16, 11, bias=bias)
    x = torch.randn(*shape)
    got = output_logits(layer, x)
    assert got.shape == (*shape[:-1], 11)
    torch.testing.assert_close(got, F.linear(x, layer.weight, layer.bias))


def test_gradients_flow_through_the_slices(monkeypatch):
    monkeypatch.setattr(projection, "SLICE_COLUMNS", 3)
    monkeypatch.setattr(projection, "SLICE_MIN_ROWS", 1)
    torch.manual_seed(0)
    w, b, x = (torch.randn(*s, requires_grad=True) for s in [(8, 5), (8,), (4, 5)])
    project(x, w, b).square().sum().backward()
    ours = [t.grad.clone() for t in (w, b, x)]
    for t in (w, b, x):
        t.grad = None
    F.linear(x, w, b).square().sum().backward()
    for o, t in zip(ours, (w, b, x)):
        torch.testing.assert_close(o, t.grad)


@pytest.mark.parametrize("dtype,autocast", [(torch.bfloat16, False), (torch.float32, True)])
def test_bf16_products_are_not_sliced(monkeypatch, dtype, autocast):
    monkeypatch.setattr(projection, "SLICE_COLUMNS", 4)
    monkeypatch.setattr(projection, "SLICE_MIN_ROWS", 1)
    whole = []
    linear = F.linear
    monkeypatch.setattr(F, "linear", lambda *a: whole.append(1) or linear(*a))
    layer = nn.Linear(16, 11).to(dtype)
    x = torch.randn(7, 16, dtype=dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        got = output_logits(layer, x)
        assert got.dtype == torch.bfloat16
        torch.testing.assert_close(got, linear(x, layer.weight, layer.bias))
    assert whole == [1]  # one product, not slices
    output_logits(layer.float(), x.float())  # float32 outside autocast: sliced
    assert whole == [1]


def test_other_layers_are_called_as_they_are():
    calls = []

    class Quantized(nn.Module):
        def forward(self, x):
            calls.append(x.shape)
            return x

    x = torch.randn(2, 3)
    assert output_logits(Quantized(), x) is x and calls == [(2, 3)]


def test_compiled_projection_is_one_graph_for_every_number_of_rows(monkeypatch):
    """Under torch.compile the projection is one F.linear whatever the rows, so no size test may
    come before that decision: one would guard the graph on it, and beam search, whose rows
    cross SLICE_MIN_ROWS (one per sentence at the first step, one per beam after it), would
    compile the step's graph twice."""
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    monkeypatch.setattr(projection, "SLICE_COLUMNS", 4)  # 11 columns: wider than one slice
    counter = CompileCounter()  # counts graphs; runs them eagerly, so no C++ compiler needed
    compiled = torch.compile(project, backend=counter, dynamic=True)
    layer = nn.Linear(16, 11)
    for rows in (3, projection.SLICE_MIN_ROWS - 1, projection.SLICE_MIN_ROWS, 300):
        x = torch.randn(rows, 16)
        torch.testing.assert_close(compiled(x, layer.weight, layer.bias), layer(x))
    assert counter.frame_count == 1
    torch._dynamo.reset()
