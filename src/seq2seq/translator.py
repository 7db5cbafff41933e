"""Text in -> text out, for the command line, the Python API and validation during training."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from . import config as config_mod
from .build import build_model
from .data.batching import ParallelData, bucket_batches
from .data.tokenize import Tokenizer, tokenizer_from_state
from .data.vocab import EOS, UNK, Vocab
from .model import Seq2Seq
from .search import Hypothesis, beam_search, greedy, length_normalization, max_lengths
from .train.checkpoint import load_checkpoint, resolve_checkpoint

log = logging.getLogger(__name__)


def decode_batches(
    model: Seq2Seq,
    data: ParallelData,
    beam_size: int = 1,
    batch_size: int = 64,
    max_len_ratio: float = 2.0,
    max_len_offset: int = 10,
    n_best: int = 1,
    length_penalty: float = 1.0,
    return_attention: bool = False,
    device: torch.device | str = "cpu",
) -> Iterator[tuple[list[int], list[list[Hypothesis]]]]:
    """Decodes ``data`` in batches of similar length; yields (dataset indices, n-best lists)."""
    was_training = model.training
    model.eval()
    norm = length_normalization(length_penalty)
    try:
        for idx in bucket_batches(data.lengths(), batch_size=batch_size, shuffle=False):
            batch = data.batch(idx).to(device)
            limit = max_lengths(batch.src_mask, max_len_ratio, max_len_offset)
            if beam_size == 1:
                hyps = greedy(model, batch.src, batch.src_mask, limit, return_attention, norm)
                nbest = [[h] for h in hyps]
            else:
                nbest = beam_search(
                    model,
                    batch.src,
                    batch.src_mask,
                    limit,
                    beam_size,
                    n_best,
                    norm,
                    return_attention,
                )
            yield idx, nbest
    finally:
        model.train(was_training)


def decode_all(model: Seq2Seq, data: ParallelData, **kwargs) -> list[list[Hypothesis]]:
    """n-best lists for every example of ``data``, in the original order."""
    out: list[list[Hypothesis]] = [[] for _ in range(len(data))]
    for idx, nbest in decode_batches(model, data, **kwargs):
        for i, hyps in zip(idx, nbest):
            out[i] = hyps
    return out


class Translator:
    """A trained model with its tokenizers and vocabularies: ``translate(["..."]) -> ["..."]``."""

    def __init__(
        self,
        model: Seq2Seq,
        src_tokenizer: Tokenizer,
        tgt_tokenizer: Tokenizer,
        src_vocab: Vocab,
        tgt_vocab: Vocab,
        device: torch.device | str = "cpu",
    ) -> None:
        self.model = model.to(device).eval()
        self.src_tokenizer, self.tgt_tokenizer = src_tokenizer, tgt_tokenizer
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        self.device = device

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: torch.device | str = "cpu") -> Translator:
        """From a checkpoint file or a run directory (its best.pt, else last.pt)."""
        file = resolve_checkpoint(path)
        ckpt = load_checkpoint(file)
        cfg = config_mod.from_dict(ckpt["config"], source=f"{file} (stored config)")
        src_vocab, tgt_vocab = Vocab(ckpt["vocabs"]["src"]), Vocab(ckpt["vocabs"]["tgt"])
        model = build_model(cfg.model, len(src_vocab), len(tgt_vocab))
        model.load_state_dict(ckpt["model"])
        log.info("loaded %s (step %s)", file, ckpt.get("step"))
        return cls(
            model,
            tokenizer_from_state(ckpt["tokenizers"]["src"]),
            tokenizer_from_state(ckpt["tokenizers"]["tgt"]),
            src_vocab,
            tgt_vocab,
            device,
        )

    def encode_sources(self, sentences: list[str]) -> ParallelData:
        return ParallelData(
            [self.src_vocab.encode(self.src_tokenizer.encode(s)) for s in sentences]
        )

    def detokenize(self, ids: list[int]) -> str:
        return self.tgt_tokenizer.decode(self.tgt_vocab.decode(ids))

    def hypotheses(
        self,
        sentences: list[str],
        beam_size: int = 5,
        batch_size: int = 64,
        max_len_ratio: float = 2.0,
        n_best: int = 1,
        length_penalty: float = 1.0,
        return_attention: bool = False,
    ) -> list[list[Hypothesis]]:
        """n-best :class:`Hypothesis` lists (token ids, scores, attention) per input sentence."""
        if beam_size < 1 or batch_size < 1:
            raise ValueError(
                f"beam_size and batch_size must be >= 1, got {beam_size}, {batch_size}"
            )
        return decode_all(
            self.model,
            self.encode_sources(sentences),
            beam_size=beam_size,
            batch_size=batch_size,
            max_len_ratio=max_len_ratio,
            n_best=n_best,
            length_penalty=length_penalty,
            return_attention=return_attention,
            device=self.device,
        )

    def translate(
        self,
        sentences: list[str],
        beam_size: int = 5,
        batch_size: int = 64,
        max_len_ratio: float = 2.0,
    ) -> list[str]:
        """Best translation of each sentence, in input order."""
        nbest = self.hypotheses(sentences, beam_size, batch_size, max_len_ratio)
        return [self.detokenize(h[0].tokens) for h in nbest]

    def translate_with_attention(
        self,
        sentences: list[str],
        beam_size: int = 5,
        batch_size: int = 64,
        max_len_ratio: float = 2.0,
        replace_unk: bool = False,
    ) -> list[Translation]:
        """Best translation of each sentence with its tokens and attention weights; with
        ``replace_unk`` each ``<unk>`` output token becomes the source token it attends to most."""
        nbest = self.hypotheses(
            sentences,
            beam_size=beam_size,
            batch_size=batch_size,
            max_len_ratio=max_len_ratio,
            return_attention=True,
        )
        out = []
        for sentence, hyps in zip(sentences, nbest):
            src_tokens = self.src_tokenizer.encode(sentence)  # as written: unknown words survive
            tgt_tokens = self.tgt_vocab.decode(hyps[0].tokens)
            attention = hyps[0].attention  # (len(tgt_tokens) + 1, len(src_tokens) + 1)
            if replace_unk:
                tgt_tokens = replace_unknowns(tgt_tokens, src_tokens, attention)
            out.append(
                Translation(
                    source=sentence,
                    text=self.tgt_tokenizer.decode(tgt_tokens),
                    src_tokens=[*src_tokens, EOS],
                    tgt_tokens=[*tgt_tokens, EOS],
                    attention=attention,
                )
            )
        return out


@dataclass
class Translation:
    """One translated sentence and where its tokens looked.

    src_tokens: the source tokens and ``<eos>`` (columns of ``attention``); tgt_tokens: the output
    tokens and ``<eos>`` (rows); attention: (len(tgt_tokens), len(src_tokens)), rows sum to 1.
    """

    source: str
    text: str
    src_tokens: list[str]
    tgt_tokens: list[str]
    attention: Tensor

    def alignment(self) -> list[tuple[int, int]]:
        """Hard alignment, see :func:`hard_alignment`."""
        return hard_alignment(self.attention)

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "translation": self.text,
            "src_tokens": self.src_tokens,
            "tgt_tokens": self.tgt_tokens,
            "attention": [[round(float(w), 6) for w in row] for row in self.attention],
            "alignment": [f"{i}-{j}" for i, j in self.alignment()],
        }


def hard_alignment(attention: Tensor) -> list[tuple[int, int]]:
    """(source i, target j) pairs, 0-based: each output token j (``<eos>`` row excluded) is
    aligned to the source token i it attends to most (the source ``<eos>`` column excluded).

    attention: (T + 1, S + 1) with the ``<eos>`` row and column last. An empty source aligns
    nothing.
    """
    if attention.size(1) < 2 or attention.size(0) < 2:
        return []
    best = attention[:-1, :-1].argmax(dim=1).tolist()  # (T,)
    return [(i, j) for j, i in enumerate(best)]


def replace_unknowns(tgt_tokens: list[str], src_tokens: list[str], attention: Tensor) -> list[str]:
    """Each ``<unk>`` in ``tgt_tokens`` replaced by its most-attended source token, as in Jean et
    al. 2015, "On Using Very Large Target Vocabulary" (section 3.2), with the attention weights as
    the alignment (Luong et al. 2015, "Addressing the Rare Word Problem", used an external aligner).

    attention: (len(tgt_tokens) + 1, len(src_tokens) + 1), ``<eos>`` row and column last.
    """
    if not src_tokens:
        return list(tgt_tokens)
    source_of = dict((j, i) for i, j in hard_alignment(attention))
    return [src_tokens[source_of[j]] if t == UNK else t for j, t in enumerate(tgt_tokens)]


def load(path: str | Path, device: torch.device | str = "cpu") -> Translator:
    """``seq2seq.load("runs/dates").translate(["March 3, 2017"])``."""
    return Translator.from_checkpoint(path, device)
