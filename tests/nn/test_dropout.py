"""The CPU dropout: right drop rate and scale, the same mask forward and backward, governed by the
global seed, and F.dropout itself wherever the cheaper mask does not apply."""

import pytest
import torch
import torch.nn.functional as F

from seq2seq.nn.dropout import Dropout, dropout


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_drop_rate_and_scale(p):
    torch.manual_seed(0)
    y = dropout(torch.ones(1_000_000), p)
    rounded = round(p * 65536) / 65536
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - rounded) < 5 * (rounded * (1 - rounded) / 1e6) ** 0.5  # 5 sigma
    kept = y[y != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / (1 - rounded)))
    assert abs(y.mean().item() - 1.0) < 0.01  # the expectation is kept


def test_backward_uses_the_forward_mask():
    torch.manual_seed(0)
    x = torch.randn(64, 33, requires_grad=True)
    y = dropout(x, 0.25)
    g = torch.randn_like(y)
    y.backward(g)
    keep = y != 0
    torch.testing.assert_close(x.grad, torch.where(keep, g / (1 - 0.25), 0.0))
    torch.testing.assert_close(y, torch.where(keep, x / (1 - 0.25), 0.0))


def test_seeded_masks_repeat_and_differ_between_draws():
    torch.manual_seed(3)
    a, b = dropout(torch.ones(4096), 0.5), dropout(torch.ones(4096), 0.5)
    torch.manual_seed(3)
    assert torch.equal(dropout(torch.ones(4096), 0.5), a)
    assert not torch.equal(a, b)


def test_falls_back_to_f_dropout_where_the_cheap_mask_does_not_apply(monkeypatch):
    x = torch.randn(5, 7)
    assert dropout(x, 0.5, training=False) is x  # F.dropout's identity in evaluation
    assert torch.equal(dropout(x, 0.0), x)
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    torch.manual_seed(1)
    cheap = dropout(x, 0.5)
    torch.manual_seed(1)
    expected = F.dropout(x, 0.5)
    assert not torch.equal(cheap, expected)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)  # compiled: F.dropout
    torch.manual_seed(1)
    assert torch.equal(dropout(x, 0.5), expected)


def test_module():
    m = Dropout(0.2)
    assert repr(m) == "Dropout(p=0.2)"
    assert m.eval()(torch.ones(3)).tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="between 0 and 1, but got 1.5"):
        Dropout(1.5)
