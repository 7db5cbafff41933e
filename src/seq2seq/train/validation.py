"""What a validation measures on the dev split: the teacher-forced loss and perplexity, the
decoded outputs and their metric, a few logged examples, and the attention of the first dev
sentence as a figure. The :class:`~.trainer.Trainer` keeps the bookkeeping around it (best value,
patience, schedule, checkpoints)."""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from .. import metrics
from ..data.batching import bucket_batches
from ..data.prepare import PreparedData, Split
from ..runtime import autocast
from ..search import SearchOptions
from ..translator import decode_all
from .loss import label_smoothed_nll

log = logging.getLogger(__name__)


@torch.inference_mode()
def dev_loss(
    model: torch.nn.Module,
    split: Split,
    label_smoothing: float,
    device: torch.device,
    precision: str = "float32",
) -> tuple[float, float]:
    """(mean label-smoothed loss per target token, perplexity) over ``split``, teacher forced.
    Leaves the model in training mode."""
    model.eval()
    total = nll = 0.0
    n = 0
    for idx in bucket_batches(split.data.lengths(), batch_size=64, shuffle=False):
        b = split.data.batch(idx).to(device)
        with autocast(precision, device):
            logits = model(b.src, b.src_mask, b.tgt_in)
        loss, nll_sum, k = label_smoothed_nll(logits, b.tgt_out, label_smoothing)
        total, nll, n = total + float(loss), nll + float(nll_sum), n + k
    model.train()
    return total / max(n, 1), math.exp(min(nll / max(n, 1), 50.0))


def dev_outputs(
    model: torch.nn.Module,
    data: PreparedData,
    beam_size: int,
    max_len_ratio: float,
    device: torch.device,
) -> list[str]:
    """The detokenized best hypothesis of every dev sentence."""
    options = SearchOptions(beam_size=beam_size, max_len_ratio=max_len_ratio)
    nbest = decode_all(model, data.dev.data, options, device=device)
    return [data.tgt_tokenizer.decode(data.tgt_vocab.decode(h[0].tokens)) for h in nbest]


def metric_value(name: str, hyps: list[str], refs: list[str], loss: float, ppl: float) -> float:
    """The validation metric: ``loss`` and ``ppl`` as given, any other from the outputs."""
    given = {"loss": loss, "ppl": ppl}
    return given[name] if name in given else metrics.score(name, hyps, refs)


def log_examples(split: Split, hyps: list[str], n: int = 3) -> list[dict[str, str]]:
    """Logs the first ``n`` (source, reference, output) triples and returns them."""
    examples = [
        {"src": split.src_text[i], "ref": split.tgt_text[i], "hyp": hyps[i]}
        for i in range(min(n, len(hyps)))
    ]
    for i, e in enumerate(examples, 1):
        log.info(
            "  example %d | source: %s | reference: %s | output: %s",
            i,
            e["src"],
            e["ref"],
            e["hyp"],
        )
    return examples


def attention_image(
    model: torch.nn.Module, data: PreparedData, device: torch.device, step: int
) -> Any:
    """The attention of the greedy output for the first dev sentence, as a matplotlib figure."""
    from ..plot import attention_figure

    nbest = decode_all(
        model,
        data.dev.data.subset([0]),
        SearchOptions(beam_size=1),
        return_attention=True,
        device=device,
    )
    hyp = nbest[0][0]
    src = [*data.src_vocab.decode(data.dev.data.src[0]), "<eos>"]
    tgt = [*data.tgt_vocab.decode(hyp.tokens), "<eos>"]
    return attention_figure(hyp.attention, src, tgt, title=f"step {step}")
