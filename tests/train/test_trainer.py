"""Trainer behaviour in-process on a tiny corpus: accumulation, guards, early stopping, keeping."""

import logging
import math
from pathlib import Path

import pytest
import torch

from seq2seq import config
from seq2seq.cli import main
from seq2seq.train import step as step_mod
from seq2seq.train.trainer import Trainer, TrainingError

from ..conftest import write_corpus

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def make(tmp_path: Path, *overrides: str, started: float | None = None) -> Trainer:
    pairs = [
        ("abcd"[: 1 + i % 4] + "xyz"[i % 3], ("abcd"[: 1 + i % 4] + "xyz"[i % 3])[::-1])
        for i in range(40)
    ]
    prefix = write_corpus(tmp_path / "data", "train", pairs)
    cfg = config.load(
        CONFIGS / "reverse_rnn.yaml",
        [
            f"data.train={prefix}",
            f"data.dev={prefix}",
            "train.max_steps=4",
            "train.max_minutes=null",
            "train.validate_every=2",
            "train.log_every=1",
            "model.encoder.hidden_size=8",
            "model.decoder.hidden_size=12",
            "model.encoder.dropout=0",
            "model.decoder.dropout=0",
            "train.threads=1",
            *overrides,
        ],
    )
    return Trainer(cfg, tmp_path / "run", show_progress=False, started=started)


def test_accumulating_two_batches_equals_one_batch_of_both(tmp_path):
    sgd = [
        "train.optimizer.kind=sgd",
        "train.optimizer.lr=0.5",
        "train.clip_norm=null",
        "train.label_smoothing=0.1",
    ]
    a = make(tmp_path / "a", *sgd)
    b = make(tmp_path / "b", *sgd)
    b.model.load_state_dict(a.model.state_dict())
    data = a.data.train.data
    first, second = list(range(0, 7)), list(range(7, 16))
    loss_a, n_a = a.update([data.batch(first), data.batch(second)])
    loss_b, n_b = b.update([data.batch(first + second)])
    assert n_a == n_b
    assert loss_a == pytest.approx(loss_b, rel=1e-5)
    for (name, pa), pb in zip(a.model.named_parameters(), b.model.parameters()):
        torch.testing.assert_close(pa, pb, atol=1e-6, rtol=1e-5, msg=name)
    fresh = make(tmp_path / "c", *sgd)  # same seed: the initial parameters
    moved = [not torch.equal(p, q) for p, q in zip(a.model.parameters(), fresh.model.parameters())]
    assert any(moved)


def test_non_finite_losses_skip_updates_then_stop(tmp_path, monkeypatch):
    t = make(tmp_path, "train.max_bad_steps=3")
    before = [p.detach().clone() for p in t.model.parameters()]

    def nan_loss(hidden, output, target, smoothing):
        loss = hidden.sum() * float("nan")
        return loss, loss.detach(), 1

    monkeypatch.setattr(step_mod, "output_layer_nll", nan_loss)
    batch = [t.data.train.data.batch([0, 1])]
    for _ in range(2):
        loss, _ = t.update(batch)
        assert math.isnan(loss)
    assert all(torch.equal(p, q) for p, q in zip(before, t.model.parameters()))
    with pytest.raises(
        TrainingError, match=r"3 non-finite losses in a row \(train.max_bad_steps=3\)"
    ):
        t.update(batch)


def test_out_of_memory_names_the_batch(tmp_path, monkeypatch):
    t = make(tmp_path)

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(t.model, "forward", oom)
    with pytest.raises(
        TrainingError,
        match=r"out of memory on a batch of 2 sentences x .* lower "
        r"train.batch_tokens \(now 2048\)",
    ):
        t.update([t.data.train.data.batch([0, 1])])


def test_early_stopping_on_patience(tmp_path, capsys):
    t = make(
        tmp_path,
        "train.max_steps=50",
        "train.patience=2",
        "train.metric=exact_match",
        "train.optimizer.lr=1e-9",
    )
    result = t.run()
    # exact match stays 0.0: best at the first validation, then 2 without improvement
    assert result["stopped"] == "no improvement of exact_match in 2 validations (train.patience)"
    assert result["step"] == 6 and result["best_step"] == 2


