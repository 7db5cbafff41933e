"""From the ``data`` config to batches: read, tokenize (training the tokenizers), filter, index."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..config import DataConfig, SideConfig
from .batching import ParallelData
from .corpus import FilterReport, corpus_paths, filter_pairs, read_parallel
from .tokenize import Tokenizer, tokenizer_from_state, train_tokenizer
from .vocab import Vocab

log = logging.getLogger(__name__)


@dataclass
class Split:
    """A corpus split: raw text (for scoring), ids (for batching) and what was dropped."""

    src_text: list[str]
    tgt_text: list[str]
    data: ParallelData
    report: FilterReport


@dataclass
class PreparedData:
    src_tokenizer: Tokenizer
    tgt_tokenizer: Tokenizer
    src_vocab: Vocab
    tgt_vocab: Vocab
    train: Split
    dev: Split

    @property
    def vocabularies(self) -> Vocabularies:
        return Vocabularies(self.src_tokenizer, self.tgt_tokenizer, self.src_vocab, self.tgt_vocab)


def _tokenizer(side: SideConfig, texts: list[str], threads: int | None) -> Tokenizer:
    return train_tokenizer(
        side.tokenizer, texts, side.vocab_size, side.character_coverage, side.lowercase, threads
    )


def _split(
    cfg: DataConfig,
    prefix: str,
    src_tok: Tokenizer,
    tgt_tok: Tokenizer,
    max_len: int | None,
    pairs: list[tuple[str, str]] | None = None,
) -> tuple[Split, list[list[str]], list[list[str]]]:
    src_path, tgt_path = corpus_paths(prefix, cfg.src_suffix, cfg.tgt_suffix)
    if pairs is None:
        pairs = read_parallel(src_path, tgt_path)
    src_toks = [src_tok.encode(s) for s, _ in pairs]
    if cfg.src_truncate is not None:
        cut = sum(len(t) > cfg.src_truncate for t in src_toks)
        if cut:
            log.info(
                "%s.%s: %d of %d sources truncated to data.src_truncate=%d tokens",
                prefix,
                cfg.src_suffix,
                cut,
                len(src_toks),
                cfg.src_truncate,
            )
        src_toks = [t[: cfg.src_truncate] for t in src_toks]
    tgt_toks = [tgt_tok.encode(t) for _, t in pairs]
    keep, report = filter_pairs(
        list(zip(src_toks, tgt_toks)),
        src_path,
        tgt_path,
        drop_empty=cfg.drop_empty,
        max_len=max_len,
    )
    if report.dropped_empty or report.dropped_long:
        log.warning(
            "%s.{%s,%s}: %s (e.g. %s)",
            prefix,
            cfg.src_suffix,
            cfg.tgt_suffix,
            report.summary(),
            ", ".join(report.examples),
        )
    src_toks = [src_toks[i] for i in keep]
    tgt_toks = [tgt_toks[i] for i in keep]
    split = Split(
        [pairs[i][0] for i in keep], [pairs[i][1] for i in keep], ParallelData([], []), report
    )
    return split, src_toks, tgt_toks


@dataclass
class Vocabularies:
    """The tokenizers and vocabularies of both sides, as trained (or restored)."""

    src_tokenizer: Tokenizer
    tgt_tokenizer: Tokenizer
    src_vocab: Vocab
    tgt_vocab: Vocab

    def to_state(self) -> dict:
        """Plain data, as stored in checkpoints under ``tokenizers`` and ``vocabs``."""
        return {
            "tokenizers": {
                "src": self.src_tokenizer.to_state(),
                "tgt": self.tgt_tokenizer.to_state(),
            },
            "vocabs": {"src": self.src_vocab.itos, "tgt": self.tgt_vocab.itos},
        }

    @classmethod
    def from_state(cls, state: dict) -> Vocabularies:
        """From a checkpoint (or ``to_state()``): its ``tokenizers`` and ``vocabs`` entries."""
        return cls(
            tokenizer_from_state(state["tokenizers"]["src"]),
            tokenizer_from_state(state["tokenizers"]["tgt"]),
            Vocab(state["vocabs"]["src"]),
            Vocab(state["vocabs"]["tgt"]),
        )


def prepare_data(
    cfg: DataConfig, threads: int | None = None, given: Vocabularies | None = None
) -> PreparedData:
    """Reads train and dev, trains tokenizers and vocabularies on train (unless ``given``, e.g.
    restored from a checkpoint), and indexes both splits.

    Over-long pairs (``data.max_len``) are dropped from train only; dev is scored whole.
    """
    src_path, tgt_path = corpus_paths(cfg.train, cfg.src_suffix, cfg.tgt_suffix)
    pairs = read_parallel(src_path, tgt_path)
    if given is not None:
        src_tok, tgt_tok = given.src_tokenizer, given.tgt_tokenizer
    elif cfg.joint:
        src_tok = tgt_tok = _tokenizer(
            cfg.src, [s for s, _ in pairs] + [t for _, t in pairs], threads
        )
    else:
        src_tok = _tokenizer(cfg.src, [s for s, _ in pairs], threads)
        tgt_tok = _tokenizer(cfg.tgt, [t for _, t in pairs], threads)
    train, src_toks, tgt_toks = _split(cfg, cfg.train, src_tok, tgt_tok, cfg.max_len, pairs)
    if not train.src_text:
        raise ValueError(
            f"{src_path}: no training pairs left after filtering ({train.report.summary()})"
        )
    if given is not None:
        src_vocab, tgt_vocab = given.src_vocab, given.tgt_vocab
    elif cfg.joint:
        src_vocab = tgt_vocab = Vocab.build(src_toks + tgt_toks, cfg.src.min_freq, cfg.src.max_size)
    else:
        src_vocab = Vocab.build(src_toks, cfg.src.min_freq, cfg.src.max_size)
        tgt_vocab = Vocab.build(tgt_toks, cfg.tgt.min_freq, cfg.tgt.max_size)
    train.data = ParallelData(
        [src_vocab.encode(s) for s in src_toks], [tgt_vocab.encode(t) for t in tgt_toks]
    )
    dev, dsrc, dtgt = _split(cfg, cfg.dev, src_tok, tgt_tok, None)
    dev.data = ParallelData(
        [src_vocab.encode(s) for s in dsrc], [tgt_vocab.encode(t) for t in dtgt]
    )
    log.info(
        "train: %d pairs, dev: %d pairs; vocabularies: source %d, target %d",
        len(train.data),
        len(dev.data),
        len(src_vocab),
        len(tgt_vocab),
    )
    return PreparedData(src_tok, tgt_tok, src_vocab, tgt_vocab, train, dev)
