"""The training loop: teacher forcing, label smoothing, clipping, validation, best/last checkpoints.

A run directory holds ``config.yaml`` (resolved), the vocabularies, ``last.pt`` and ``best.pt``,
``train.log`` and ``metrics.jsonl`` (one JSON object per log or validation event).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm import tqdm

from .. import metrics
from ..build import build_model
from ..config import SCHEMA_VERSION, Config, to_dict
from ..data.batching import bucket_batches
from ..data.prepare import PreparedData, Split, prepare_data
from ..model import Seq2Seq
from ..translator import decode_all
from .checkpoint import save_checkpoint
from .loss import label_smoothed_nll
from .optim import build_optimizer, build_schedule

log = logging.getLogger(__name__)


class RunDirError(ValueError):
    """The run directory already holds a run that would be overwritten."""


@dataclass
class Progress:
    step: int = 0
    epoch: int = 0
    best: float | None = None
    best_step: int | None = None
    last_valid: dict[str, Any] = field(default_factory=dict)


def set_seed(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def checkpoint_payload(
    cfg: Config, data: PreparedData, model: Seq2Seq, progress: Progress
) -> dict[str, Any]:
    """Everything needed to translate: config, vocabularies, tokenizers, weights."""
    return {
        "schema_version": SCHEMA_VERSION,
        "config": to_dict(cfg),
        "model": model.state_dict(),
        "vocabs": {"src": data.src_vocab.itos, "tgt": data.tgt_vocab.itos},
        "tokenizers": {"src": data.src_tokenizer.to_state(), "tgt": data.tgt_tokenizer.to_state()},
        "step": progress.step,
        "epoch": progress.epoch,
        "best": progress.best,
        "valid": progress.last_valid,
    }


class Trainer:
    def __init__(
        self, cfg: Config, out_dir: str | Path, restart: bool = False, show_progress: bool = True
    ) -> None:
        self.cfg = cfg
        self.out = Path(out_dir)
        if (self.out / "last.pt").exists() and not restart:
            raise RunDirError(
                f"{self.out}: already holds a run (last.pt); pass --restart to start over in it, "
                "or choose another --out"
            )
        self.show_progress = show_progress
        t = cfg.train
        if t.threads is not None:
            torch.set_num_threads(t.threads)
        set_seed(t.seed)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        self.data = prepare_data(cfg.data, t.threads)
        self.data.src_vocab.save(self.out / "vocab.src.txt")
        self.data.tgt_vocab.save(self.out / "vocab.tgt.txt")
        self.model = build_model(cfg.model, len(self.data.src_vocab), len(self.data.tgt_vocab))
        self.optimizer = build_optimizer(t.optimizer, self.model.parameters())
        self.scheduler = build_schedule(t.schedule, self.optimizer)
        self.progress = Progress()
        n_params = sum(p.numel() for p in self.model.parameters())
        log.info("model: %s parameters", f"{n_params:,}")
        self._metrics_file = (self.out / "metrics.jsonl").open("w", encoding="utf-8")

    # -- events -----------------------------------------------------------------------------------

    def _record(self, kind: str, **values: Any) -> None:
        self._metrics_file.write(json.dumps({"kind": kind, **values}) + "\n")
        self._metrics_file.flush()

    def _save(self, name: str) -> None:
        save_checkpoint(
            checkpoint_payload(self.cfg, self.data, self.model, self.progress), self.out / name
        )

    # -- validation -------------------------------------------------------------------------------

    @torch.inference_mode()
    def dev_loss(self, split: Split) -> tuple[float, float]:
        """(mean label-smoothed loss, perplexity) over the split, teacher forced."""
        self.model.eval()
        total = nll = 0.0
        n = 0
        for idx in bucket_batches(split.data.lengths(), batch_size=64, shuffle=False):
            b = split.data.batch(idx)
            logits = self.model(b.src, b.src_mask, b.tgt_in)
            loss, nll_sum, k = label_smoothed_nll(logits, b.tgt_out, self.cfg.train.label_smoothing)
            total, nll, n = total + float(loss), nll + float(nll_sum), n + k
        self.model.train()
        return total / max(n, 1), math.exp(min(nll / max(n, 1), 50.0))

    def validate(self) -> dict[str, Any]:
        t = self.cfg.train
        dev = self.data.dev
        start = time.perf_counter()
        loss, ppl = self.dev_loss(dev)
        nbest = decode_all(
            self.model, dev.data, beam_size=t.valid_beam_size, max_len_ratio=t.valid_max_len_ratio
        )
        tgt_tok, tgt_vocab = self.data.tgt_tokenizer, self.data.tgt_vocab
        hyps = [tgt_tok.decode(tgt_vocab.decode(h[0].tokens)) for h in nbest]
        value = metrics.score(t.metric, hyps, dev.tgt_text)
        result = {
            "step": self.progress.step,
            "loss": loss,
            "ppl": ppl,
            t.metric: value,
            "seconds": time.perf_counter() - start,
        }
        improved = self.progress.best is None or value > self.progress.best
        if improved:
            self.progress.best, self.progress.best_step = value, self.progress.step
        self.progress.last_valid = result
        log.info(
            "validation at step %d: loss %.4f, ppl %.3f, %s %.4f%s",
            self.progress.step,
            loss,
            ppl,
            t.metric,
            value,
            " (new best)" if improved else "",
        )
        for i in range(min(3, len(hyps))):
            log.info(
                "  example %d | source: %s | reference: %s | output: %s",
                i + 1,
                dev.src_text[i],
                dev.tgt_text[i],
                hyps[i],
            )
        self._record(
            "valid",
            **result,
            examples=[
                {"src": dev.src_text[i], "ref": dev.tgt_text[i], "hyp": hyps[i]}
                for i in range(min(3, len(hyps)))
            ],
        )
        self._save("last.pt")
        if improved:
            self._save("best.pt")
        return result

    # -- training ---------------------------------------------------------------------------------

    def train_step(self, batch) -> tuple[float, int]:
        t = self.cfg.train
        logits = self.model(batch.src, batch.src_mask, batch.tgt_in)
        loss, _, n = label_smoothed_nll(logits, batch.tgt_out, t.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        (loss / n).backward()
        if t.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.clip_norm)
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.detach()) / n, n

    def run(self) -> dict[str, Any]:
        t = self.cfg.train
        p = self.progress
        start = time.monotonic()
        deadline = start + t.max_minutes * 60 if t.max_minutes else None
        bar = tqdm(
            total=t.max_steps,
            disable=not self.show_progress,
            unit="step",
            dynamic_ncols=True,
            desc="train",
        )
        window_loss, window_tokens, window_start = 0.0, 0, time.monotonic()
        validated_at = -1
        stop_reason = ""
        self.model.train()
        while not stop_reason:
            batches = bucket_batches(
                self.data.train.data.lengths(),
                batch_tokens=t.batch_tokens,
                batch_size=t.batch_size,
                seed=t.seed + p.epoch,
            )
            for idx in batches:
                loss, n = self.train_step(self.data.train.data.batch(idx))
                p.step += 1
                bar.update(1)
                window_loss += loss * n
                window_tokens += n
                if p.step % t.log_every == 0:
                    elapsed = time.monotonic() - window_start
                    mean = window_loss / window_tokens
                    tok_s = window_tokens / max(elapsed, 1e-9)
                    post = {"loss": f"{mean:.3f}", "tok/s": f"{tok_s:,.0f}"}
                    if deadline is not None:
                        post["left"] = f"{max(0.0, deadline - time.monotonic()) / 60:.1f}min"
                    bar.set_postfix(post, refresh=False)
                    log.debug("step %d: loss %.4f, %.0f target tokens/s", p.step, mean, tok_s)
                    self._record(
                        "train",
                        step=p.step,
                        epoch=p.epoch,
                        loss=mean,
                        tok_s=tok_s,
                        lr=self.optimizer.param_groups[0]["lr"],
                        elapsed=time.monotonic() - start,
                    )
                    window_loss, window_tokens, window_start = 0.0, 0, time.monotonic()
                if p.step % t.validate_every == 0:
                    bar.clear()
                    self.validate()
                    validated_at = p.step
                if t.max_steps is not None and p.step >= t.max_steps:
                    stop_reason = f"reached train.max_steps={t.max_steps}"
                elif deadline is not None and time.monotonic() >= deadline:
                    stop_reason = f"reached train.max_minutes={t.max_minutes}"
                if stop_reason:
                    break
            else:
                p.epoch += 1
                if t.max_epochs is not None and p.epoch >= t.max_epochs:
                    stop_reason = f"reached train.max_epochs={t.max_epochs}"
        bar.close()
        log.info(
            "training stopped: %s (step %d, epoch %d, %.1f min)",
            stop_reason,
            p.step,
            p.epoch,
            (time.monotonic() - start) / 60,
        )
        if validated_at != p.step:
            self.validate()
        self._metrics_file.close()
        return {
            "best": p.best,
            "best_step": p.best_step,
            "metric": t.metric,
            "step": p.step,
            "last": p.last_valid,
            "minutes": (time.monotonic() - start) / 60,
        }