@pytest.mark.parametrize("setup, last_step, end", [(25, 3, 115), (45, 2, 95)])
def test_max_minutes_counts_the_setup_and_keeps_room_for_the_last_update_and_validation(
    tmp_path, monkeypatch, setup, last_step, end
):
    """On a fake clock: the command's setup takes ``setup`` s, an update 10 s, a validation with
    its checkpoints 30 s, and the budget is 120 s. Training stops before an update that, with the
    final validation, would end past the budget: the run ends by 120 s, not one update and one
    validation after it."""
    from types import SimpleNamespace

    from seq2seq.train import trainer as trainer_mod

    now = [0.0]
    clock = SimpleNamespace(monotonic=lambda: now[0], perf_counter=lambda: now[0])
    monkeypatch.setattr(trainer_mod, "time", clock)
    t = make(
        tmp_path, "train.max_steps=null", "train.max_minutes=2", "train.log_every=100", started=0.0
    )
    update, validate = t.update, t.validate

    def timed_update(batches):
        now[0] += 10
        return update(batches)

    def timed_validate():
        now[0] += 30
        return validate()

    monkeypatch.setattr(t, "update", timed_update)
    monkeypatch.setattr(t, "validate", timed_validate)
    now[0] = setup
    result = t.run()
    # setup 25: updates end at 35 and 45, the validation of step 2 at 75; 75 + 10 + 30 < 120, so
    # step 3 ends at 85; 85 + 10 + 30 >= 120: stop, and the final validation ends at 115.
    # setup 45: the validation of step 2 ends at 95, and 95 + 10 + 30 >= 120: stop there.
    assert result["stopped"] == "reached train.max_minutes=2.0"
    assert (result["step"], now[0]) == (last_step, end)
    assert result["minutes"] * 60 == pytest.approx(end)


def test_keep_best_k_and_lower_is_better_metrics(tmp_path):
    t = make(
        tmp_path,
        "train.max_steps=8",
        "train.keep_best=2",
        "train.metric=loss",
        "train.optimizer.lr=0.01",
    )
    t.run()
    run = tmp_path / "run"
    records = [
        r
        for r in map(__import__("json").loads, (run / "metrics.jsonl").read_text().splitlines())
        if r["kind"] == "valid"
    ]
    best_two = sorted(records, key=lambda r: r["loss"])[:2]
    assert sorted(p.name for p in run.glob("best-*.pt")) == sorted(
        f"best-{r['step']}.pt" for r in best_two
    )
    assert torch.load(run / "best.pt", weights_only=True)["step"] == best_two[0]["step"]


def test_train_cli_resumes_by_default_and_restart_starts_over(tmp_path, capsys):
    t = make(tmp_path)
    t.run()
    run = tmp_path / "run"
    args = ["train", str(run / "config.yaml"), "--out", str(run), "-q"]
    assert main(args) == 0  # resumes a finished run: nothing to do
    assert "reached train.max_steps=4" in capsys.readouterr().out
    assert main([*args, "--restart", "--set", "train.max_steps=2"]) == 0
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 2


@pytest.mark.parametrize(
    "native, speedup, expected",
    [(True, 2.0, "bf16"), (True, 1.1, "float32"), (True, 0.56, "float32"), (False, 2.0, "float32")],
)
def test_precision_auto_is_bf16_only_where_the_cpu_has_it_and_it_is_faster(
    tmp_path, monkeypatch, caplog, native, speedup, expected
):
    from seq2seq import runtime

    measured = []  # the thread counts the products were timed with

    def timed(threads):
        measured.append(threads)
        return speedup

    monkeypatch.setattr(runtime, "native_bf16", lambda device: native)
    monkeypatch.setattr(runtime, "bf16_speedup", timed)
    with caplog.at_level(logging.INFO, logger="seq2seq.train.trainer"):
        t = make(tmp_path, "train.precision=auto", "train.threads=1")
    assert t.precision == expected
    assert set(measured) == ({1} if native else set())  # timed on the configured threads
    if native:
        assert f"precision {expected} (auto: bf16 products ran at {speedup:.2f}x float32's " in (
            caplog.text
        )
    with runtime.autocast(t.precision, t.ctx.device):
        assert torch.is_autocast_enabled("cpu") == (expected == "bf16")
        if expected == "bf16":
            assert torch.get_autocast_dtype("cpu") == torch.bfloat16


