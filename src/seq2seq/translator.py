"""Text in -> text out, for the command line, the Python API and validation during training."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from . import config as config_mod
from .build import build_model
from .compiled import compile_decoding
from .data.batching import ParallelData, bucket_batches
from .data.prepare import Vocabularies
from .data.tokenize import Tokenizer
from .data.vocab import EOS, UNK, Vocab
from .ensemble import Ensemble
from .processes import Origin, decode_in_processes, origin_of
from .quantize import quantize
from .search import Hypothesis, SearchOptions, force_decode, search
from .shortlist import Restrictor, Shortlist
from .train.checkpoint import load_checkpoint, resolve_checkpoint

log = logging.getLogger(__name__)


def batch_seeds(options: SearchOptions, batches: int) -> list[int | None]:
    """The random seed of each batch for seeded sampling (else None: torch's global generator).
    A generator seeded with ``options.seed`` draws them in batch order, so batch i samples the
    same way however many threads or processes decode the batches, and in whatever order."""
    if not (options.sample and options.seed is not None):
        return [None] * batches
    base = torch.Generator().manual_seed(options.seed)
    return torch.randint(0, 2**62, (batches,), generator=base).tolist()


def decode_batch(
    model: torch.nn.Module,
    data: ParallelData,
    indices: list[int],
    options: SearchOptions,
    return_attention: bool = False,
    device: torch.device | str = "cpu",
    restrict: Restrictor | None = None,
    seed: int | None = None,
) -> list[list[Hypothesis]]:
    """n-best lists of one batch (``indices`` into ``data``); ``seed``: see :func:`batch_seeds`."""
    batch = data.batch(indices).to(device)
    m = model if restrict is None else restrict(batch.src)
    generator = None if seed is None else torch.Generator(device=device).manual_seed(seed)
    return search(m, batch.src, batch.src_mask, options, return_attention, generator)


def decode_jobs(
    data: ParallelData, options: SearchOptions, batch_size: int
) -> list[tuple[list[int], int | None]]:
    """The batches that decoding makes of ``data`` (``batch_size`` examples of similar length),
    each with its seed (:func:`batch_seeds`), longest first: where several workers take them in
    turn, the last ones taken are short and the workers finish together."""
    batches = list(bucket_batches(data.lengths(), batch_size=batch_size, shuffle=False))
    return list(zip(batches, batch_seeds(options, len(batches))))[::-1]


def decode_all(
    model: torch.nn.Module,
    data: ParallelData,
    options: SearchOptions,
    batch_size: int = 64,
    return_attention: bool = False,
    device: torch.device | str = "cpu",
    progress: bool = False,
    restrict: Restrictor | None = None,
    workers: int = 1,
) -> list[list[Hypothesis]]:
    """n-best lists for every example of ``data``, in the original order, decoded in batches of
    similar length. ``restrict``: a vocabulary shortlist bound to ``model``
    (:mod:`seq2seq.shortlist`). ``workers`` > 1 decodes that many batches at once, each in its
    own thread, on the one model in memory; each worker's operators then run on torch's
    intra-op thread count as set when called (``--workers 2 --threads 1`` on two cores, like
    CTranslate2's ``inter_threads``). The results do not depend on ``workers``."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    jobs = decode_jobs(data, options, batch_size)
    threads = torch.get_num_threads()

    def decode(job: tuple[list[int], int | None]) -> tuple[list[int], list[list[Hypothesis]]]:
        if workers > 1:
            torch.set_num_threads(threads)  # OpenMP keeps the thread count per thread
        idx, seed = job
        return idx, decode_batch(
            model, data, idx, options, return_attention, device, restrict, seed
        )

    out: list[list[Hypothesis]] = [[] for _ in range(len(data))]
    bar = tqdm(total=len(data), unit="sent", desc="translate", disable=not progress)
    was_training = model.training
    model.eval()
    pool = ThreadPoolExecutor(workers, thread_name_prefix="decode") if workers > 1 else None
    try:
        results = map(decode, jobs) if pool is None else pool.map(decode, jobs)
        for idx, nbest in results:
            for i, hyps in zip(idx, nbest):
                out[i] = hyps
            bar.update(len(idx))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        model.train(was_training)
        bar.close()
    return out


class Translator:
    """A trained model (or an ensemble) with its tokenizers and vocabularies:
    ``translate(["..."]) -> ["..."]``."""

    def __init__(
        self,
        model: torch.nn.Module,
        src_tokenizer: Tokenizer,
        tgt_tokenizer: Tokenizer,
        src_vocab: Vocab,
        tgt_vocab: Vocab,
        device: torch.device | str = "cpu",
        src_truncate: int | None = None,
    ) -> None:
        self.model = model.to(device).eval()
        self.src_truncate = src_truncate  # the model's data.src_truncate: first N source tokens
        self.src_tokenizer, self.tgt_tokenizer = src_tokenizer, tgt_tokenizer
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        self.device = device
        self.restrict: Restrictor | None = None
        self.origin: Origin | None = None  # set by load(): how worker processes load it again

    def use_shortlist(self, shortlist: Shortlist | str | Path | None) -> None:
        """Decode over a vocabulary shortlist (a :class:`~seq2seq.shortlist.Shortlist` or its
        file, built for this model's vocabularies) from now on; None: the full vocabulary."""
        if self.origin is not None:
            self.origin = replace(self.origin, shortlist=shortlist)
        if shortlist is None:
            self.restrict = None
            return
        source = "shortlist"
        if not isinstance(shortlist, Shortlist):
            source, shortlist = str(shortlist), Shortlist.load(shortlist)
        shortlist.check(self.src_vocab, self.tgt_vocab, source)
        self.restrict = Restrictor(self.model, shortlist)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path | Sequence[str | Path],
        device: torch.device | str = "cpu",
        quantize_to: str | None = None,
        compile: bool = False,
    ) -> Translator:
        """From a checkpoint file or run directory (its best.pt, else last.pt), or several of
        them: an ensemble, which needs identical vocabularies and tokenizers. ``quantize_to``:
        ``"int8"`` for CPU dynamic quantization; ``compile``: encoder and decoder step through
        ``torch.compile`` with frozen weights (:func:`seq2seq.compiled.compile_decoding`)."""
        paths = [path] if isinstance(path, (str, Path)) else list(path)
        if not paths:
            raise ValueError("no checkpoint given")
        models, first = [], None
        for p in paths:
            file = resolve_checkpoint(p)
            ckpt = load_checkpoint(file)
            cfg = config_mod.from_dict(ckpt["config"], source=f"{file} (stored config)")
            model = build_model(cfg.model, len(ckpt["vocabs"]["src"]), len(ckpt["vocabs"]["tgt"]))
            model.load_state_dict(ckpt["model"])
            log.info("loaded %s (step %s)", file, ckpt.get("step"))
            if first is None:
                first = (file, ckpt["vocabs"], ckpt["tokenizers"])
            elif (ckpt["vocabs"], ckpt["tokenizers"]) != first[1:]:
                raise ValueError(
                    f"{file}: cannot ensemble with {first[0]}: their vocabularies or tokenizers "
                    "differ"
                )
            models.append(model.eval())
        model = models[0] if len(models) == 1 else Ensemble(models)
        if quantize_to is not None:
            model = quantize(model, quantize_to, compiled=compile)
        if compile:
            model = compile_decoding(model.to(device))
        _, vocabs, tokenizers = first
        v = Vocabularies.from_state({"vocabs": vocabs, "tokenizers": tokenizers})
        return cls(
            model,
            v.src_tokenizer,
            v.tgt_tokenizer,
            v.src_vocab,
            v.tgt_vocab,
            device,
            src_truncate=cfg.data.src_truncate,
        )

    def encode_sources(self, sentences: list[str]) -> ParallelData:
        return ParallelData([self.src_vocab.encode(self.source_tokens(s)) for s in sentences])

    def encode_pairs(self, sources: list[str], targets: list[str]) -> ParallelData:
        """Aligned source and target text as the model reads and writes it."""
        if len(sources) != len(targets):
            raise ValueError(f"{len(sources)} sources but {len(targets)} targets")
        tgt = [self.tgt_vocab.encode(self.tgt_tokenizer.encode(t)) for t in targets]
        return ParallelData(self.encode_sources(sources).src, tgt)

    def source_tokens(self, sentence: str) -> list[str]:
        """The tokens the model reads (truncated as in training)."""
        return self.src_tokenizer.encode(sentence)[: self.src_truncate]

    def build_shortlist(
        self,
        sources: list[str],
        targets: list[str],
        top: int = 20,
        frequent: int = 100,
        iterations: int = 5,
    ) -> Shortlist:
        """A vocabulary shortlist from aligned training text, tokenized as the model reads it."""
        data = self.encode_pairs(sources, targets)
        pairs = list(zip(data.src, data.tgt))
        return Shortlist.build(pairs, self.src_vocab, self.tgt_vocab, top, frequent, iterations)

    def detokenize(self, ids: list[int]) -> str:
        return self.tgt_tokenizer.decode(self.tgt_vocab.decode(ids))

    def hypotheses(
        self,
        sentences: list[str],
        options: SearchOptions | None = None,
        batch_size: int = 64,
        return_attention: bool = False,
        progress: bool = False,
        workers: int = 1,
        processes: int = 1,
    ) -> list[list[Hypothesis]]:
        """n-best :class:`Hypothesis` lists (token ids, scores, attention) per input sentence;
        ``workers``: batches decoded at once, each in its own thread (:func:`decode_all`);
        ``processes``: each in its own spawned process, which loads the model again (only for
        a translator from :func:`load`) and runs torch's current intra-op thread count
        (:mod:`seq2seq.processes`). The results depend on neither."""
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        if processes > 1:
            if workers > 1:
                raise ValueError(
                    f"decoding threads (workers={workers}) and processes ({processes}): choose one"
                )
            if self.origin is None:
                raise ValueError(
                    "processes > 1 needs a translator loaded from files (seq2seq.load), which "
                    "each process loads again"
                )
            return decode_in_processes(
                self.origin,
                self.encode_sources(sentences),
                options or SearchOptions(),
                batch_size,
                return_attention,
                processes,
                torch.get_num_threads(),
                progress,
            )
        return decode_all(
            self.model,
            self.encode_sources(sentences),
            options or SearchOptions(),
            batch_size,
            return_attention,
            self.device,
            progress,
            self.restrict,
            workers,
        )

    def translate(
        self,
        sentences: list[str],
        beam_size: int = 5,
        batch_size: int = 64,
        options: SearchOptions | None = None,
    ) -> list[str]:
        """Best translation of each sentence, in input order (``options`` overrides
        ``beam_size``)."""
        options = options or SearchOptions(beam_size=beam_size)
        return [
            self.detokenize(h[0].tokens) for h in self.hypotheses(sentences, options, batch_size)
        ]

    def with_attention(
        self, sentences: list[str], nbest: list[list[Hypothesis]], replace_unk: bool = False
    ) -> list[Translation]:
        """The best hypothesis of each sentence (searched with ``return_attention=True``) with
        its tokens and attention weights; with ``replace_unk`` each ``<unk>`` output token becomes
        the source token it attends to most."""
        out = []
        for sentence, hyps in zip(sentences, nbest):
            src_tokens = self.source_tokens(sentence)  # as written: unknown words survive
            tgt_tokens = self.tgt_vocab.decode(hyps[0].tokens)
            attention = hyps[0].attention  # (len(tgt_tokens) + 1, len(src_tokens) + 1)
            if attention is None:
                raise ValueError("hypotheses were searched without return_attention=True")
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

    def translate_with_attention(
        self,
        sentences: list[str],
        options: SearchOptions | None = None,
        batch_size: int = 64,
        replace_unk: bool = False,
    ) -> list[Translation]:
        """Best translation of each sentence with its tokens and attention weights."""
        nbest = self.hypotheses(sentences, options, batch_size, return_attention=True)
        return self.with_attention(sentences, nbest, replace_unk)

    @torch.inference_mode()
    def score(
        self, sources: list[str], targets: list[str], batch_size: int = 64
    ) -> list[tuple[float, int]]:
        """(log-probability, tokens incl. ``<eos>``) of each target given its source."""
        src = self.encode_pairs(sources, targets)
        tgt = src.tgt
        out: list[tuple[float, int]] = [(0.0, 0)] * len(sources)
        for idx in bucket_batches(src.lengths(), batch_size=batch_size, shuffle=False):
            b = src.batch(idx).to(self.device)
            lps = force_decode(self.model, b.src, b.src_mask, [tgt[i] for i in idx])
            for i, lp in zip(idx, lps):
                out[i] = (lp, len(tgt[i]) + 1)
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


def load(
    path: str | Path | Sequence[str | Path],
    device: torch.device | str = "cpu",
    quantize_to: str | None = None,
    compile: bool = False,
    shortlist: str | Path | None = None,
) -> Translator:
    """``seq2seq.load("runs/dates").translate(["March 3, 2017"])``; several paths: an ensemble;
    ``quantize_to="int8"``: CPU dynamic quantization; ``compile``: decoding through
    ``torch.compile`` (:mod:`seq2seq.compiled`); ``shortlist``: a vocabulary shortlist file
    (:mod:`seq2seq.shortlist`)."""
    translator = Translator.from_checkpoint(path, device, quantize_to, compile)
    translator.origin = origin_of(path, device, quantize_to, compile)
    translator.use_shortlist(shortlist)
    return translator
