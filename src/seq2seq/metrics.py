"""Evaluation metrics on detokenized text: sacreBLEU BLEU, chrF and TER (with their signatures),
exact match, word and character error rates (jiwer), ROUGE (Google's rouge-score, as used by the
summarization literature), and perplexity."""

from __future__ import annotations

import math

import jiwer
from sacrebleu.metrics import BLEU, CHRF, TER

HIGHER_IS_BETTER = {
    "bleu": True,
    "chrf": True,
    "exact_match": True,
    "ter": False,
    "wer": False,
    "cer": False,
    "loss": False,
    "ppl": False,
}


def _check(hyps: list[str], refs: list[str]) -> None:
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")


def _sacrebleu(metric: BLEU | CHRF | TER, hyps: list[str], refs: list[str]) -> tuple[float, str]:
    _check(hyps, refs)
    return metric.corpus_score(hyps, [refs]).score, str(metric.get_signature())


def bleu(hyps: list[str], refs: list[str]) -> tuple[float, str]:
    """Corpus BLEU (sacreBLEU defaults: 13a tokenization, cased) and its signature."""
    return _sacrebleu(BLEU(), hyps, refs)


def chrf(hyps: list[str], refs: list[str]) -> tuple[float, str]:
    """Corpus chrF (sacreBLEU defaults) and its signature."""
    return _sacrebleu(CHRF(), hyps, refs)


def ter(hyps: list[str], refs: list[str]) -> tuple[float, str]:
    """Corpus TER (sacreBLEU defaults; lower is better) and its signature."""
    return _sacrebleu(TER(), hyps, refs)


def exact_match(hyps: list[str], refs: list[str]) -> float:
    """Fraction of outputs equal to their reference, ignoring surrounding whitespace."""
    _check(hyps, refs)
    if not refs:
        return 0.0
    return sum(h.strip() == r.strip() for h, r in zip(hyps, refs)) / len(refs)


def wer(hyps: list[str], refs: list[str]) -> float:
    """Word error rate: word-level edit distance / reference words, over the corpus."""
    _check(hyps, refs)
    return float(jiwer.wer(refs, hyps)) if refs else 0.0


def cer(hyps: list[str], refs: list[str]) -> float:
    """Character error rate: character-level edit distance / reference characters."""
    _check(hyps, refs)
    return float(jiwer.cer(refs, hyps)) if refs else 0.0


ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def rouge(hyps: list[str], refs: list[list[str]]) -> dict[str, float]:
    """ROUGE-1/2/L F1 x 100 (rouge-score with Porter stemming), averaged over examples. ``refs``
    holds one or more reference sets, each aligned with ``hyps``; with several, each example
    takes its best-matching reference per ROUGE type (rouge-score's ``score_multi``)."""
    from rouge_score import rouge_scorer

    if not refs:
        raise ValueError("ROUGE needs at least one reference set")
    for r in refs:
        _check(hyps, r)
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for i, hyp in enumerate(hyps):
        scores = scorer.score_multi([r[i] for r in refs], hyp)
        for k in ROUGE_TYPES:
            totals[k] += scores[k].fmeasure
    return {k: 100 * v / max(1, len(hyps)) for k, v in totals.items()}


def perplexity(total_log_prob: float, num_tokens: int) -> float:
    """``exp(-total_log_prob / num_tokens)`` (natural log; tokens include ``<eos>``)."""
    return math.exp(-total_log_prob / num_tokens) if num_tokens else float("nan")


def evaluate(hyps: list[str], refs: list[str]) -> dict[str, float | str | int]:
    """All text metrics at once, with the sacreBLEU signatures."""
    b, b_sig = bleu(hyps, refs)
    c, c_sig = chrf(hyps, refs)
    t, t_sig = ter(hyps, refs)
    return {
        "bleu": b,
        "chrf": c,
        "ter": t,
        "exact_match": exact_match(hyps, refs),
        "wer": wer(hyps, refs),
        "cer": cer(hyps, refs),
        "bleu_signature": b_sig,
        "chrf_signature": c_sig,
        "ter_signature": t_sig,
        "sentences": len(refs),
    }


def score(name: str, hyps: list[str], refs: list[str]) -> float:
    """One metric by name; see ``HIGHER_IS_BETTER`` for its direction."""
    match name:
        case "bleu":
            return bleu(hyps, refs)[0]
        case "chrf":
            return chrf(hyps, refs)[0]
        case "ter":
            return ter(hyps, refs)[0]
        case "exact_match":
            return exact_match(hyps, refs)
        case "wer":
            return wer(hyps, refs)
        case "cer":
            return cer(hyps, refs)
    raise ValueError(f"unknown metric {name!r}")
