"""Local and multi-head attention against hand computations: windows, edges, padding, p_t."""

import math

import pytest
import torch

from seq2seq.nn.attention import (
    Coverage,
    GlobalAttention,
    LuongConcatScorer,
    LuongGeneralScorer,
    MultiHeadAttention,
    ScaledDotScorer,
    additive_tanh,
)
from seq2seq.nn.local_attention import LocalAttention

MASK = torch.tensor([[True] * 7, [True, True, True, False, False, False, False]])  # S = 7 and 3


def local(mode, window, coverage=False, seed=0):
    torch.manual_seed(seed)
    return LocalAttention(LuongGeneralScorer(4, 4), 4, 4, mode, window, coverage)


def run(attn, query, memory, mask=MASK, first_step=0, coverage=None):
    return attn(query, attn.prepare(memory), memory, mask, first_step, coverage)


def test_local_m_window_is_centred_at_the_target_position_and_clamped_at_the_end():
    attn = local("monotonic", window=1)
    query, memory = torch.randn(2, 6, 4), torch.randn(2, 7, 4)
    _, w = run(attn, query, memory, first_step=1)  # target positions 1..6
    for b, length in enumerate([7, 3]):
        for t in range(6):
            centre = min(t + 1, length - 1)
            allowed = {s for s in range(length) if abs(s - centre) <= 1}
            nonzero = {s for s in range(7) if w[b, t, s] != 0}
            assert nonzero == allowed, (b, t)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 6))


def test_local_m_with_window_zero_is_hard_monotonic_attention():
    attn = local("monotonic", window=0)
    memory = torch.randn(2, 7, 4)
    context, w = run(attn, torch.randn(2, 5, 4), memory)
    expected = torch.zeros(2, 5, 7)
    for t in range(5):
        expected[0, t, t] = 1.0
        expected[1, t, min(t, 2)] = 1.0
    assert torch.equal(w, expected)
    torch.testing.assert_close(context, expected @ memory)


@torch.no_grad()
def test_local_p_matches_luong_eq_9_and_10_by_hand():
    attn = local("predictive", window=2)
    query, memory = torch.randn(2, 3, 4), torch.randn(2, 7, 4)
    _, w = run(attn, query, memory)
    scores = query @ attn.scorer.memory_proj(memory).transpose(1, 2)
    for b, length in enumerate([7, 3]):
        for t in range(3):
            h = query[b, t]
            gate = torch.sigmoid(attn.position_v.weight @ torch.tanh(attn.position_proj.weight @ h))
            p = length * float(gate)  # eq. 9, S = real length
            expected = torch.zeros(7)
            for s in range(length):
                if abs(s - p) <= 2:
                    gauss = math.exp(-((s - p) ** 2) / (2 * (2 / 2) ** 2))  # eq. 10, sigma = D/2
                    expected[s] = math.exp(float(scores[b, t, s])) * gauss
            torch.testing.assert_close(w[b, t], expected / expected.sum())


def test_local_p_position_depends_on_the_real_source_length_not_padding():
    attn = local("predictive", window=1)
    query = torch.randn(1, 2, 4)
    mask = torch.tensor([[True, True, True]])
    padded = torch.tensor([[True, True, True, False, False, False, False, False]])
    p_alone = attn.positions(query, mask, 0)
    p_padded = attn.positions(query, padded, 0)
    torch.testing.assert_close(p_alone, p_padded)
    assert torch.all((p_alone >= 0) & (p_alone <= 3))


def test_local_p_is_trained_through_p_t():
    attn = local("predictive", window=2)
    query, memory = torch.randn(2, 3, 4), torch.randn(2, 7, 4)
    context, _ = run(attn, query, memory)
    context.pow(2).sum().backward()
    assert attn.position_proj.weight.grad.abs().sum() > 0
    assert attn.position_v.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("mode", ["monotonic", "predictive"])
def test_local_attention_never_gives_an_empty_window(mode):
    """Even far beyond the source end (local-m) or at p_t = S (local-p) one position remains."""
    attn = local(mode, window=1)
    if mode == "predictive":
        with torch.no_grad():
            attn.position_v.weight.fill_(100.0)  # sigmoid -> 1, p_t -> S
            attn.position_proj.weight.copy_(torch.eye(4))
    query = torch.ones(2, 3, 4)
    _, w = run(attn, query, torch.randn(2, 7, 4), first_step=50)
    assert not torch.isnan(w).any()
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3))
    assert w[1, :, 2].min() > 0  # the last real position of the 3-token source


