"""Learning-rate schedules: the rate of chosen updates, worked out from the documented formula."""

import math

import pytest
import torch

from seq2seq.config import ConstantScheduleConfig, NoamScheduleConfig, OptimizerConfig
from seq2seq.train.optim import build_optimizer, build_schedule


def _rates(schedule, updates, lr=1e-3):
    """The rate each of the first ``updates`` optimizer updates ran at."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer(OptimizerConfig(lr=lr), [param])
    sched = build_schedule(schedule, opt)
    rates = []
    for _ in range(updates):
        rates.append(opt.param_groups[0]["lr"])
        param.grad = torch.ones(1)
        opt.step()
        sched.step()
    return rates


def test_noam_warms_up_linearly_peaks_at_lr_then_decays_as_inverse_sqrt():
    rates = _rates(NoamScheduleConfig(warmup_steps=100), 400, lr=2e-3)
    n = lambda k: rates[k - 1]  # noqa: E731 - update k, 1-based
    assert n(1) == pytest.approx(2e-3 * 1 / 100)
    assert n(50) == pytest.approx(2e-3 * 0.5)
    assert n(100) == pytest.approx(2e-3)  # the peak is train.optimizer.lr
    assert max(rates) == pytest.approx(2e-3)
    assert n(400) == pytest.approx(2e-3 * math.sqrt(100 / 400))  # half the peak at 4 x warmup
    assert n(200) == pytest.approx(2e-3 / math.sqrt(2))


def test_noam_is_proportional_to_the_paper_formula():
    """Vaswani et al. eq. 3: d^-0.5 * min(n^-0.5, n * w^-1.5), up to a constant factor."""
    w, d = 40, 512
    rates = _rates(NoamScheduleConfig(warmup_steps=w), 200)
    paper = [d**-0.5 * min(n**-0.5, n * w**-1.5) for n in range(1, 201)]
    ratios = [r / p for r, p in zip(rates, paper)]
    assert max(ratios) == pytest.approx(min(ratios))


def test_constant_schedule_keeps_the_rate():
    assert _rates(ConstantScheduleConfig(), 5, lr=3e-4) == pytest.approx([3e-4] * 5)
