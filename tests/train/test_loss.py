import pytest
import torch
import torch.nn.functional as F

from seq2seq.data.vocab import PAD_ID
from seq2seq.train.loss import label_smoothed_nll


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_matches_torch_cross_entropy_and_ignores_padding(eps):
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 9)
    target = torch.randint(1, 9, (3, 5))
    target[1, 3:] = PAD_ID
    target[2, 1:] = PAD_ID
    loss, nll, n = label_smoothed_nll(logits, target, eps)
    assert n == 15 - 2 - 4
    ref = F.cross_entropy(
        logits.view(-1, 9),
        target.view(-1),
        ignore_index=PAD_ID,
        label_smoothing=eps,
        reduction="sum",
    )
    torch.testing.assert_close(loss, ref)
    ref_nll = F.cross_entropy(
        logits.view(-1, 9), target.view(-1), ignore_index=PAD_ID, reduction="sum"
    )
    torch.testing.assert_close(nll, ref_nll)


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_gradient_matches_torch_cross_entropy(eps, dtype):
    torch.manual_seed(1)
    base = torch.randn(4, 6, 11, dtype=torch.float64)
    target = torch.randint(1, 11, (4, 6))
    target[0, 2:] = PAD_ID
    target[3, 5:] = PAD_ID
    ours = base.clone().to(dtype).requires_grad_()
    ref = base.clone().to(dtype).requires_grad_()
    loss, _, _ = label_smoothed_nll(ours, target, eps)
    (loss * 0.7).backward()
    ref_loss = F.cross_entropy(
        ref.float().view(-1, 11),
        target.view(-1),
        ignore_index=PAD_ID,
        label_smoothing=eps,
        reduction="sum",
    )
    (ref_loss * 0.7).backward()
    assert ours.grad.dtype == dtype
    assert ours.grad[0, 2:].abs().max() == 0  # pad rows get no gradient
    tol = {"atol": 1e-2, "rtol": 1e-2} if dtype == torch.bfloat16 else {}
    torch.testing.assert_close(ours.grad.float(), ref.grad.float(), **tol)
    torch.testing.assert_close(loss.float(), ref_loss.float(), **tol)


def test_output_layer_nll_gradcheck_double():
    from seq2seq.train.loss import output_layer_nll

    torch.manual_seed(2)
    hidden = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    layer = torch.nn.Linear(4, 5).double()
    target = torch.tensor([[1, 2, PAD_ID], [4, 3, 2]])
    assert torch.autograd.gradcheck(
        lambda h, w, b: output_layer_nll(h, _Fixed(w, b), target, 0.2)[0],
        (hidden, layer.weight, layer.bias),
    )


class _Fixed:
    """A stand-in for nn.Linear whose weight and bias are the tensors gradcheck perturbs."""

    def __init__(self, weight, bias):
        self.weight, self.bias = weight, bias


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("bias", [True, False])
def test_output_layer_nll_equals_projection_then_loss(eps, bias, monkeypatch):
    import seq2seq.nn.projection as projection
    import seq2seq.train.loss as loss_module
    from seq2seq.train.loss import output_layer_nll

    monkeypatch.setattr(loss_module, "CHUNK_BYTES", 240)  # 2 rows of 13 float64: many chunks
    monkeypatch.setattr(projection, "SLICE_COLUMNS", 5)  # logits in 3 slices, the last short
    monkeypatch.setattr(projection, "SLICE_MIN_ROWS", 1)
    torch.manual_seed(3)
    hidden = torch.randn(3, 5, 4, dtype=torch.float64)
    layer = torch.nn.Linear(4, 13, bias=bias).double()
    target = torch.randint(1, 13, (3, 5))
    target[1, 2:] = PAD_ID
    h1 = hidden.clone().requires_grad_()
    loss, nll, n = output_layer_nll(h1, layer, target, eps)
    (2.5 * loss).backward()
    grads = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad()
    h2 = hidden.clone().requires_grad_()
    ref, ref_nll, ref_n = label_smoothed_nll(layer(h2), target, eps)
    (2.5 * ref).backward()
    assert n == ref_n == 12
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(nll, ref_nll)
    torch.testing.assert_close(h1.grad, h2.grad)
    for ours, theirs in zip(grads, [p.grad for p in layer.parameters()]):
        torch.testing.assert_close(ours, theirs)


