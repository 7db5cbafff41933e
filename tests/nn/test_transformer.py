"""The decode contract holds for the Transformer: cached steps == teacher forcing, padding inert,
exact-zero attention on padded sources, and the pieces (positions, tying, sharing) do what they say."""

import math

import pytest
import torch

from seq2seq.build import build_model
from seq2seq.config import ModelConfig, TransformerDecoderConfig, TransformerEncoderConfig
from seq2seq.data.batching import make_batch
from seq2seq.nn.embeddings import sinusoid_table
from seq2seq.nn.transformer import MultiHeadAttention

from ..conftest import tiny_transformer

VARIANTS = [
    dict(norm="pre"),
    dict(norm="post"),
    dict(norm="pre", positions="learned", activation="gelu", scale_embeddings=False),
    dict(norm="post", num_layers=1),
]


def _step_through(model, batch):
    state = model.init_state(model.encode(batch.src, batch.src_mask))
    steps, atts, every = [], [], []
    for t in range(batch.tgt_in.size(1)):
        logits, state = model.decode_step(batch.tgt_in[:, t], state)
        steps.append(logits)
        atts.append(state.attention)
        every.append(state.cross_attention)
    return torch.stack(steps, 1), torch.stack(atts, 1), torch.stack(every, 3), state


@pytest.mark.parametrize("changes", VARIANTS, ids=lambda c: "-".join(map(str, c.values())))
def test_cached_steps_equal_teacher_forcing(batch, changes):
    model = tiny_transformer(**changes)
    forced, forced_att = model.forward_with_attention(batch.src, batch.src_mask, batch.tgt_in)
    steps, atts, every, state = _step_through(model, batch)
    assert batch.tgt_mask.logical_not().any()  # the batch has target padding
    torch.testing.assert_close(steps, forced, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(atts, forced_att, atol=1e-6, rtol=1e-5)
    # per-layer-and-head weights: (L, B, heads, T, S); their last-layer mean is state.attention
    L = len(model.decoder.layers)
    assert every.shape == (L, 3, 4, batch.tgt_in.size(1), batch.src.size(1))
    torch.testing.assert_close(every[-1].mean(1), atts)
    # the self-attention cache grew by one position per step
    assert state.step == batch.tgt_in.size(1)
    assert state.self_keys[0].shape == (3, 4, batch.tgt_in.size(1), 4)


@pytest.mark.parametrize("encoder,decoder", [("transformer", "rnn"), ("rnn", "transformer")])
def test_mixed_models_keep_the_contract(batch, encoder, decoder):
    model = tiny_transformer(encoder=encoder, decoder=decoder)
    forced, forced_att = model.forward_with_attention(batch.src, batch.src_mask, batch.tgt_in)
    steps, atts = [], []
    state = model.init_state(model.encode(batch.src, batch.src_mask))
    for t in range(batch.tgt_in.size(1)):
        logits, state = model.decode_step(batch.tgt_in[:, t], state)
        steps.append(logits)
        atts.append(state.attention)
    torch.testing.assert_close(torch.stack(steps, 1), forced, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.stack(atts, 1), forced_att, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_padded_sources_get_exactly_zero_and_rows_sum_to_one(batch, norm):
    model = tiny_transformer(norm)
    _, att = model.forward_with_attention(batch.src, batch.src_mask, batch.tgt_in)
    _, _, every, _ = _step_through(model, batch)
    pad = ~batch.src_mask.unsqueeze(1).expand_as(att)
    assert pad.any()
    assert torch.all(att[pad] == 0.0)
    torch.testing.assert_close(att.sum(-1), torch.ones(att.shape[:2]))
    pad_every = ~batch.src_mask[None, :, None, None, :].expand_as(every)
    assert torch.all(every[pad_every] == 0.0)
    torch.testing.assert_close(every.sum(-1), torch.ones(every.shape[:-1]))


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_padding_changes_no_output_of_a_sentence(batch, norm):
    """Each sentence alone gives the same logits as inside the batch padded on both sides."""
    model = tiny_transformer(norm)
    together = model(batch.src, batch.src_mask, batch.tgt_in)
    srcs = [[4, 5, 6, 7, 8, 9], [10, 11], [5, 12, 4]]
    tgts = [[4, 5, 6, 7], [8], [9, 10, 4, 5, 6]]
    for i in range(3):
        one = make_batch([srcs[i]], [tgts[i]], [0])
        alone = model(one.src, one.src_mask, one.tgt_in)
        n = one.tgt_in.size(1)
        torch.testing.assert_close(alone[0], together[i, :n], atol=1e-5, rtol=1e-5)


def test_encoder_states_are_zero_at_padding_and_unaffected_by_it(batch):
    model = tiny_transformer()
    enc = model.encode(batch.src, batch.src_mask)
    assert enc.final is None
    assert torch.all(enc.states[~batch.src_mask] == 0.0)
    one = make_batch([[10, 11]], None, [0])
    alone = model.encode(one.src, one.src_mask)
    torch.testing.assert_close(alone.states[0], enc.states[1, :3], atol=1e-6, rtol=1e-5)


def test_state_select_reorders_and_drops_rows(batch):
    model = tiny_transformer()
    state = model.init_state(model.encode(batch.src, batch.src_mask))
    state = state.select(torch.tensor([0, 1, 2]))  # before any step (beam search does this)
    _, state = model.decode_step(batch.tgt_in[:, 0], state)
    index = torch.tensor([2, 0])  # shorter than the batch: sentence 1 has left it
    picked = state.select(index)
    # nothing is copied: only the row indices are, composed with the earlier selection
    assert picked.self_keys[1] is state.self_keys[1]
    assert picked.cross_values[0] is state.cross_values[0]
    assert picked.source_rows.tolist() == [2, 0] and picked.cache_rows.tolist() == [2, 0]
    torch.testing.assert_close(picked.cross_attention, state.cross_attention[:, index])
    torch.testing.assert_close(picked.attention, state.attention[index])
    logits_a, after_a = model.decode_step(torch.tensor([5, 6]), picked)
    logits_b, after_b = model.decode_step(torch.tensor([6, 5, 5]), state)
    torch.testing.assert_close(logits_a[0], logits_b[2])
    torch.testing.assert_close(logits_a[1], logits_b[0])
    # the step gathered the cache (and appended to it); selecting twice is selecting once
    assert after_a.self_keys[0].shape[0] == 2 and after_a.cache_rows is None
    torch.testing.assert_close(after_a.self_keys[0], after_b.self_keys[0][index])
    twice = state.select(index).select(torch.tensor([1, 1, 0]))
    once = state.select(torch.tensor([0, 0, 2]))
    logits_twice, _ = model.decode_step(torch.tensor([7, 8, 9]), twice)
    logits_once, _ = model.decode_step(torch.tensor([7, 8, 9]), once)
    torch.testing.assert_close(logits_twice, logits_once)


def test_explicit_weights_path_equals_sdpa():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4, memory_size=12).eval()
    q, mem = torch.randn(2, 3, 16), torch.randn(2, 5, 12)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])[:, None, None, :]
    k, v = mha.keys_values(mem)
    fast, none = mha(q, k, v, mask)
    slow, w = mha(q, k, v, mask, need_weights=True)
    assert none is None and w.shape == (2, 4, 3, 5)
    torch.testing.assert_close(fast, slow, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_cpu_training_path_equals_sdpa(monkeypatch, causal):
    """With attention dropout in CPU training the weights are written out (for the cheap mask);
    with that mask taken away it must give SDPA's result, causal or padded."""
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4, dropout=0.3).eval()
    q = torch.randn(2, 5, 16)
    mask = None if causal else torch.tensor([[True] * 5, [True] * 2 + [False] * 3])[:, None, None]
    k, v = mha.keys_values(q)
    expected, _ = mha(q, k, v, mask, causal=causal)
    calls = []
    monkeypatch.setattr(
        "seq2seq.nn.transformer_layers.dropout", lambda x, p, training: calls.append(p) or x
    )
    got, _ = mha.train()(q, k, v, mask, causal=causal)
    assert calls == [0.3]
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