def test_precision_auto_resumes_in_the_precision_the_run_started_with(
    tmp_path, monkeypatch, caplog
):
    from seq2seq import runtime
    from seq2seq.train.checkpoint import save_checkpoint

    monkeypatch.setattr(runtime, "native_bf16", lambda device: True)
    monkeypatch.setattr(runtime, "bf16_speedup", lambda threads: 2.0)
    t = make(tmp_path, "train.precision=auto")
    assert t.precision == "bf16"
    save_checkpoint(t.payload(True), tmp_path / "run" / "last.pt")

    def measured(threads: int) -> float:  # a resume does not measure again
        measured.calls += 1
        return 0.5  # slower now

    measured.calls = 0
    monkeypatch.setattr(runtime, "bf16_speedup", measured)
    with caplog.at_level(logging.INFO, logger="seq2seq.train.trainer"):
        resumed = Trainer(t.cfg, tmp_path / "run", show_progress=False)
    assert (resumed.precision, measured.calls) == ("bf16", 0)
    assert "precision bf16 (auto, as the run started)" in caplog.text
    # the run moved to a CPU without native bf16: float32, with a warning, rather than emulated
    monkeypatch.setattr(runtime, "native_bf16", lambda device: False)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="seq2seq.runtime"):
        moved = Trainer(t.cfg, tmp_path / "run", show_progress=False)
    assert moved.precision == "float32"
    assert caplog.messages == [
        "train.precision: auto: this run started in bf16, which cpu does not compute natively, "
        "so it goes on in float32 (not bitwise the run it would have been)"
    ]
    monkeypatch.setattr(runtime, "native_bf16", lambda device: True)
    fresh = Trainer(t.cfg, tmp_path / "run", restart=True, show_progress=False)
    assert fresh.precision == "float32" and measured.calls > 0  # --restart measures again


def test_explicit_bf16_where_it_measured_slower_is_kept_with_a_warning(
    tmp_path, monkeypatch, caplog
):
    from seq2seq import runtime

    monkeypatch.setattr(runtime, "native_bf16", lambda device: True)
    monkeypatch.setattr(runtime, "bf16_speedup", lambda threads: 0.56)
    with caplog.at_level(logging.WARNING, logger="seq2seq.runtime"):
        t = make(tmp_path, "train.precision=bf16", "train.threads=1")
    assert t.precision == "bf16"
    assert (
        "train.precision: bf16 products ran at 0.56x the speed of float32 on this CPU (1 threads), "
        "so bf16 will train slower than 'float32' (or 'auto') would" in caplog.text
    )


def test_bf16_speedup_times_both_products_on_the_given_threads_once(monkeypatch):
    from seq2seq import runtime

    products = []  # (dtype, threads) of each timed product
    mm = torch.mm

    def recorded(a, b):
        products.append((a.dtype, torch.get_num_threads()))
        return mm(a, b)

    monkeypatch.setattr(torch, "mm", recorded)
    runtime.bf16_speedup.cache_clear()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        first = runtime.bf16_speedup(1)
        assert torch.get_num_threads() == 2  # the thread count is restored
    finally:
        torch.set_num_threads(before)
    assert first > 0 and math.isfinite(first)
    assert set(products) == {(torch.float32, 1), (torch.bfloat16, 1)}
    assert len(products) == 14  # 7 rounds of both, the first two a warm-up
    assert runtime.bf16_speedup(1) is first  # measured once per process and thread count
    assert len(products) == 14
    assert runtime.bf16_speedup.cache_info().misses == 1


def test_bf16_on_a_cpu_without_native_bf16_is_refused_before_any_data_work(tmp_path, monkeypatch):
    from seq2seq import runtime

    monkeypatch.setattr(runtime, "native_bf16", lambda device: False)
    with pytest.raises(ValueError) as e:
        make(tmp_path, "train.precision=bf16")
    assert str(e.value).startswith(
        "train.precision: 'bf16' needs a CPU with native bf16 (AVX-512 BF16 or AMX); this one has "
    )
    assert "use 'float32', or 'auto' (bf16 where the CPU has it and it is faster)" in str(e.value)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="train.precision: 'fp16' needs a CUDA device"):
        make(tmp_path, "train.precision=fp16")
