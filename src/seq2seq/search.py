"""Greedy and beam search, written once against the decode contract of :mod:`seq2seq.model`.

Both search a batch at once; sentences leave the batch as soon as they are finished (their rows are
dropped with ``state.select``), so later steps only pay for what is still being decoded. A
hypothesis that reaches its maximum length is ended with ``<eos>`` (the EOS log-probability is
counted), so every output has a score that force-decoding the same tokens reproduces.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .data.vocab import BOS_ID, EOS_ID, PAD_ID

LengthNorm = Callable[[float, int], float]


@dataclass
class Hypothesis:
    """tokens: output ids without ``<eos>``; log_prob: sum of log-probabilities (``<eos>``
    included); score: ``log_prob`` after length normalisation (what beam search ranks by);
    attention: (len(tokens) + 1, S) weights over the real source positions, when asked for."""

    tokens: list[int]
    log_prob: float
    score: float
    attention: Tensor | None = None


def length_normalization(alpha: float = 1.0) -> LengthNorm:
    """``log_prob / length ** alpha`` (length counts ``<eos>``): 1.0 ranks by mean log-probability,
    0.0 by the plain sum."""

    def norm(log_prob: float, length: int) -> float:
        return log_prob / (length**alpha)

    return norm


def max_lengths(src_mask: Tensor, ratio: float = 2.0, offset: int = 10, cap: int = 512) -> Tensor:
    """Per-sentence output limit (tokens before ``<eos>``): ``min(cap, ratio * |src| + offset)``."""
    return (src_mask.sum(1).float() * ratio + offset).long().clamp(max=cap)


def _log_probs(logits: Tensor, step: int, max_len: Tensor) -> Tensor:
    """log-softmax with ``<pad>``/``<bos>`` banned and ``<eos>`` forced once ``step >= max_len``."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    logp[:, PAD_ID] = float("-inf")
    logp[:, BOS_ID] = float("-inf")
    at_max = step >= max_len
    if bool(at_max.any()):
        eos = logp[at_max, EOS_ID].clone()
        logp[at_max] = float("-inf")
        logp[at_max, EOS_ID] = eos
    return logp


def _trim(att: Tensor | None, src_len: int) -> Tensor | None:
    return None if att is None else att[:, :src_len].clone()


@torch.inference_mode()
def greedy(
    model: torch.nn.Module,
    src: Tensor,
    src_mask: Tensor,
    max_len: Tensor,
    return_attention: bool = False,
    normalize: LengthNorm | None = None,
) -> list[Hypothesis]:
    """The most probable token at each step, for a batch: src, src_mask (B, S); max_len (B,)."""
    normalize = normalize or length_normalization(1.0)
    batch = src.size(0)
    src_lens = src_mask.sum(1).tolist()
    state = model.init_state(model.encode(src, src_mask))
    rows = torch.arange(batch)  # sentence id of each active row
    prev = torch.full((batch,), BOS_ID, dtype=torch.long, device=src.device)
    hist = torch.empty(batch, 0, dtype=torch.long, device=src.device)
    total = torch.zeros(batch, device=src.device)
    att = src.new_zeros(batch, 0, src.size(1), dtype=torch.float) if return_attention else None
    results: list[Hypothesis | None] = [None] * batch
    limit = max_len.to(src.device)
    step = 0
    while rows.numel():
        logits, state = model.decode_step(prev, state)
        lp, tok = _log_probs(logits, step, limit).max(dim=-1)
        total = total + lp
        hist = torch.cat([hist, tok.unsqueeze(1)], dim=1)
        if att is not None:
            att = torch.cat([att, state.attention.float().unsqueeze(1)], dim=1)
        done = tok == EOS_ID
        for i in done.nonzero().flatten().tolist():
            sid = int(rows[i])
            lp_sum = float(total[i])
            results[sid] = Hypothesis(
                hist[i, :-1].tolist(),
                lp_sum,
                normalize(lp_sum, step + 1),
                _trim(att[i] if att is not None else None, src_lens[sid]),
            )
        if bool(done.any()):
            keep = (~done).nonzero().flatten()
            rows, tok, hist, total, limit = (
                rows[keep.cpu()],
                tok[keep],
                hist[keep],
                total[keep],
                limit[keep],
            )
            att = att[keep] if att is not None else None
            state = state.select(keep)
        prev = tok
        step += 1
    return results  # type: ignore[return-value]


