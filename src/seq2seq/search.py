"""Greedy, beam and sampling search, written once against the decode contract of
:mod:`seq2seq.model`, with options as small callables from :mod:`seq2seq.processors`.

Every search decodes a batch at once and drops finished sentences from it (``state.select``), so
later steps only pay for what is still being decoded. The constraint list must contain a
:class:`~seq2seq.processors.MaxLength`: it ends every hypothesis with ``<eos>`` at its limit (the
EOS log-probability is counted), so every output has a score that force-decoding reproduces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .data.vocab import BOS_ID, EOS_ID, PAD_ID
from .processors import (
    LengthPenalty,
    LogitsProcessor,
    MaxLength,
    StepInfo,
    apply,
    constraints,
    coverage_penalty,
    length_normalization,
    warp,
)
from .search_options import SearchOptions


@dataclass
class Hypothesis:
    """tokens: output ids without ``<eos>``; log_prob: sum of the model's log-probabilities
    (``<eos>`` included); score: what beam search ranks by (log_prob after length and coverage
    penalties); attention: (len(tokens) + 1, S) weights over the real source positions, if asked."""

    tokens: list[int]
    log_prob: float
    score: float
    attention: Tensor | None = None


def max_lengths(src_mask: Tensor, ratio: float = 2.0, offset: int = 10, cap: int = 512) -> Tensor:
    """Per-sentence output limit (tokens before ``<eos>``): ``min(cap, ratio * |src| + offset)``."""
    return (src_mask.sum(1).float() * ratio + offset).long().clamp(max=cap)


def _check(processors: Sequence[LogitsProcessor]) -> None:
    if not any(isinstance(p, MaxLength) for p in processors):
        raise ValueError("search needs a MaxLength constraint, or it might never stop")


def _step(
    model: torch.nn.Module,
    prev: Tensor,
    state: Any,
    processors: Sequence[LogitsProcessor],
    info: StepInfo,
) -> tuple[Tensor, Any]:
    """One decoding step: the constrained log-probabilities (N, V) and the new state. A model may
    offer ``decode_log_probs(prev, state)``, the log-softmax of ``decode_step``'s logits computed
    its own way (compiled models fuse it into the output layer)."""
    fused = getattr(model, "decode_log_probs", None)
    if fused is not None:
        logp, state = fused(prev, state)
    else:
        logits, state = model.decode_step(prev, state)
        logp = torch.log_softmax(logits.float(), dim=-1)
    return apply(processors, logp, info), state


def _trim(att: Tensor | None, src_len: int) -> Tensor | None:
    return None if att is None else att[:, :src_len].clone()


def _topk(x: Tensor, n: int, chunk: int = 64) -> tuple[Tensor, Tensor]:
    """``x.topk(n, dim=1)`` for rows as long as a vocabulary, about twice as fast on CPU: the n
    largest values of a row lie in the n chunks (of ``chunk`` columns) with the largest maxima,
    so only those chunks (and the columns after the last whole chunk) are searched. Ties may
    come out in another order."""
    rows, width = x.shape
    whole = width // chunk
    if whole <= 2 * n:
        return x.topk(n, dim=1)
    maxima = x.unfold(1, chunk, chunk).amax(-1)  # (R, C): the whole chunks, a view, no copy
    best = maxima.topk(n, dim=1).indices  # (R, n)
    cols = (best.unsqueeze(-1) * chunk + torch.arange(chunk, device=x.device)).view(rows, -1)
    if width > whole * chunk:  # the last, partial chunk is always searched
        tail = torch.arange(whole * chunk, width, device=x.device).expand(rows, -1)
        cols = torch.cat([cols, tail], dim=1)
    values, at = x.gather(1, cols).topk(n, dim=1)
    return values, cols.gather(1, at)


Pick = Callable[[Tensor], Tensor]  # constrained log-probs (N, V) -> chosen ids (N,)


def _sequential(
    model: torch.nn.Module,
    src: Tensor,
    src_mask: Tensor,
    processors: Sequence[LogitsProcessor],
    pick: Pick,
    copies: int,
    return_attention: bool,
    length_penalty: LengthPenalty,
) -> list[list[Hypothesis]]:
    """One token per row and step, chosen by ``pick``; ``copies`` rows per sentence."""
    _check(processors)
    batch, device = src.size(0), src.device
    src_lens = src_mask.sum(1).tolist()
    state = model.init_state(model.encode(src, src_mask))
    sentence = torch.arange(batch, device=device).repeat_interleave(copies)
    if copies > 1:
        state = state.select(sentence)
    rows = torch.arange(batch * copies, device=device)  # output slot of each active row
    prev = torch.full((rows.numel(),), BOS_ID, dtype=torch.long, device=device)
    hist = torch.empty(rows.numel(), 0, dtype=torch.long, device=device)
    total = torch.zeros(rows.numel(), device=device)
    att = (
        src.new_zeros(rows.numel(), 0, src.size(1), dtype=torch.float) if return_attention else None
    )
    results: list[Hypothesis | None] = [None] * (batch * copies)
    step = 0
    while rows.numel():
        logp, state = _step(model, prev, state, processors, StepInfo(step, sentence, hist))
        tok = pick(logp)
        total = total + logp.gather(1, tok.unsqueeze(1)).squeeze(1)
        hist = torch.cat([hist, tok.unsqueeze(1)], dim=1)
        if att is not None:
            att = torch.cat([att, state.attention.float().unsqueeze(1)], dim=1)
        done = tok == EOS_ID
        for i in done.nonzero().flatten().tolist():
            lp = float(total[i])
            a = _trim(att[i], src_lens[int(sentence[i])]) if att is not None else None
            results[int(rows[i])] = Hypothesis(
                hist[i, :-1].tolist(), lp, length_penalty(lp, step + 1), a
            )
        if bool(done.any()):
            keep = (~done).nonzero().flatten()
            rows, tok, hist, total, sentence = (
                rows[keep],
                tok[keep],
                hist[keep],
                total[keep],
                sentence[keep],
            )
            att = att[keep] if att is not None else None
            state = state.select(keep)
        prev = tok
        step += 1
    return [results[i * copies : (i + 1) * copies] for i in range(batch)]  # type: ignore[misc]


@torch.inference_mode()
def greedy(
    model: torch.nn.Module,
    src: Tensor,
    src_mask: Tensor,
    processors: Sequence[LogitsProcessor],
    return_attention: bool = False,
    length_penalty: LengthPenalty | None = None,
) -> list[Hypothesis]:
    """The most probable allowed token at each step: src, src_mask (B, S) -> B hypotheses."""
    nbest = _sequential(
        model,
        src,
        src_mask,
        processors,
        lambda logp: logp.argmax(dim=-1),
        1,
        return_attention,
        length_penalty or length_normalization(1.0),
    )
    return [n[0] for n in nbest]


@torch.inference_mode()
def sample(
    model: torch.nn.Module,
    src: Tensor,
    src_mask: Tensor,
    processors: Sequence[LogitsProcessor],
    num_samples: int = 1,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    return_attention: bool = False,
) -> list[list[Hypothesis]]:
    """``num_samples`` draws per sentence from the warped distribution (temperature, top-k,
    top-p); reported scores are the model's own log-probabilities. Seed ``generator`` to repeat."""
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")

    def pick(logp: Tensor) -> Tensor:
        probs = warp(logp, temperature, top_k, top_p).softmax(dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)

    return _sequential(
        model,
        src,
        src_mask,
        processors,
        pick,
        num_samples,
        return_attention,
        length_normalization(1.0),
    )