def test_sinusoid_table_matches_the_formula():
    table = sinusoid_table(50, 6)
    pos, i = 7, 1
    assert table[pos, 2 * i].item() == pytest.approx(math.sin(pos / 10000 ** (2 * i / 6)))
    assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(pos / 10000 ** (2 * i / 6)))


def test_sinusoidal_positions_are_not_saved_but_learned_ones_are():
    sin = tiny_transformer(positions="sinusoidal").state_dict()
    learned = tiny_transformer(positions="learned").state_dict()
    assert not any("positions" in k for k in sin)
    assert "encoder.embedding.positions.table.weight" in learned


def test_positions_past_max_positions_are_a_clear_error(batch):
    model = tiny_transformer(max_positions=4)
    msg = (
        "sequence position {} is beyond max_positions=4; raise model.encoder/decoder.max_positions"
    )
    with pytest.raises(ValueError) as e:  # a source of 6 tokens + EOS
        model.encode(batch.src, batch.src_mask)
    assert str(e.value) == msg.format(6)
    one = make_batch([[10, 11]], None, [0])
    state = model.init_state(model.encode(one.src, one.src_mask))
    for _ in range(4):
        _, state = model.decode_step(torch.tensor([5]), state)
    with pytest.raises(ValueError) as e:
        model.decode_step(torch.tensor([5]), state)
    assert str(e.value) == msg.format(4)


