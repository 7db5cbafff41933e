"""Lexical vocabulary shortlists: decode a batch over the target tokens its sources make likely.

In a Transformer decoder step the output layer is the largest single cost (for the reference
Multi30k model, 42% of the step's multiply-adds), and most of the vocabulary it scores is never
a candidate for the sentence at hand. A shortlist (Marian's lexical shortlist, CTranslate2's
vocabulary map) restricts the output layer, per batch, to

- the special tokens and the ``frequent`` most frequent target tokens of the training data, and
- for every source token of the batch, its ``top`` most probable translations under an IBM
  Model 1 table estimated by EM on the training data (Brown et al. 1993), plus the target token
  spelled the same way (names and numbers under a joint vocabulary).

The restricted log-softmax is normalised over the shortlist, and every token outside it gets
log-probability ``-inf``, so search, constraints and scores work on full-vocabulary ids
unchanged. This is an approximation: results can differ from the full vocabulary's wherever the
best hypothesis needs a token outside the shortlist (benchmarks/ and docs/decoding.md report how
much it changes BLEU). Build one with ``seq2seq shortlist RUN --src ... --tgt ...``; decode with
``--shortlist FILE``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .data.vocab import SPECIALS, Vocab

FORMAT = "seq2seq-shortlist"
VERSION = 1


def vocab_digest(vocab: Vocab) -> str:
    """A short fingerprint of a vocabulary's tokens in id order."""
    return hashlib.sha1("\n".join(vocab.itos).encode("utf-8")).hexdigest()[:16]


def ibm1_table(
    pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
    src_size: int,
    tgt_size: int,
    iterations: int = 5,
) -> tuple[Tensor, Tensor, Tensor]:
    """IBM Model 1 translation probabilities t(target | source) by EM over sentence pairs of ids,
    with a NULL source word (id ``src_size``). Returns the co-occurring (source, target) id pairs
    and their probabilities: three 1-D tensors; for each source id the probabilities sum to 1."""
    src_lens = torch.tensor([len(s) + 1 for s, _ in pairs], dtype=torch.long)  # + NULL
    tgt_lens = torch.tensor([len(t) for _, t in pairs], dtype=torch.long)
    null = src_size
    src_flat = torch.tensor([i for s, _ in pairs for i in (null, *s)], dtype=torch.long)
    tgt_flat = torch.tensor([i for _, t in pairs for i in t], dtype=torch.long)
    src_start = torch.cumsum(src_lens, 0) - src_lens
    # one group per target position; each holds one link to every source position of its pair
    group_len = src_lens.repeat_interleave(tgt_lens)  # (G,)
    group_src_start = src_start.repeat_interleave(tgt_lens)  # (G,)
    links = int(group_len.sum())
    group = torch.arange(group_len.numel()).repeat_interleave(group_len)  # (L,)
    link_start = torch.cumsum(group_len, 0) - group_len
    offset = torch.arange(links) - link_start.repeat_interleave(group_len)
    link_src = src_flat[group_src_start.repeat_interleave(group_len) + offset]
    link_tgt = tgt_flat.repeat_interleave(group_len)
    keys, pair = torch.unique(link_src * tgt_size + link_tgt, return_inverse=True)
    key_src, key_tgt = keys // tgt_size, keys % tgt_size
    prob = torch.full((keys.numel(),), 1.0 / tgt_size, dtype=torch.float64)
    for _ in range(iterations):
        q = prob[pair]
        norm = torch.zeros(group_len.numel(), dtype=torch.float64).index_add_(0, group, q)
        counts = torch.zeros_like(prob).index_add_(0, pair, q / norm[group])
        totals = torch.zeros(src_size + 1, dtype=torch.float64).index_add_(0, key_src, counts)
        prob = counts / totals[key_src]
    return key_src, key_tgt, prob.float()


