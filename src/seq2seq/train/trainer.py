"""The training loop: teacher forcing, label smoothing, accumulation, clipping, schedules,
validation with early stopping, checkpoints, exact resume, and DDP.

A run directory holds ``config.yaml`` (resolved), the vocabularies, ``last.pt`` (everything needed
to resume: model, optimizer, schedule, grad scaler, every RNG state and the position in the data),
``best.pt``, numbered ``ckpt-STEP.pt`` / ``best-STEP.pt`` files, ``train.log`` and
``metrics.jsonl`` (one JSON object per log or validation event).

Running the same command again resumes from ``last.pt``: the run continues exactly as if it had
never stopped (on CPU with the same thread count, bitwise).
"""

from __future__ import annotations

import json
import logging
import math
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm import tqdm

from .. import metrics
from ..build import build_model
from ..config import SCHEMA_VERSION, Config, to_dict
from ..data.batching import Batch, bucket_batches
from ..data.prepare import PreparedData, Vocabularies, prepare_data
from ..runtime import auto_precision_note, resolve_precision
from . import distributed, validation
from .checkpoint import load_checkpoint, numbered, rng_state, save_checkpoint, set_rng_state
from .rundir import check_resumable, clean, trim_metrics
from .step import TrainingError, Updater

log = logging.getLogger(__name__)


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived; a checkpoint was saved."""


@dataclass
class Progress:
    step: int = 0  # updates done
    epoch: int = 0
    batch_in_epoch: int = 0  # updates done in the current epoch (position in the data)
    best: float | None = None
    best_step: int | None = None
    bad_validations: int = 0  # since the last improvement (early stopping)
    bad_steps: int = 0  # consecutive non-finite losses
    seconds: float = 0.0  # wall time so far, setup included, across resumes (train.max_minutes)
    top: list | None = None  # [(metric, step)] of the kept best checkpoints
    window_loss: float = 0.0  # loss x tokens since the last log record (resumed with the run,
    window_tokens: int = 0  # so logged means cover the same steps as in an unbroken run)


def set_seed(seed: int) -> None:
    import random

    random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    def __init__(
        self,
        cfg: Config,
        out_dir: str | Path,
        restart: bool = False,
        show_progress: bool = True,
        started: float | None = None,
    ) -> None:
        """``started``: the ``time.monotonic()`` at which the command began (default: now); the
        wall time from there counts toward ``train.max_minutes``, setup such as training the
        tokenizers included."""
        self._started = time.monotonic() if started is None else started
        self._update_seconds = 0.0  # mean wall time of an update in this process
        self._end_seconds = 0.0  # the longest validation with its checkpoints in this process
        self._origin: float | None = None  # time.monotonic() - progress.seconds, in the loop
        t = cfg.train
        self.cfg, self.out = cfg, Path(out_dir)
        self.ctx = distributed.setup(t.device)
        if t.threads is not None:  # before the precision: auto times products on these threads
            torch.set_num_threads(t.threads)
        self.main = self.ctx.is_main
        self.show_progress = show_progress and self.main
        self.higher = metrics.HIGHER_IS_BETTER[t.metric]
        resume = (self.out / "last.pt").exists() and not restart
        ckpt = load_checkpoint(self.out / "last.pt") if resume else None
        if ckpt is not None:
            check_resumable(self.out, ckpt, cfg)
        # before any data work; every rank trains in rank 0's precision, since auto measures; a
        # resumed auto run keeps the one it started in (saved by payload)
        started = ckpt["train_state"].get("precision") if ckpt is not None else None
        self.precision = distributed.broadcast(
            resolve_precision(t.precision, self.ctx.device, started), self.ctx
        )
        if ckpt is None and self.main:
            clean(self.out)
        set_seed(t.seed + self.ctx.rank)
        given = Vocabularies.from_state(ckpt) if ckpt else None
        if given is None and self.ctx.distributed:  # rank 0 trains the tokenizers, others receive
            self.data = self._prepare_shared(cfg)
        else:
            self.data = prepare_data(cfg.data, t.threads, given)
        self.model = build_model(cfg.model, len(self.data.src_vocab), len(self.data.tgt_vocab))
        self.model.to(self.ctx.device)
        self.updater = Updater(self.model, t, self.precision, self.ctx.device, self.higher)
        self.progress = Progress(top=[])
        if ckpt is not None:
            self._restore(ckpt)
        if self.ctx.distributed:
            self.updater.ddp = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.ctx.device] if self.ctx.device.type == "cuda" else None
            )
        self._signal: int | None = None
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
            self.data.src_vocab.save(self.out / "vocab.src.txt")
            self.data.tgt_vocab.save(self.out / "vocab.tgt.txt")
            trim_metrics(self.out / "metrics.jsonl", self.progress.step if ckpt else 0)
        self.tensorboard = None
        if self.main and t.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events a killed run wrote after its last checkpoint
            self.tensorboard = SummaryWriter(
                self.out / "tensorboard", purge_step=self.progress.step + 1 if ckpt else None
            )
        n_params = sum(p.numel() for p in self.model.parameters())
        log.info(
            "model: %s parameters on %s%s, precision %s%s",
            f"{n_params:,}",
            self.ctx.device,
            f", {self.ctx.world_size} processes" if self.ctx.distributed else "",
            self.precision,
            ""
            if t.precision != "auto"
            else " (auto, as the run started)"
            if started == self.precision
            else auto_precision_note(self.ctx.device),
        )

    # -- run directory and resume -----------------------------------------------------------------

    def _prepare_shared(self, cfg: Config) -> PreparedData:
        """Rank 0 trains the tokenizers and vocabularies and sends them to the other ranks."""
        data = prepare_data(cfg.data, cfg.train.threads) if self.main else None
        state = distributed.broadcast(data.vocabularies.to_state() if data else None, self.ctx)
        if data is None:
            data = prepare_data(cfg.data, cfg.train.threads, Vocabularies.from_state(state))
        return data

    def _restore(self, ckpt: dict[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        ts = ckpt["train_state"]
        self.updater.load_state_dict(ts)
        self.progress = Progress(**ts["progress"])
        set_rng_state(ts["rng"])

    # -- records and checkpoints ------------------------------------------------------------------

    def _record(self, kind: str, **values: Any) -> None:
        """A line in metrics.jsonl and, with train.tensorboard, scalars ``KIND/NAME``."""
        if not self.main:
            return
        with (self.out / "metrics.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps({"kind": kind, **values}) + "\n")
        if self.tensorboard is not None:
            for name, value in values.items():
                if name != "step" and isinstance(value, (int, float)):
                    self.tensorboard.add_scalar(f"{kind}/{name}", value, values["step"])
            self.tensorboard.flush()

    def payload(self, with_train_state: bool) -> dict[str, Any]:
        d, p = self.data, self.progress
        out: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "config": to_dict(self.cfg),
            "model": self.model.state_dict(),
            **d.vocabularies.to_state(),
            "step": p.step,
            "best": p.best,
        }
        if with_train_state:
            out["train_state"] = {
                **self.updater.state_dict(),
                "rng": rng_state(),
                "progress": asdict(p),
                "precision": self.precision,
            }
        return out

    def checkpoint(self) -> None:
        """last.pt (for resuming) and the numbered ckpt-STEP.pt kept for averaging."""
        if not self.main:
            return
        self._tick()  # the validation before it counts
        save_checkpoint(self.payload(True), self.out / "last.pt")
        keep = self.cfg.train.keep_last
        if keep:
            save_checkpoint(self.payload(False), self.out / f"ckpt-{self.progress.step}.pt")
            for _, old in numbered(self.out, "ckpt")[:-keep]:
                old.unlink()

    def _keep_best(self, value: float) -> None:
        p, k = self.progress, self.cfg.train.keep_best
        top = sorted(
            [*map(tuple, p.top), (value, p.step)],
            key=lambda vs: (-vs[0] if self.higher else vs[0], vs[1]),
        )
        p.top = [list(vs) for vs in top[:k]]
        if [value, p.step] in p.top:
            save_checkpoint(self.payload(False), self.out / f"best-{p.step}.pt")
        kept = {s for _, s in p.top}
        for step, path in numbered(self.out, "best"):
            if step not in kept:
                path.unlink()

    # -- validation -------------------------------------------------------------------------------

    def validate(self) -> dict[str, Any]:
        """Rank 0: dev loss, perplexity and the decoded metric; best/last checkpoints."""
        t, p, dev, device = self.cfg.train, self.progress, self.data.dev, self.ctx.device
        start = time.perf_counter()
        loss, ppl = validation.dev_loss(self.model, dev, t.label_smoothing, device, self.precision)
        hyps = validation.dev_outputs(
            self.model, self.data, t.valid_beam_size, t.valid_max_len_ratio, device
        )
        value = validation.metric_value(t.metric, hyps, dev.tgt_text, loss, ppl)
        result = {
            "step": p.step,
            "loss": loss,
            "ppl": ppl,
            t.metric: value,
            "lr": self.updater.lr,
            "seconds": time.perf_counter() - start,
        }
        improved = p.best is None or (value > p.best if self.higher else value < p.best)
        if improved:
            p.best, p.best_step, p.bad_validations = value, p.step, 0
        else:
            p.bad_validations += 1
        log.info(
            "validation at step %d: loss %.4f, ppl %.3f, %s %.4f%s",
            p.step,
            loss,
            ppl,
            t.metric,
            value,
            " (new best)" if improved else "",
        )
        self._record("valid", **result, examples=validation.log_examples(dev, hyps))
        if self.tensorboard is not None and len(dev.data):
            figure = validation.attention_image(self.model, self.data, device, p.step)
            self.tensorboard.add_figure("valid/attention", figure, p.step)
        self.updater.schedule.after_validation(value)
        self._keep_best(value)
        if improved:
            save_checkpoint(self.payload(False), self.out / "best.pt")
        self.checkpoint()
        return result

    # -- training ---------------------------------------------------------------------------------

    def update(self, batches: list[Batch]) -> tuple[float, int]:
        """One optimizer step over ``batches`` (:class:`~.step.Updater`): (mean loss, tokens).
        A non-finite loss skips its update; ``train.max_bad_steps`` of them in a row stop the run."""
        loss, tokens = self.updater(batches)
        p, limit = self.progress, self.cfg.train.max_bad_steps
        p.bad_steps = 0 if math.isfinite(loss) else p.bad_steps + 1
        if p.bad_steps:
            log.warning(
                "step %d: non-finite loss (%s), update skipped (%d in a row)",
                p.step + 1,
                loss,
                p.bad_steps,
            )
            if p.bad_steps >= limit:
                raise TrainingError(
                    f"{p.bad_steps} non-finite losses in a row (train.max_bad_steps={limit}); "
                    "lower train.optimizer.lr or set train.clip_norm"
                )
        return loss, tokens

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signal = signum

    def run(self) -> dict[str, Any]:
        handlers = {}
        try:
            for s in (signal.SIGINT, signal.SIGTERM):
                handlers[s] = signal.signal(s, self._on_signal)
        except ValueError:  # not the main thread: leave signals alone
            pass
        finished = False
        try:
            result = self._loop()
            finished = True
            return result
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)
            if self.tensorboard is not None:
                self.tensorboard.close()
            distributed.teardown(self.ctx, finished)

    def _loop(self) -> dict[str, Any]:
        t, p = self.cfg.train, self.progress
        lengths = self.data.train.data.lengths()
        self._origin = self._started - p.seconds  # this command's setup counts, and earlier ones
        self._tick()
        updates, update_seconds = 0, 0.0
        bar = tqdm(
            total=t.max_steps,
            initial=p.step,
            disable=not self.show_progress,
            unit="step",
            dynamic_ncols=True,
            desc="train",
        )
        window_start = time.monotonic()
        validated_at, stop = p.step if p.step else -1, self._stop_reason()  # resumed and done?
        self.model.train()
        while not stop:
            batches = distributed.shard(
                bucket_batches(
                    lengths,
                    batch_tokens=t.batch_tokens,
                    batch_size=t.batch_size,
                    seed=t.seed + p.epoch,
                ),
                self.ctx,
            )
            groups = [batches[i : i + t.accumulate] for i in range(0, len(batches), t.accumulate)]
            while p.batch_in_epoch < len(groups) and not stop:
                begun = time.monotonic()
                loss, n = self.update(
                    [self.data.train.data.batch(i) for i in groups[p.batch_in_epoch]]
                )
                updates, update_seconds = updates + 1, update_seconds + time.monotonic() - begun
                self._update_seconds = update_seconds / updates
                p.step += 1
                p.batch_in_epoch += 1
                self._tick()
                bar.update(1)
                if math.isfinite(loss):
                    p.window_loss += loss * n
                    p.window_tokens += n
                if p.step % t.log_every == 0 and p.window_tokens:
                    self._log_window(time.monotonic() - window_start, bar)
                    window_start = time.monotonic()
                if p.step % t.validate_every == 0:
                    bar.clear()
                    if self.main:
                        begun = time.monotonic()
                        self.validate()
                        self._end_seconds = max(self._end_seconds, time.monotonic() - begun)
                    validated_at = p.step
                elif t.checkpoint_every and p.step % t.checkpoint_every == 0:
                    self.checkpoint()
                stop = self._stop_reason()
            if p.batch_in_epoch >= len(groups):
                p.epoch += 1
                p.batch_in_epoch = 0
                if not stop and t.max_epochs is not None and p.epoch >= t.max_epochs:
                    stop = f"reached train.max_epochs={t.max_epochs}"
        bar.close()
        if stop.startswith("signal"):
            if self.main:
                self.checkpoint()
            log.warning(
                "%s at step %d: checkpoint saved in %s; run the same command to resume",
                stop,
                p.step,
                self.out / "last.pt",
            )
            raise Interrupted(stop)
        log.info(
            "training stopped: %s (step %d, epoch %d, %.1f min)",
            stop,
            p.step,
            p.epoch,
            p.seconds / 60,
        )
        if validated_at != p.step and self.main:
            self.validate()
        return {
            "best": p.best,
            "best_step": p.best_step,
            "metric": t.metric,
            "step": p.step,
            "stopped": stop,
            "minutes": p.seconds / 60,
        }

    def _tick(self) -> None:
        """``progress.seconds``: the wall time so far, this command's and earlier ones'."""
        if self._origin is not None:
            self.progress.seconds = time.monotonic() - self._origin

    def _log_window(self, seconds: float, bar: tqdm) -> None:
        p = self.progress
        mean = p.window_loss / p.window_tokens
        tok_s = p.window_tokens * self.ctx.world_size / max(seconds, 1e-9)
        lr = self.updater.lr
        post = {"loss": f"{mean:.3f}", "lr": f"{lr:.2e}", "tok/s": f"{tok_s:,.0f}"}
        if self.cfg.train.max_minutes:
            post["left"] = f"{max(0.0, self.cfg.train.max_minutes - p.seconds / 60):.1f}min"
        bar.set_postfix(post, refresh=False)
        self._record(
            "train", step=p.step, epoch=p.epoch, loss=mean, lr=lr, tok_s=tok_s, elapsed=p.seconds
        )
        p.window_loss, p.window_tokens = 0.0, 0

    def _stop_reason(self) -> str:
        t, p = self.cfg.train, self.progress
        flags = distributed.any_rank(
            [
                self._signal is not None,
                t.max_steps is not None and p.step >= t.max_steps,
                # the next update and the final validation must end within the budget
                t.max_minutes is not None
                and p.seconds + self._update_seconds + self._end_seconds >= t.max_minutes * 60,
                t.patience is not None and p.bad_validations >= t.patience,
            ],
            self.ctx,
        )
        reasons = [
            f"signal {signal.Signals(self._signal).name if self._signal else 'received'}",
            f"reached train.max_steps={t.max_steps}",
            f"reached train.max_minutes={t.max_minutes}",
            f"no improvement of {t.metric} in {t.patience} validations (train.patience)",
        ]
        return next((r for r, f in zip(reasons, flags) if f), "")
