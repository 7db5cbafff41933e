"""Evaluation metrics on detokenized text: sacreBLEU BLEU and chrF (with signatures), exact match."""

from __future__ import annotations

from sacrebleu.metrics import BLEU, CHRF

HIGHER_IS_BETTER = {"bleu": True, "chrf": True, "exact_match": True}


def _check(hyps: list[str], refs: list[str]) -> None:
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")


def bleu(hyps: list[str], refs: list[str]) -> tuple[float, str]:
    """Corpus BLEU (sacreBLEU defaults: 13a tokenization, cased) and its signature."""
    _check(hyps, refs)
    metric = BLEU()
    return metric.corpus_score(hyps, [refs]).score, str(metric.get_signature())


def chrf(hyps: list[str], refs: list[str]) -> tuple[float, str]:
    """Corpus chrF (sacreBLEU defaults) and its signature."""
    _check(hyps, refs)
    metric = CHRF()
    return metric.corpus_score(hyps, [refs]).score, str(metric.get_signature())


def exact_match(hyps: list[str], refs: list[str]) -> float:
    """Fraction of outputs equal to their reference, ignoring surrounding whitespace."""
    _check(hyps, refs)
    if not refs:
        return 0.0
    return sum(h.strip() == r.strip() for h, r in zip(hyps, refs)) / len(refs)


def evaluate(hyps: list[str], refs: list[str]) -> dict[str, float | str]:
    """All metrics at once: bleu, chrf, exact_match and the two sacreBLEU signatures."""
    b, b_sig = bleu(hyps, refs)
    c, c_sig = chrf(hyps, refs)
    return {
        "bleu": b,
        "chrf": c,
        "exact_match": exact_match(hyps, refs),
        "bleu_signature": b_sig,
        "chrf_signature": c_sig,
        "sentences": len(refs),
    }


def score(name: str, hyps: list[str], refs: list[str]) -> float:
    """One metric by name (bleu | chrf | exact_match); higher is better for all of them."""
    match name:
        case "bleu":
            return bleu(hyps, refs)[0]
        case "chrf":
            return chrf(hyps, refs)[0]
        case "exact_match":
            return exact_match(hyps, refs)
    raise ValueError(f"unknown metric {name!r}")