@dataclass
class Shortlist:
    """``candidates``: (source vocabulary, width) target ids per source id, -1 where unused;
    ``frequent``: target ids always allowed (the specials are always added); the two digests
    tie the shortlist to the vocabularies it was built for."""

    candidates: Tensor
    frequent: Tensor
    src_digest: str
    tgt_digest: str
    tgt_size: int
    top: int

    @classmethod
    def build(
        cls,
        pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
        src_vocab: Vocab,
        tgt_vocab: Vocab,
        top: int = 20,
        frequent: int = 100,
        iterations: int = 5,
    ) -> Shortlist:
        """From training pairs of ids (as the model reads them): each source id keeps its ``top``
        most probable IBM Model 1 translations (below a probability of 1e-4 they are left out)
        and its namesake in the target vocabulary; the ``frequent`` most frequent target ids are
        always allowed."""
        if top < 1 or frequent < 0 or iterations < 1:
            raise ValueError(
                f"need top >= 1, frequent >= 0 and iterations >= 1, got {top}, {frequent}, "
                f"{iterations}"
            )
        if not pairs:
            raise ValueError("no sentence pairs to build a shortlist from")
        src_size, tgt_size = len(src_vocab), len(tgt_vocab)
        key_src, key_tgt, prob = ibm1_table(pairs, src_size, tgt_size, iterations)
        keep = (key_src < src_size) & (prob >= 1e-4)
        key_src, key_tgt, prob = key_src[keep], key_tgt[keep], prob[keep]
        # rank within each source id: sort by (source, -prob), then number the runs
        order = torch.argsort(key_src.double() * 4 - prob.double(), stable=True)
        key_src, key_tgt = key_src[order], key_tgt[order]
        first = torch.searchsorted(key_src, key_src, right=False)
        rank = torch.arange(key_src.numel()) - first
        sel = rank < top
        table = torch.full((src_size, top + 1), -1, dtype=torch.long)
        table[key_src[sel], rank[sel]] = key_tgt[sel]
        namesakes = [tgt_vocab.stoi.get(t, -1) for t in src_vocab.itos]
        table[:, top] = torch.tensor(namesakes, dtype=torch.long)
        tgt_ids = torch.tensor([i for _, t in pairs for i in t], dtype=torch.long)
        counts = torch.bincount(tgt_ids, minlength=tgt_size)
        counts[: len(SPECIALS)] = -1
        most = torch.argsort(counts, descending=True, stable=True)[:frequent]
        return cls(
            table,
            most[counts[most] > 0].sort().values,
            vocab_digest(src_vocab),
            vocab_digest(tgt_vocab),
            tgt_size,
            top,
        )

    def ids(self, src: Tensor) -> Tensor:
        """The sorted target ids allowed for a batch of source ids (any shape, padding
        included: the pad id's row lists only its namesake, the pad token)."""
        rows = self.candidates.index_select(0, src.reshape(-1).unique().cpu())
        cand = rows[rows >= 0]
        specials = torch.arange(len(SPECIALS), dtype=torch.long)
        return torch.cat([specials, self.frequent, cand]).unique().to(src.device)

    def check(self, src_vocab: Vocab, tgt_vocab: Vocab, source: str = "shortlist") -> None:
        """Raises if the shortlist was built for other vocabularies than the model's."""
        for side, digest, vocab in (
            ("source", self.src_digest, src_vocab),
            ("target", self.tgt_digest, tgt_vocab),
        ):
            if digest != vocab_digest(vocab):
                raise ValueError(
                    f"{source}: built for another {side} vocabulary than the model's (digest "
                    f"{digest}, the model's is {vocab_digest(vocab)}); build it again with "
                    "`seq2seq shortlist` for this run"
                )

    def save(self, path: str | Path) -> None:
        """Writes the shortlist (a torch file of plain tensors), atomically."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(
            {
                "format": FORMAT,
                "version": VERSION,
                "candidates": self.candidates,
                "frequent": self.frequent,
                "src_digest": self.src_digest,
                "tgt_digest": self.tgt_digest,
                "tgt_size": self.tgt_size,
                "top": self.top,
            },
            tmp,
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> Shortlist:
        path = Path(path)
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise ValueError(f"{path}: shortlist file not found") from None
        except Exception as e:  # noqa: BLE001 - unpickling errors of every kind
            raise ValueError(f"{path}: not a shortlist file ({type(e).__name__})") from None
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise ValueError(f"{path}: not a shortlist file (no '{FORMAT}' format marker)")
        if obj.get("version") != VERSION:
            raise ValueError(
                f"{path}: shortlist format version {obj.get('version')!r}, this seq2seq reads "
                f"version {VERSION}"
            )
        return cls(
            obj["candidates"],
            obj["frequent"],
            obj["src_digest"],
            obj["tgt_digest"],
            int(obj["tgt_size"]),
            int(obj["top"]),
        )

    def describe(self) -> str:
        per_source = (self.candidates >= 0).sum(1).float().mean()
        return (
            f"{self.frequent.numel()} frequent target tokens + up to {self.top} translations "
            f"per source token (mean {per_source:.1f} with namesakes) of {self.tgt_size}"
        )


def shortlist_log_probs(
    decode_features: Any, prev: Tensor, state: Any, weight: Tensor, bias: Tensor | None
) -> tuple[Tensor, Any]:
    """One decoder step over the output rows ``weight``/``bias`` of a shortlist: the
    log-softmax over those rows (B, len(weight)) and the new state."""
    hidden, state = decode_features(prev, state)
    return torch.log_softmax(F.linear(hidden.float(), weight, bias), dim=-1), state


def float_output_layer(layer: nn.Module) -> tuple[Tensor, Tensor | None]:
    """The weight (V, H) and bias (V,) of an output layer as float tensors: an ``nn.Linear``, an
    int8 :class:`~seq2seq.quantize.Int8Linear` (dequantized) or a dynamic-quantized Linear."""
    from .quantize import Int8Linear

    if isinstance(layer, nn.Linear):
        return layer.weight.detach().float(), (
            None if layer.bias is None else layer.bias.detach().float()
        )
    if isinstance(layer, Int8Linear):
        w = layer.weight_t.t().float() * layer.weight_scale[:, None]
        return w, layer.bias
    if callable(getattr(layer, "weight", None)):  # torch.ao dynamic-quantized Linear
        bias = layer.bias()
        return layer.weight().dequantize().float(), None if bias is None else bias.float()
    raise ValueError(f"cannot restrict an output layer of type {type(layer).__name__}")


class Restricted:
    """``model`` decoding over the target ids ``ids`` only (sorted, specials included): the
    decode contract, with ``decode_log_probs`` returning full-width (B, V) log-probabilities that
    are ``-inf`` outside ``ids``. Models with ``decode_features`` and an ``output_layer`` compute
    only the ``len(ids)`` output rows (through ``decode_shortlist_log_probs`` when compiled);
    others (ensembles) compute every logit and renormalise over ``ids``."""

    def __init__(
        self, model: Any, ids: Tensor, weight: Tensor | None, bias: Tensor | None, vocab: int
    ) -> None:
        self.model, self.ids, self.vocab = model, ids, vocab
        self.weight = None if weight is None else weight.index_select(0, ids).contiguous()
        self.bias = None if bias is None or weight is None else bias.index_select(0, ids)

    def encode(self, src: Tensor, src_mask: Tensor) -> Any:
        return self.model.encode(src, src_mask)

    def init_state(self, enc: Any) -> Any:
        return self.model.init_state(enc)

    def decode_log_probs(self, prev: Tensor, state: Any) -> tuple[Tensor, Any]:
        fused = getattr(self.model, "decode_shortlist_log_probs", None)
        if self.weight is not None and fused is not None:
            logp, state = fused(prev, state, self.weight, self.bias)
        elif self.weight is not None:
            logp, state = shortlist_log_probs(
                self.model.decode_features, prev, state, self.weight, self.bias
            )
        else:
            logits, state = self.model.decode_step(prev, state)
            logp = torch.log_softmax(logits.float().index_select(1, self.ids), dim=-1)
        full = logp.new_full((logp.size(0), self.vocab), -math.inf)
        return full.index_copy_(1, self.ids, logp), state

    def decode_step(self, prev: Tensor, state: Any) -> tuple[Tensor, Any]:
        return self.decode_log_probs(prev, state)  # log-probabilities are logits too


class Restrictor:
    """Binds a shortlist to a model once (the output layer in float), then restricts it per
    batch: ``restrictor(src)`` is the model over the batch's shortlist."""

    def __init__(self, model: Any, shortlist: Shortlist) -> None:
        self.model, self.shortlist = model, shortlist
        layer = getattr(model, "output_layer", None)
        self.weight, self.bias = (None, None)
        if layer is not None and hasattr(model, "decode_features"):
            self.weight, self.bias = float_output_layer(layer)
            if self.weight.size(0) != shortlist.tgt_size:
                raise ValueError(
                    f"the shortlist is for {shortlist.tgt_size} target tokens, the model's "
                    f"output layer has {self.weight.size(0)}"
                )

    def __call__(self, src: Tensor) -> Restricted:
        ids = self.shortlist.ids(src)
        return Restricted(self.model, ids, self.weight, self.bias, self.shortlist.tgt_size)
