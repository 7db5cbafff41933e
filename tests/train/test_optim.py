"""Learning-rate schedules give the rates their formulas say at chosen updates."""

import math

import pytest
import torch

from seq2seq.config import (
    ConstantScheduleConfig,
    CosineScheduleConfig,
    LinearScheduleConfig,
    NoamScheduleConfig,
    OptimizerConfig,
    PlateauScheduleConfig,
)
from seq2seq.train.optim import build_optimizer, build_schedule


def rates(cfg, updates, lr=2.0, max_steps=None):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = build_schedule(cfg, opt, max_steps)
    out = []
    for _ in range(updates):
        out.append(opt.param_groups[0]["lr"])  # the rate of the coming update
        opt.step()
        sched.after_update()
    return out  # out[n - 1] is the rate of update n


def test_constant_with_warmup():
    r = rates(ConstantScheduleConfig(warmup_steps=4), 6)
    assert r == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.0, 2.0])


def test_noam_peaks_at_warmup_then_decays_as_inverse_sqrt():
    r = rates(NoamScheduleConfig(warmup_steps=4), 16)
    assert r[0] == pytest.approx(2.0 * 1 / 4)
    assert r[3] == pytest.approx(2.0)  # update 4 = warm-up: the peak
    assert r[15] == pytest.approx(2.0 * math.sqrt(4 / 16))
    # Vaswani et al. eq. 3 up to a constant: d^-0.5 * min(n^-0.5, n * w^-1.5)
    paper = [min(n**-0.5, n * 4**-1.5) for n in range(1, 17)]
    assert [a / b for a, b in zip(r, paper)] == pytest.approx([r[0] / paper[0]] * 16)


def test_linear_decay_to_a_floor():
    r = rates(LinearScheduleConfig(warmup_steps=2, min_lr_ratio=0.25), 12, max_steps=10)
    assert r[:2] == pytest.approx([1.0, 2.0])
    assert r[5] == pytest.approx(2.0 * (0.25 + 0.75 * (10 - 6) / 8))
    assert r[9:] == pytest.approx([0.5, 0.5, 0.5])


def test_cosine_decay():
    r = rates(CosineScheduleConfig(warmup_steps=0, total_steps=8), 10)
    assert r[0] == pytest.approx(2.0 * 0.5 * (1 + math.cos(math.pi / 8)))
    assert r[3] == pytest.approx(1.0)  # update 4 of 8: half way
    assert r[7:] == pytest.approx([0.0, 0.0, 0.0])


def test_plateau_halves_after_patience_validations():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_schedule(
        PlateauScheduleConfig(factor=0.5, patience=1), opt, None, higher_is_better=True
    )
    seen = []
    for value in (10.0, 11.0, 11.0, 11.0, 9.0, 12.0):
        sched.after_validation(value)
        seen.append(opt.param_groups[0]["lr"])
    assert seen == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5]


@pytest.mark.parametrize(
    "kind,cls",
    [
        ("adam", torch.optim.Adam),
        ("adamw", torch.optim.AdamW),
        ("sgd", torch.optim.SGD),
        ("rmsprop", torch.optim.RMSprop),
    ],
)
def test_optimizers(kind, cls):
    opt = build_optimizer(
        OptimizerConfig(kind=kind, lr=0.1, weight_decay=0.01, momentum=0.5),
        [torch.nn.Parameter(torch.zeros(2))],
    )
    assert isinstance(opt, cls)
    assert opt.param_groups[0]["weight_decay"] == 0.01


@pytest.mark.parametrize("kind,cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_adam_takes_the_fused_kernel_and_matches_the_loop(kind, cls):
    torch.manual_seed(0)
    start, grads = torch.randn(5, 3), [torch.randn(5, 3) for _ in range(4)]
    ours, loop = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    opt = build_optimizer(OptimizerConfig(kind=kind, lr=0.01, weight_decay=0.01), [ours])
    ref = cls([loop], lr=0.01, weight_decay=0.01, foreach=False)
    assert opt.param_groups[0]["fused"] is True
    assert ref.param_groups[0]["fused"] in (None, False)
    for g in grads:
        ours.grad, loop.grad = g.clone(), g.clone()
        opt.step()
        ref.step()
    torch.testing.assert_close(ours, loop)
    assert not torch.equal(ours, start)