def test_local_attention_rejects_a_bad_window():
    with pytest.raises(ValueError, match="window must be >= 1"):
        local("predictive", window=0)
    local("monotonic", window=0)


def test_multihead_weights_are_the_mean_of_the_heads():
    torch.manual_seed(0)
    attn = MultiHeadAttention(8, 6, num_heads=2)
    query, memory = torch.randn(2, 3, 8), torch.randn(2, 7, 6)
    context, w = run(attn, query, memory)
    k, v = attn.memory_proj(memory).chunk(2, dim=-1)
    q = attn.query_proj(query)
    heads, weights = [], []
    for h in range(2):
        sl = slice(4 * h, 4 * h + 4)
        scores = q[..., sl] @ k[..., sl].transpose(1, 2) / 2.0
        a = scores.masked_fill(~MASK.unsqueeze(1), float("-inf")).softmax(-1)
        weights.append(a)
        heads.append(a @ v[..., sl])
    torch.testing.assert_close(w, (weights[0] + weights[1]) / 2)
    torch.testing.assert_close(context, attn.out_proj(torch.cat(heads, -1)))


def test_multihead_needs_divisible_sizes():
    with pytest.raises(ValueError, match="divisible by num_heads 3"):
        MultiHeadAttention(8, 8, num_heads=3)


def test_scaled_dot_and_concat_by_hand():
    torch.manual_seed(0)
    query, memory = torch.randn(1, 1, 4), torch.randn(1, 3, 4)
    scaled = ScaledDotScorer(4, 4)
    torch.testing.assert_close(scaled(query, memory), query @ memory.transpose(1, 2) / 2.0)
    concat = LuongConcatScorer(4, 4, 5)
    w_a = torch.cat([concat.query_proj.weight, concat.memory_proj.weight], dim=1)  # (A, Hq + Hm)
    for s in range(3):
        hs = torch.cat([query[0, 0], memory[0, s]])
        expected = concat.v.weight @ torch.tanh(w_a @ hs)  # v_a^T tanh(W_a [h_t; h_s])
        got = concat(query, concat.prepare(memory))[0, 0, s]
        torch.testing.assert_close(got, expected.squeeze())


def test_coverage_enters_the_keys_and_changes_the_weights():
    torch.manual_seed(0)
    attn = GlobalAttention(LuongGeneralScorer(4, 4), 4, coverage=True)
    assert isinstance(attn.coverage, Coverage)
    query, memory = torch.randn(2, 1, 4), torch.randn(2, 7, 4)
    _, plain = run(attn, query, memory, coverage=torch.zeros(2, 7))
    _, covered = run(attn, query, memory, coverage=torch.rand(2, 7))
    assert not torch.allclose(plain, covered)
    assert torch.all(covered[1, :, 3:] == 0)


@pytest.mark.parametrize(
    "dtype,atol", [(torch.float64, 1e-12), (torch.float32, 5e-7), (torch.bfloat16, 8e-3)]
)
def test_additive_tanh_equals_tanh_of_the_sum_with_its_gradients(dtype, atol):
    torch.manual_seed(0)
    a = (3 * torch.randn(4, 3, 1, 8)).to(dtype).requires_grad_()
    b = (3 * torch.randn(4, 1, 5, 8)).to(dtype).requires_grad_()
    out = additive_tanh(a, b)
    ref = torch.tanh(a.double() + b.double())
    assert out.dtype == dtype and out.shape == (4, 3, 5, 8)
    torch.testing.assert_close(out.double(), ref, atol=atol, rtol=0)
    grad = torch.randn(4, 3, 5, 8, dtype=torch.float64)
    got = torch.autograd.grad(out, (a, b), grad.to(dtype))
    want = torch.autograd.grad(ref, (a, b), grad)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == dtype
        torch.testing.assert_close(g.double(), w.double(), atol=10 * atol, rtol=0.02)
    if dtype == torch.float64:
        assert torch.autograd.gradcheck(additive_tanh, (a, b))