def test_shared_and_tied_embeddings_are_one_parameter():
    sizes = dict(embed_dim=16, num_heads=2, ff_size=24, num_layers=1)
    cfg = ModelConfig(
        encoder=TransformerEncoderConfig(**sizes),
        decoder=TransformerDecoderConfig(**sizes),
        share_embeddings=True,
        tie_output=True,
    )
    model = build_model(cfg, 20, 20)
    table = model.encoder.embedding.tokens.weight
    assert model.decoder.embedding.tokens.weight is table
    assert model.decoder.output.weight is table
    names = [n for n, p in model.named_parameters() if p is table]
    assert len(names) == 1  # counted (and optimised) once
    untied = build_model(ModelConfig(encoder=cfg.encoder, decoder=cfg.decoder), 20, 20)
    n_tied = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in untied.parameters()) - n_tied == 2 * 20 * 16


def test_training_mode_backward_through_cache_and_dropout(batch):
    model = tiny_transformer(dropout=0.1, attention_dropout=0.1, activation_dropout=0.1).train()
    logits = model(batch.src, batch.src_mask, batch.tgt_in)
    logits.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_bf16_autocast_keeps_keys_and_linear_inputs_in_bf16(batch):
    """Under CPU bf16 autocast, teacher forcing's self-attention keys and values stay bf16 (an
    empty float32 cache must not promote them to float32), every decoder layer's cross-attention
    keys come from one bf16 copy of the encoder states, and the linear layers get bf16 inputs,
    each cast once; the result is the float32 model's up to bf16 rounding."""
    from seq2seq.nn.transformer_layers import autocast_input

    model = tiny_transformer()
    inputs, cross = [], []
    hooks = [
        m.register_forward_pre_hook(lambda _, args: inputs.append(args[0]))
        for m in model.modules()
        if isinstance(m, torch.nn.Linear) and m is not model.decoder.output
    ]
    for layer in model.decoder.layers:
        for proj in (layer.cross_attn.k_proj, layer.cross_attn.v_proj):
            hooks.append(proj.register_forward_pre_hook(lambda _, args: cross.append(args[0])))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        enc = model.encode(batch.src, batch.src_mask)
        state = model.init_state(enc)
        hidden, new, _ = model.decoder._run(batch.tgt_in, state, weights_from=0)
    for h in hooks:
        h.remove()
    assert enc.states.dtype == torch.float32  # the residual stream stays float32
    assert {k.dtype for k in (*state.cross_keys, *new.self_keys, *new.self_values)} == {
        torch.bfloat16
    }
    assert inputs and {x.dtype for x in inputs} == {torch.bfloat16}
    assert len(cross) == 2 * len(model.decoder.layers) and all(x is cross[0] for x in cross)
    reference = model.decoder.features(batch.tgt_in, model.init_state(enc))[0]
    torch.testing.assert_close(hidden.float(), reference, atol=0.05, rtol=0.05)
    x = torch.randn(2, 3)
    assert autocast_input(x) is x  # autocast off: unchanged
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert autocast_input(x).dtype == torch.bfloat16
        assert autocast_input(x.double()).dtype == torch.float64  # autocast leaves float64 alone