def test_output_layer_nll_under_bf16_autocast_is_close_to_float():
    from seq2seq.train.loss import output_layer_nll

    torch.manual_seed(4)
    hidden = torch.randn(2, 7, 16, requires_grad=True)
    layer = torch.nn.Linear(16, 50)
    target = torch.randint(1, 50, (2, 7))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _, _ = output_layer_nll(hidden, layer, target, 0.1)
    loss.backward()
    assert loss.dtype == torch.float32 and hidden.grad.dtype == torch.float32
    assert layer.weight.grad.dtype == torch.float32
    ref_h = hidden.detach().clone().requires_grad_()
    ref, _, _ = label_smoothed_nll(layer(ref_h), target, 0.1)
    torch.testing.assert_close(loss, ref, rtol=2e-2, atol=0.0)
    torch.testing.assert_close(hidden.grad, torch.autograd.grad(ref, ref_h)[0], rtol=0.1, atol=2e-2)


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("gap", [95.0, 200.0])  # the target's probability subnormal / zero in fp32
def test_output_layer_nll_is_exact_where_the_targets_probability_underflows(eps, gap):
    from seq2seq.train.loss import output_layer_nll

    torch.manual_seed(5)
    layer = torch.nn.Linear(4, 6)
    hidden = torch.randn(2, 3, 4)
    target = torch.tensor([[1, 2, 3], [4, 5, PAD_ID]])
    with torch.no_grad():  # row (0, 0) only: class 0's logit `gap` above the others
        layer.weight[:, 0] = 0.0
        layer.weight[0, 0] = gap
        hidden[..., 0] = 0.0
        hidden[0, 0, 0] = 1.0
    ref, ref_nll, _ = label_smoothed_nll(layer(hidden), target, eps)
    h = hidden.clone().requires_grad_()
    loss, nll, n = output_layer_nll(h, layer, target, eps)
    assert n == 5 and torch.isfinite(loss) and float(nll) > gap
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(nll, ref_nll)
    loss.backward()
    ref_h = hidden.clone().requires_grad_()
    ref_grad = torch.autograd.grad(label_smoothed_nll(layer(ref_h), target, eps)[0], ref_h)[0]
    torch.testing.assert_close(h.grad, ref_grad)


def test_output_layer_nll_in_bf16_keeps_small_target_gradients():
    """A confident target (p ~ 0.9983): p - 1 from a probability rounded to bf16 would be off by
    ~15% or more (bf16's spacing below 1 is 2^-9); the bias gradient of that class must match
    the float softmax of the same bf16 logits to ~1%."""
    from seq2seq.train.loss import output_layer_nll

    torch.manual_seed(6)
    layer = torch.nn.Linear(4, 6)
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.copy_(torch.tensor([0.0, 8.0, 0.0, 0.0, 0.0, 0.0]))
    hidden = torch.randn(1, 3, 4)
    target = torch.tensor([[1, 1, 1]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _, _ = output_layer_nll(hidden, layer, target, 0.0)
    loss.backward()
    z = layer.bias.detach().bfloat16().float()  # the logits of every row, as the products give them
    ref = 3 * (torch.softmax(z, dim=0)[1] - 1.0)  # ~ -0.0050
    torch.testing.assert_close(layer.bias.grad[1], ref, rtol=1e-2, atol=0.0)
    torch.testing.assert_close(loss, -3 * torch.log_softmax(z, dim=0)[1], rtol=1e-2, atol=0.0)