@torch.inference_mode()
def beam_search(
    model: torch.nn.Module,
    src: Tensor,
    src_mask: Tensor,
    max_len: Tensor,
    beam_size: int = 5,
    n_best: int = 1,
    normalize: LengthNorm | None = None,
    return_attention: bool = False,
) -> list[list[Hypothesis]]:
    """Batched beam search over sentences x beams; returns the ``n_best`` hypotheses per sentence,
    best first, ranked by ``normalize(log_prob, length)``.

    At each step the 2K best continuations of each sentence are taken: those ending in ``<eos>``
    among the first K are finished, the first K others continue. A sentence is done once it has K
    finished hypotheses (or reached its length limit, where ``<eos>`` is forced).
    """
    if beam_size < 1 or not 1 <= n_best <= beam_size:
        raise ValueError(
            f"need beam_size >= 1 and 1 <= n_best <= beam_size, got {beam_size}, {n_best}"
        )
    normalize = normalize or length_normalization(1.0)
    k = beam_size
    batch, device = src.size(0), src.device
    src_lens = src_mask.sum(1).tolist()
    state = model.init_state(model.encode(src, src_mask))
    state = state.select(torch.arange(batch, device=device).repeat_interleave(k))
    rows = torch.arange(batch)
    scores = torch.full((batch, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # only the first beam is alive at the start
    scores = scores.view(-1)
    prev = torch.full((batch * k,), BOS_ID, dtype=torch.long, device=device)
    hist = torch.empty(batch * k, 0, dtype=torch.long, device=device)
    att = src.new_zeros(batch * k, 0, src.size(1), dtype=torch.float) if return_attention else None
    limit = max_len.to(device)
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    step = 0
    while rows.numel():
        active = rows.numel()
        logits, state = model.decode_step(prev, state)
        logp = _log_probs(logits, step, limit.repeat_interleave(k))
        vocab = logp.size(-1)
        cand = (scores.unsqueeze(1) + logp).view(active, k * vocab)
        top_s, top_i = cand.topk(min(2 * k, k * vocab), dim=1)  # (A, 2K)
        beam, tok = top_i // vocab, top_i % vocab
        src_row = torch.arange(active, device=device).unsqueeze(1) * k + beam  # (A, 2K)
        is_eos = tok == EOS_ID
        step_att = state.attention.float() if att is not None else None
        for b, j in (is_eos[:, :k] & torch.isfinite(top_s[:, :k])).nonzero().tolist():
            sid, r = int(rows[b]), int(src_row[b, j])
            lp_sum = float(top_s[b, j])
            a = None
            if att is not None:
                a = _trim(torch.cat([att[r], step_att[r].unsqueeze(0)]), src_lens[sid])
            finished[sid].append(
                Hypothesis(hist[r].tolist(), lp_sum, normalize(lp_sum, step + 1), a)
            )
        # the first K candidates that do not end the sentence continue
        pos = torch.arange(top_s.size(1), device=device).expand_as(top_s)
        sel = (pos + is_eos.long() * top_s.size(1)).argsort(dim=1)[:, :k]  # (A, K)
        next_scores = top_s.gather(1, sel)
        next_tok = tok.gather(1, sel)
        next_rows = src_row.gather(1, sel)
        done = torch.tensor(
            [len(finished[int(s)]) >= k for s in rows], dtype=torch.bool, device=device
        ) | (step >= limit)
        keep = ~done
        flat = next_rows[keep].view(-1)
        state = state.select(flat)
        hist = torch.cat([hist[flat], next_tok[keep].view(-1, 1)], dim=1)
        if att is not None:
            att = torch.cat([att[flat], step_att[flat].unsqueeze(1)], dim=1)
        scores = next_scores[keep].view(-1)
        prev = next_tok[keep].view(-1)
        rows, limit = rows[keep.cpu()], limit[keep]
        step += 1
    return [sorted(f, key=lambda h: h.score, reverse=True)[:n_best] for f in finished]


@torch.inference_mode()
def force_decode(
    model: torch.nn.Module, src: Tensor, src_mask: Tensor, tgt: list[list[int]]
) -> list[float]:
    """Sum of log-probabilities of each target (``<eos>`` appended) under the model, computed step
    by step through ``decode_step`` with the same constraints as search."""
    from .data.batching import pad

    tgt_out, lengths = pad(tgt, suffix=EOS_ID)
    tgt_out = tgt_out.to(src.device)
    state = model.init_state(model.encode(src, src_mask))
    prev = torch.full((src.size(0),), BOS_ID, dtype=torch.long, device=src.device)
    total = torch.zeros(src.size(0), device=src.device)
    never = torch.full((src.size(0),), 1 << 30, device=src.device)
    for t in range(tgt_out.size(1)):
        logits, state = model.decode_step(prev, state)
        logp = _log_probs(logits, t, never)
        live = t < lengths.to(src.device)
        total += torch.where(live, logp.gather(1, tgt_out[:, t : t + 1]).squeeze(1), 0.0)
        prev = tgt_out[:, t]
    return total.tolist()
