"""Label-smoothed cross-entropy over non-pad target tokens (Szegedy et al. 2016, section 7)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..data.vocab import PAD_ID


def label_smoothed_nll(
    logits: Tensor, target: Tensor, smoothing: float = 0.0
) -> tuple[Tensor, Tensor, int]:
    """logits (B, T, V), target (B, T) -> (loss sum, nll sum, number of real tokens).

    ``loss = (1 - eps) * nll + eps * mean_v(-log p_v)`` per token, the same definition as
    ``torch.nn.functional.cross_entropy(label_smoothing=eps)``; pad targets count nothing. The plain
    NLL comes back as well for perplexity.
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    mask = target != PAD_ID
    nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    nll_sum = nll[mask].sum()
    if smoothing > 0:
        smooth = -logp.mean(dim=-1)
        loss = (1.0 - smoothing) * nll_sum + smoothing * smooth[mask].sum()
    else:
        loss = nll_sum
    return loss, nll_sum.detach(), int(mask.sum())
