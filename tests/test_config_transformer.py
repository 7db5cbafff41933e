"""Config for Transformers, mixed models and LR schedules: what loads, and the exact errors."""

from pathlib import Path

import pytest

from seq2seq import config
from seq2seq.config import ConfigError, NoamScheduleConfig, TransformerDecoderConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def raw(model=None, data=None, **train):
    return {
        "data": {"train": "d/train", "dev": "d/dev", **(data or {})},
        "model": model or {},
        "train": {"max_steps": 10, **train},
    }


def error(r) -> str:
    with pytest.raises(ConfigError) as e:
        config.from_dict(r, source="x.yaml")
    return str(e.value)


def test_transformer_configs_load():
    for name in ("reverse_transformer.yaml", "dates_transformer.yaml"):
        cfg = config.load(CONFIGS / name)
        assert cfg.model.encoder.kind == cfg.model.decoder.kind == "transformer"
        assert isinstance(cfg.model.decoder, TransformerDecoderConfig)
        assert isinstance(cfg.train.schedule, NoamScheduleConfig)
        assert config.from_dict(config.to_dict(cfg)) == cfg


def test_kind_selects_the_variant_and_keys_are_checked_per_variant():
    cfg = config.from_dict(raw({"encoder": {"kind": "transformer", "num_heads": 8}}))
    assert cfg.model.encoder.num_heads == 8 and cfg.model.decoder.kind == "rnn"
    msg = error(raw({"encoder": {"kind": "transformer", "hidden_size": 8}}))
    assert msg.startswith("x.yaml: model.encoder.hidden_size: unknown key (known keys here: kind,")
    assert error(raw({"decoder": {"kind": "lstm"}})) == (
        "x.yaml: model.decoder.kind: expected one of 'rnn', 'transformer', got 'lstm'"
    )


def test_embed_dim_not_divisible_by_num_heads():
    assert error(raw({"decoder": {"kind": "transformer", "embed_dim": 30, "num_heads": 4}})) == (
        "x.yaml: model.decoder.num_heads: expected a divisor of model.decoder.embed_dim=30, got 4"
    )


@pytest.mark.parametrize(
    "key,value,expected",
    [
        ("norm", "middle", "one of 'pre', 'post'"),
        ("activation", "tanh", "one of 'relu', 'gelu'"),
        ("positions", "rotary", "one of 'sinusoidal', 'learned'"),
    ],
)
def test_bad_choices_list_the_options(key, value, expected):
    msg = error(raw({"encoder": {"kind": "transformer", key: value}}))
    assert msg == f"x.yaml: model.encoder.{key}: expected {expected}, got {value!r} (str)"


def test_bad_ranges():
    assert error(raw({"encoder": {"kind": "transformer", "attention_dropout": 1.0}})) == (
        "x.yaml: model.encoder.attention_dropout: expected a number in [0, 1), got 1.0"
    )
    assert error(raw({"decoder": {"kind": "transformer", "num_layers": 0}})) == (
        "x.yaml: model.decoder.num_layers: expected an integer >= 1, got 0"
    )


def test_share_embeddings_needs_a_joint_vocabulary():
    t = {"kind": "transformer"}
    assert error(raw({"encoder": t, "decoder": t, "share_embeddings": True})) == (
        "x.yaml: model.share_embeddings: true needs data.joint: true (one vocabulary for both "
        "sides), got data.joint: false"
    )
    ok = config.from_dict(
        raw({"encoder": t, "decoder": t, "share_embeddings": True}, data={"joint": True})
    )
    assert ok.model.share_embeddings


def test_share_embeddings_needs_transformers_of_one_size():
    model = {
        "encoder": {"kind": "transformer", "embed_dim": 64},
        "decoder": {"kind": "transformer", "embed_dim": 32},
        "share_embeddings": True,
    }
    assert error(raw(model, data={"joint": True})) == (
        "x.yaml: model.share_embeddings: true needs Transformer encoder and decoder with equal "
        "embed_dim, got encoder transformer (embed_dim 64) and decoder transformer (embed_dim 32)"
    )


def test_tie_output_with_an_rnn_decoder_needs_matching_sizes():
    assert error(raw({"tie_output": True, "decoder": {"embed_dim": 64, "hidden_size": 128}})) == (
        "x.yaml: model.tie_output: true shares the target embedding with the output projection, "
        "so it needs model.decoder.embed_dim == model.decoder.hidden_size, got 64 and 128"
    )


def test_mixed_models_check_sizes_and_bridges():
    assert error(raw({"encoder": {"kind": "transformer"}, "decoder": {"bridge": "last"}})) == (
        "x.yaml: model.decoder.bridge: 'last' copies an RNN encoder's final states, but "
        "model.encoder.kind is 'transformer'; use 'linear' (masked mean of the encoder states), "
        "'mean' or 'zero'"
    )
    msg = error(
        raw(
            {
                "encoder": {"kind": "transformer", "embed_dim": 128},
                "decoder": {"hidden_size": 64, "attention": {"kind": "luong_dot"}},
            }
        )
    )
    assert "luong_dot needs encoder output size == decoder hidden size, got 128 " in msg
    assert "(model.encoder.embed_dim=128) and model.decoder.hidden_size=64" in msg
    cfg = config.from_dict(raw({"encoder": {"kind": "transformer"}}))  # linear bridge: fine
    assert cfg.model.decoder.bridge == "linear"


def test_schedule_defaults_to_constant_and_checks_warmup():
    assert config.from_dict(raw()).train.schedule.kind == "constant"
    cfg = config.from_dict(raw(schedule={"kind": "noam", "warmup_steps": 50}))
    assert cfg.train.schedule == NoamScheduleConfig(warmup_steps=50)
    assert error(raw(schedule={"kind": "noam", "warmup_steps": 0})) == (
        "x.yaml: train.schedule.warmup_steps: expected an integer >= 1, got 0"
    )
    assert error(raw(schedule={"kind": "exponential"})) == (
        "x.yaml: train.schedule.kind: expected one of 'constant', 'noam', 'linear', 'cosine', "
        "'plateau', got 'exponential'"
    )
    msg = error(raw(schedule={"kind": "constant", "warmup": 5}))
    assert msg.startswith(
        "x.yaml: train.schedule.warmup: unknown key; did you mean 'warmup_steps'?"
    )
