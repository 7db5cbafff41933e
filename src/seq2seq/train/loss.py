"""Label-smoothed cross-entropy over non-pad target tokens (Szegedy et al. 2016, section 7).

Training uses :func:`output_layer_nll`: the output projection and the loss run together over
chunks of rows, so the (tokens x vocabulary) logits never exist as a whole and the gradients of the
projection are formed chunk by chunk in the forward pass (the loss is a scalar, so its backward
pass only scales them). Every large buffer stays small enough for the allocator to reuse instead
of mapping fresh, zero-filled pages, and the full log-softmax tensor and its backward pass go:
on the Multi30k reference shapes that was ~30% of a CPU training step (benchmarks/train_speed.py,
docs/benchmarks.md). Per chunk the gradient is one softmax pass in the products' dtype and
the targets' terms come from it (:func:`_target_terms`): against a float32 log-softmax, its
exponential and the casts, the output layer and loss took 3-11% less time in float32 and 13-18%
less in bf16 (3,584 tokens x 256 -> 7,795, 2 threads, two timings on a noisy Zen 4 machine).
With label smoothing, the sum of every logit that the smoothing term needs is a dot product of
the rows' sum and the types' sum, not a pass over each chunk's logits: 3-4% less time for the
output layer and loss in bf16 (3,300 tokens, eps 0.1; docs/benchmarks.md).
:func:`label_smoothed_nll` is the plain form, for logits that exist anyway.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..data.vocab import PAD_ID
from ..nn.projection import project


def label_smoothed_nll(
    logits: Tensor, target: Tensor, smoothing: float = 0.0
) -> tuple[Tensor, Tensor, int]:
    """logits (B, T, V), target (B, T) -> (loss sum, nll sum, number of real tokens).

    ``loss = (1 - eps) * nll + eps * mean_v(-log p_v)`` per token, the same definition as
    ``torch.nn.functional.cross_entropy(label_smoothing=eps)``; pad targets count nothing. The plain
    NLL comes back as well for perplexity. Used where the logits exist anyway (dev loss, scoring)
    and as the reference :func:`output_layer_nll` is tested against.
    """
    logp = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
    mask = target != PAD_ID
    nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    nll_sum = nll[mask].sum()
    if smoothing > 0:
        smooth = -logp.mean(dim=-1)
        loss = (1.0 - smoothing) * nll_sum + smoothing * smooth[mask].sum()
    else:
        loss = nll_sum
    return loss, nll_sum.detach(), int(mask.sum())


# The logits of one chunk, in the products' dtype: 4 Mi of them in float32, 8 Mi in bf16. Below
# the 32 MiB mmap threshold that runtime.tune_malloc sets, so each chunk's buffers are reused.
# Against the earlier 2 Mi logits in every dtype (8 MiB in float32, 4 MiB in bf16), whole
# training updates of the Multi30k reference shapes ran 2.3% faster in float32 and 3.0% (the
# Transformer) and 4.7% (the RNN) in bf16: three or four chunks per batch instead of a dozen
# (benchmarks/loss_chunks.py, docs/benchmarks.md).
CHUNK_BYTES = 16 * 2**20


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
        lse_sum = hidden.new_zeros((), dtype=acc)
        step = max(1, CHUNK_BYTES // (vocab * h.element_size()))
        for i in range(0, n, step):
            hc, tc = h[i : i + step], target[i : i + step]
            logits = project(hc, w, b)  # in column slices on CPU
            rows = torch.arange(logits.size(0), device=logits.device)
            # d loss / d logits = softmax - (1 - eps) onehot - eps / V; the constant -eps / V is
            # added after the loop as a rank-one term instead of a pass over every chunk. The
            # softmax is one pass in the products' dtype (each row in cache, reduced in float32);
            # the targets' log-probabilities and p - 1 come from it.
            grad = torch.softmax(logits, dim=1)
            logp_t, rest = _target_terms(logits, grad, rows, tc, acc)
            nll = -logp_t
            nll_sum += nll.sum()
            loss += (1.0 - eps) * nll.sum()
            if eps > 0:  # the logsumexp terms of sum_v log p_v = sum_v z_v - V * logsumexp(z)
                lse_sum += (logits[rows, tc].to(acc) - logp_t).sum()
            grad[rows, tc] = (eps - rest).to(grad.dtype)  # p - (1 - eps), p = 1 - rest
            grad_h[i : i + step] = grad @ w
            if grad.dtype == acc:  # accumulated in place, no partial product to add
                grad_w.addmm_(grad.t(), hc)
            else:
                grad_w += (grad.t() @ hc).to(acc)
            grad_b += grad.sum(dim=0).to(acc)  # reduced in float32 whatever the dtype
        if eps > 0:
            # sum over every row and type of z = h w^T + b, as (sum of rows) . (sum of types):
            # two vector sums and a dot product instead of a pass over every chunk's logits
            w_sum, h_sum = w.to(acc).sum(dim=0), h.to(acc).sum(dim=0)
            z_sum = h_sum @ w_sum + (n * b.to(acc).sum() if b is not None else 0.0)
            loss -= eps / vocab * (z_sum - vocab * lse_sum)
            u = eps / vocab
            grad_h -= (u * w_sum).to(grad_h.dtype)
            grad_w -= u * h_sum
            grad_b -= u * n
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


def _target_terms(
    logits: Tensor, probs: Tensor, rows: Tensor, target: Tensor, acc: torch.dtype
) -> tuple[Tensor, Tensor]:
    """For ``probs = softmax(logits)`` (N, V): log p(target) and 1 - p(target) per row, in
    ``acc``; ``probs``' target entries are left zero.

    1 - p is the sum of the other types' probabilities, not a difference: a confident target
    (p near 1) keeps its small gradient p - 1 to the precision of ``probs`` even when that is
    bf16, whose spacing just below 1 is 2^-9. log p is ``log1p(-(1 - p))`` where p > 1/2, else
    ``log p``; rows where p is not a normal number of its dtype (rarely any) take a float
    log-softmax. On a GPU every row takes one, as that check would synchronise once per chunk."""
    p = probs[rows, target].to(acc)
    probs[rows, target] = 0
    rest = probs.sum(dim=1).to(acc)  # accumulated in float32 whatever the dtype
    if logits.device.type != "cpu":
        return torch.log_softmax(logits.to(acc), dim=1)[rows, target], rest
    logp = torch.where(p > 0.5, torch.log1p(-rest), torch.log(p))
    bad = (p < torch.finfo(probs.dtype).tiny).nonzero().squeeze(1)  # underflowed or subnormal
    if bad.numel():
        exact = torch.log_softmax(logits[bad].to(acc), dim=1)
        logp[bad] = exact[torch.arange(bad.numel()), target[bad]]
    return logp, rest


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
