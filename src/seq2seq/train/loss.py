"""Label-smoothed cross-entropy over non-pad target tokens (Szegedy et al. 2016, section 7).

The loss is one autograd function: the forward pass needs only the log-partition per row, and the
backward pass writes ``softmax - smoothed one-hot`` straight into the gradient. Compared with
``log_softmax`` + ``gather`` + ``mean`` this skips the (tokens x vocabulary) log-probability tensor,
its backward pass and the zero-filled gather gradient; on the Multi30k reference shapes it was
~20% of a CPU training step (benchmarks/train_speed.py, docs/benchmarks.md).

Training goes one step further with :func:`output_layer_nll`: the output projection and the loss
run together over chunks of rows, so the (tokens x vocabulary) logits never exist as a whole and
the gradients of the projection are formed chunk by chunk in the forward pass (the loss is a
scalar, so its backward pass only scales them). This keeps every large buffer small enough for the
allocator to reuse instead of mapping fresh, zero-filled pages for each of them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..data.vocab import PAD_ID


class _SmoothedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: Tensor, target: Tensor, eps: float) -> tuple[Tensor, Tensor]:
        vocab = logits.size(-1)
        x = logits.reshape(-1, vocab)
        tgt = target.reshape(-1)
        mask = tgt != PAD_ID
        xf = x if x.dtype in (torch.float32, torch.float64) else x.float()
        lse = torch.logsumexp(xf, dim=-1)
        nll = (lse - xf.gather(1, tgt.unsqueeze(1)).squeeze(1)) * mask
        loss = nll
        if eps > 0:
            smooth = (lse - xf.mean(dim=-1)) * mask
            loss = (1.0 - eps) * nll + eps * smooth
        ctx.save_for_backward(x, tgt, lse, mask)
        ctx.eps, ctx.shape = eps, logits.shape
        nll_sum = nll.sum()
        ctx.mark_non_differentiable(nll_sum)
        return loss.sum(), nll_sum

    @staticmethod
    def backward(ctx, grad_loss: Tensor, _grad_nll: Tensor) -> tuple[Tensor | None, None, None]:
        x, tgt, lse, mask = ctx.saved_tensors
        eps = ctx.eps
        grad = (x if x.dtype in (torch.float32, torch.float64) else x.float()) - lse.unsqueeze(1)
        grad.exp_()  # softmax
        rows = torch.arange(grad.size(0), device=grad.device)
        grad[rows, tgt] -= 1.0 - eps
        if eps > 0:
            grad.sub_(eps / grad.size(1))
        grad.mul_((grad_loss * mask).unsqueeze(1))
        return grad.to(x.dtype).view(ctx.shape), None, None


def label_smoothed_nll(
    logits: Tensor, target: Tensor, smoothing: float = 0.0
) -> tuple[Tensor, Tensor, int]:
    """logits (B, T, V), target (B, T) -> (loss sum, nll sum, number of real tokens).

    ``loss = (1 - eps) * nll + eps * mean_v(-log p_v)`` per token, the same definition as
    ``torch.nn.functional.cross_entropy(label_smoothing=eps)``; pad targets count nothing. The plain
    NLL comes back as well (without a gradient) for perplexity. Logits of any float dtype are
    reduced in float32 (float64 stays float64); the gradient comes back in the logits' dtype.
    """
    loss, nll_sum = _SmoothedCrossEntropy.apply(logits, target, smoothing)
    return loss, nll_sum.detach(), int((target != PAD_ID).sum())


CHUNK_ELEMENTS = 2**21  # logits per chunk (8 MiB in float32)


class _OutputLayerNLL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, target, eps: float, dtype):  # noqa: ANN001
        """hidden (N, H) real-token states, weight (V, H), bias (V,) or None, target (N,)."""
        n, vocab = hidden.size(0), weight.size(0)
        acc = torch.float64 if dtype == torch.float64 else torch.float32  # reductions
        h, w = hidden.to(dtype), weight.to(dtype)
        b = bias.to(dtype) if bias is not None else None
        grad_h = torch.empty_like(hidden)
        grad_w = torch.zeros_like(weight, dtype=acc)
        grad_b = torch.zeros(vocab, dtype=acc, device=hidden.device)
        loss = hidden.new_zeros((), dtype=acc)
        nll_sum = hidden.new_zeros((), dtype=acc)
        step = max(1, CHUNK_ELEMENTS // vocab)
        for i in range(0, n, step):
            hc, tc = h[i : i + step], target[i : i + step]
            logits = (torch.addmm(b, hc, w.t()) if b is not None else hc @ w.t()).to(acc)
            lse = torch.logsumexp(logits, dim=-1)
            nll = lse - logits.gather(1, tc.unsqueeze(1)).squeeze(1)
            nll_sum += nll.sum()
            loss += (1.0 - eps) * nll.sum()
            if eps > 0:
                loss += eps * (lse - logits.mean(dim=-1)).sum()
            grad = logits.sub_(lse.unsqueeze(1)).exp_()  # softmax, in place
            grad[torch.arange(grad.size(0), device=grad.device), tc] -= 1.0 - eps
            if eps > 0:
                grad.sub_(eps / vocab)
            g = grad.to(dtype)
            grad_h[i : i + step] = g @ w
            grad_w += (g.t() @ hc).to(acc)
            grad_b += grad.sum(dim=0)
        ctx.save_for_backward(grad_h, grad_w, grad_b)
        ctx.has_bias, ctx.weight_dtype = bias is not None, weight.dtype
        ctx.mark_non_differentiable(nll_sum)
        return loss, nll_sum

    @staticmethod
    def backward(ctx, grad_loss, _grad_nll):  # noqa: ANN001
        grad_h, grad_w, grad_b = ctx.saved_tensors
        g = grad_loss.to(grad_w.dtype)
        return (
            (grad_h * g).to(grad_h.dtype),
            (grad_w * g).to(ctx.weight_dtype),
            (grad_b * g).to(ctx.weight_dtype) if ctx.has_bias else None,
            None,
            None,
            None,
        )


def output_layer_nll(
    hidden: Tensor, output: nn.Linear, target: Tensor, smoothing: float = 0.0
) -> tuple[Tensor, Tensor, int]:
    """hidden (B, T, H) decoder states, ``output`` the layer mapping them to logits, target (B, T)
    -> (loss sum, nll sum, number of real tokens), equal to ``label_smoothed_nll(output(hidden),
    target, smoothing)`` but without forming the logits. Under CPU/CUDA autocast the projection
    runs in the autocast dtype, as ``output(hidden)`` would; the reductions stay in float32."""
    mask = target != PAD_ID
    rows = hidden[mask]  # (N, H) real tokens only: pad rows cost nothing
    device = hidden.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
    with torch.autocast(device, enabled=False):
        loss, nll_sum = _OutputLayerNLL.apply(
            rows, output.weight, output.bias, target[mask], smoothing, dtype
        )
    return loss, nll_sum.detach(), int(rows.size(0))