@torch.inference_mode()
def beam_search(
    model: torch.nn.Module,
    src: Tensor,
    src_mask: Tensor,
    processors: Sequence[LogitsProcessor],
    beam_size: int = 5,
    n_best: int = 1,
    length_penalty: LengthPenalty | None = None,
    coverage_beta: float = 0.0,
    return_attention: bool = False,
    early_stop: bool = False,
) -> list[list[Hypothesis]]:
    """Batched beam search over sentences x beams; returns the ``n_best`` hypotheses per sentence,
    best first, ranked by ``length_penalty(log_prob, length) + coverage penalty``.

    At each step the 2K best continuations of each sentence are taken by cumulative
    log-probability: those ending in ``<eos>`` among the first K are finished, the first K others
    continue. A sentence is done once it has K finished hypotheses and its best continuing one,
    scored as if it ended now, no longer beats the K-th best of them (or once it reached its length
    limit, where ``<eos>`` is forced); without that second condition, a confident model whose
    unlikely ``<eos>`` continuations fill the top K ends before its best hypothesis does. With
    ``early_stop`` a sentence is also done as soon as its best continuation ends in
    ``<eos>`` and ``n_best`` hypotheses are finished (the rule of OpenNMT-py, JoeyNMT and
    CTranslate2: fewer steps, and the best-scoring hypothesis may then be one found earlier).
    """
    if beam_size < 1 or not 1 <= n_best <= beam_size:
        raise ValueError(
            f"need beam_size >= 1 and 1 <= n_best <= beam_size, got {beam_size}, {n_best}"
        )
    _check(processors)
    length_penalty = length_penalty or length_normalization(1.0)
    k = beam_size
    batch, device = src.size(0), src.device
    src_lens = src_mask.sum(1).tolist()
    state = model.init_state(model.encode(src, src_mask))
    # one row per sentence for the first step (its K beams would all be the same); K after it
    width = 1
    rows = torch.arange(batch, device=device)  # sentence of each active beam group
    scores = torch.zeros(batch, device=device)
    prev = torch.full((batch,), BOS_ID, dtype=torch.long, device=device)
    hist = torch.empty(batch, 0, dtype=torch.long, device=device)
    track_att = return_attention or coverage_beta != 0.0
    att = src.new_zeros(batch, 0, src.size(1), dtype=torch.float) if track_att else None
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    step = 0
    while rows.numel():
        active = rows.numel()
        info = StepInfo(step, rows.repeat_interleave(width), hist)
        logp, state = _step(model, prev, state, processors, info)
        # the 2K best continuations of a sentence are among the 2K best of each of its beams, so
        # only (A*width, 2K) candidates are combined, never the (A, K*V) sum
        n = min(2 * k, logp.size(-1))
        row_s, row_tok = _topk(logp, n)  # (A*width, n)
        cand = (scores.unsqueeze(1) + row_s).view(active, width * n)
        row_tok = row_tok.view(active, width * n)
        if width * n < 2 * k:  # a vocabulary smaller than 2K: pad with dead candidates
            cand = F.pad(cand, (0, 2 * k - width * n), value=float("-inf"))
            row_tok = F.pad(row_tok, (0, 2 * k - width * n), value=PAD_ID)
        top_s, top_i = cand.topk(2 * k, dim=1)  # (A, 2K)
        beam, tok = (top_i // n).clamp(max=width - 1), row_tok.gather(1, top_i)
        src_row = torch.arange(active, device=device).unsqueeze(1) * width + beam  # (A, 2K)
        is_eos = tok == EOS_ID
        step_att = state.attention.float() if att is not None else None
        sids_now = rows.tolist()
        ends = is_eos[:, :k] & torch.isfinite(top_s[:, :k])  # (A, K) hypotheses finished now
        ended = ends.nonzero().tolist()
        if ended:
            srcs, lps = src_row.tolist(), top_s.tolist()
            hists = hist[[srcs[b][j] for b, j in ended]].tolist()  # only the rows that ended
        for e, (b, j) in enumerate(ended):
            sid, r = sids_now[b], srcs[b][j]
            lp = lps[b][j]
            a = (
                _trim(torch.cat([att[r], step_att[r].unsqueeze(0)]), src_lens[sid])
                if att is not None
                else None
            )
            score = length_penalty(lp, step + 1)
            if coverage_beta != 0.0:
                score += coverage_penalty(a.sum(0), coverage_beta)
            finished[sid].append(Hypothesis(hists[e], lp, score, a if return_attention else None))
        # the first K candidates that do not end the sentence continue: a stable sort puts those
        # not ending first, each group in its order of score
        sel = is_eos.to(torch.uint8).argsort(dim=1, stable=True)[:, :k]  # (A, K)
        next_scores, next_tok, next_rows = (
            top_s.gather(1, sel),
            tok.gather(1, sel),
            src_row.gather(1, sel),
        )
        # which sentences are done, decided in Python (a few dozen at most), so that a step where
        # none is done (most steps) selects nothing
        counts = [len(finished[s]) for s in sids_now]
        alive = torch.isfinite(next_scores).any(dim=1).tolist()  # something left to extend
        most = max(counts)
        best = next_scores[:, 0].tolist() if most >= k else None
        first_ended = is_eos[:, 0].tolist() if early_stop and most >= n_best else None
        keep = []
        for i, sid in enumerate(sids_now):
            done = not alive[i]
            if best is not None and counts[i] >= k:  # K finished: can the best continuing win?
                kth = sorted((h.score for h in finished[sid]), reverse=True)[k - 1]
                done = done or not length_penalty(best[i], step + 1) > kth
            if first_ended is not None and first_ended[i] and counts[i] >= n_best:
                done = True  # early stop: the best continuation ended, and n_best hypotheses have
            if not done:
                keep.append(i)
        if len(keep) < active:
            index = torch.tensor(keep, dtype=torch.long, device=device)
            next_rows, next_tok, next_scores = (
                next_rows.index_select(0, index),
                next_tok.index_select(0, index),
                next_scores.index_select(0, index),
            )
            rows = rows.index_select(0, index)
        flat = next_rows.reshape(-1)
        state = state.select(flat)
        hist = torch.cat([hist.index_select(0, flat), next_tok.reshape(-1, 1)], dim=1)
        if att is not None:
            att = torch.cat([att[flat], step_att[flat].unsqueeze(1)], dim=1)
        scores = next_scores.reshape(-1)
        prev = next_tok.reshape(-1)
        width = k
        step += 1
    return [sorted(f, key=lambda h: h.score, reverse=True)[:n_best] for f in finished]


@torch.inference_mode()
def force_decode(
    model: torch.nn.Module, src: Tensor, src_mask: Tensor, tgt: list[list[int]]
) -> list[float]:
    """Sum of the model's log-probabilities of each target (``<eos>`` appended), computed step by
    step through ``decode_step``, with ``<pad>``/``<bos>`` banned as in search."""
    from .data.batching import pad

    tgt_out, lengths = pad(tgt, suffix=EOS_ID)
    tgt_out, lengths = tgt_out.to(src.device), lengths.to(src.device)
    processors = constraints(src_mask.sum(1), max_len=1 << 30, max_len_offset=1 << 30)
    sentence = torch.arange(src.size(0), device=src.device)
    state = model.init_state(model.encode(src, src_mask))
    prev = torch.full((src.size(0),), BOS_ID, dtype=torch.long, device=src.device)
    total = torch.zeros(src.size(0), device=src.device)
    for t in range(tgt_out.size(1)):
        logp, state = _step(model, prev, state, processors, StepInfo(t, sentence, tgt_out[:, :t]))
        live = t < lengths
        total += torch.where(live, logp.gather(1, tgt_out[:, t : t + 1]).squeeze(1), 0.0)
        prev = tgt_out[:, t]
    return total.tolist()


def search(
    model: torch.nn.Module,
    src: Tensor,
    src_mask: Tensor,
    options: SearchOptions,
    return_attention: bool = False,
    generator: torch.Generator | None = None,
) -> list[list[Hypothesis]]:
    """n-best lists for a batch, by the search ``options`` ask for."""
    procs = options.processors(src_mask.sum(1))
    if options.sample:  # every sample, in the order drawn
        return sample(
            model,
            src,
            src_mask,
            procs,
            options.num_samples,
            options.temperature,
            options.top_k,
            options.top_p,
            generator,
            return_attention,
        )
    if options.beam_size == 1:
        return [
            [h] for h in greedy(model, src, src_mask, procs, return_attention, options.penalty())
        ]
    return beam_search(
        model,
        src,
        src_mask,
        procs,
        options.beam_size,
        options.n_best,
        options.penalty(),
        options.coverage_beta,
        return_attention,
        options.early_stop,
    )
