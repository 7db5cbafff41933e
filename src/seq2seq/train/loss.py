"""Label-smoothed cross-entropy over non-pad target tokens (Szegedy et al. 2016, section 7).

The loss is one autograd function: the forward pass needs only the log-partition per row, and the
backward pass writes ``softmax - smoothed one-hot`` straight into the gradient. Compared with
``log_softmax`` + ``gather`` + ``mean`` this skips the (tokens x vocabulary) log-probability tensor,
its backward pass and the zero-filled gather gradient; on the Multi30k reference shapes it was
~20% of a CPU training step (benchmarks/train_speed.py, docs/benchmarks.md).
"""

from __future__ import annotations

import torch
from torch import Tensor

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
