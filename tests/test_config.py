import typing
from pathlib import Path

import pytest

from seq2seq import config
from seq2seq.cli import main
from seq2seq.config import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def raw(**train):
    return {"data": {"train": "d/train", "dev": "d/dev"}, "train": {"max_steps": 10, **train}}


def test_example_configs_load():
    for name in ("reverse_rnn.yaml", "dates_rnn.yaml"):
        cfg = config.load(CONFIGS / name)
        assert cfg.train.metric == "exact_match"
        assert cfg.data.src.tokenizer == "char"


def test_unknown_key_names_dotted_path_and_suggests():
    bad = raw()
    bad["model"] = {"encoder": {"hiden_size": 3}}
    with pytest.raises(ConfigError) as e:
        config.from_dict(bad, source="x.yaml")
    msg = str(e.value)
    assert msg.startswith(
        "x.yaml: model.encoder.hiden_size: unknown key; did you mean 'hidden_size'?"
    )


def test_wrong_type_names_key_value_and_expectation():
    bad = raw()
    bad["model"] = {"encoder": {"hidden_size": "big"}}
    with pytest.raises(ConfigError) as e:
        config.from_dict(bad, source="x.yaml")
    assert str(e.value) == (
        "x.yaml: model.encoder.hidden_size: expected an integer, got 'big' (str)"
    )


def test_bool_is_not_an_integer():
    bad = raw()
    bad["model"] = {"encoder": {"num_layers": True}}
    with pytest.raises(
        ConfigError, match=r"model.encoder.num_layers: expected an integer, got True"
    ):
        config.from_dict(bad)


def test_bad_literal_lists_choices():
    bad = raw()
    bad["model"] = {"decoder": {"attention": {"kind": "magic"}}}
    with pytest.raises(ConfigError) as e:
        config.from_dict(bad)
    assert "model.decoder.attention.kind: expected one of 'bahdanau', 'luong_dot', " in str(e.value)
    assert "got 'magic'" in str(e.value)


def test_bad_value_range():
    with pytest.raises(
        ConfigError, match=r"train.label_smoothing: expected a number in \[0, 1\), got 1.5"
    ):
        config.from_dict(raw(label_smoothing=1.5))


def test_impossible_combination_dot_attention_sizes():
    bad = raw()
    bad["model"] = {
        "encoder": {"hidden_size": 64, "bidirectional": True},
        "decoder": {"hidden_size": 100, "attention": {"kind": "luong_dot"}},
    }
    with pytest.raises(
        ConfigError,
        match=r"model.decoder.attention.kind: luong_dot needs encoder "
        r"output size == decoder hidden size, got 128",
    ):
        config.from_dict(bad)


def test_batch_modes_are_exclusive_and_a_stop_rule_is_required():
    with pytest.raises(ConfigError, match="set exactly one of them"):
        config.from_dict(raw(batch_size=32))
    with pytest.raises(ConfigError, match="no stopping rule"):
        config.from_dict({"data": {"train": "a", "dev": "b"}, "train": {}})


def test_float_accepts_int_and_exponent_string():
    cfg = config.from_dict(raw(optimizer={"lr": "1e-3"}, label_smoothing=0))
    assert cfg.train.optimizer.lr == pytest.approx(1e-3)
    assert isinstance(cfg.train.label_smoothing, float)


def test_overrides_set_nested_keys_with_yaml_values():
    r = config.apply_overrides(
        raw(),
        [
            "model.encoder.hidden_size=32",
            "train.max_minutes=0.5",
            "model.encoder.bidirectional=false",
            "train.max_steps=null",
        ],
    )
    cfg = config.from_dict(r)
    assert cfg.model.encoder.hidden_size == 32
    assert cfg.model.encoder.bidirectional is False
    assert cfg.train.max_steps is None and cfg.train.max_minutes == 0.5


def test_override_of_unknown_key_is_caught_with_its_path():
    r = config.apply_overrides(raw(), ["model.decoder.atention.kind=luong_dot"])
    with pytest.raises(
        ConfigError, match=r"model.decoder.atention: unknown key; did you mean 'attention'"
    ):
        config.from_dict(r)


def test_override_syntax_error():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        config.apply_overrides({}, ["model.encoder.hidden_size"])


def test_to_dict_round_trips():
    cfg = config.from_dict(raw(optimizer={"betas": [0.9, 0.98]}))
    assert config.from_dict(config.to_dict(cfg)) == cfg


def test_cli_unknown_key_exits_nonzero_naming_file_and_key(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("data: {train: a, dev: b}\ntrain: {max_steps: 1, bach_size: 3}\n")
    assert main(["train", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"{path}: train.bach_size: unknown key; did you mean 'batch_size'?" in err


def test_cli_wrong_type_through_set(tmp_path, capsys):
    code = main(
        [
            "train",
            str(CONFIGS / "reverse_rnn.yaml"),
            "--out",
            str(tmp_path / "run"),
            "--set",
            "train.max_steps=many",
        ]
    )
    assert code == 2
    assert (
        "train.max_steps: expected an integer or null, got 'many' (str)" in capsys.readouterr().err
    )


def model_error(**model) -> str:
    bad = raw()
    bad["model"] = model
    with pytest.raises(ConfigError) as e:
        config.from_dict(bad, source="x.yaml")
    return str(e.value)


def test_every_attention_kind_is_selectable_with_set():
    kinds = typing.get_args(config.AttentionKind)
    assert set(kinds) == {
        "bahdanau",
        "luong_dot",
        "luong_general",
        "luong_concat",
        "scaled_dot",
        "multihead",
        "local_m",
        "local_p",
    }
    for kind in kinds:
        r = config.apply_overrides(
            config.read_yaml(CONFIGS / "dates_rnn.yaml"), [f"model.decoder.attention.kind={kind}"]
        )
        assert config.from_dict(r).model.decoder.attention.kind == kind


def test_local_p_needs_a_window_of_at_least_one():
    msg = model_error(decoder={"attention": {"kind": "local_p", "window": 0}})
    assert msg == (
        "x.yaml: model.decoder.attention.window: expected an integer >= 1 for local_p "
        "(the Gaussian's sigma is window / 2), got 0"
    )
    msg = model_error(decoder={"attention": {"kind": "local_m", "window": -1}})
    assert msg == "x.yaml: model.decoder.attention.window: expected an integer >= 0, got -1"
    assert config.from_dict(
        {**raw(), "model": {"decoder": {"attention": {"kind": "local_m", "window": 0}}}}
    )


def test_scaled_dot_needs_equal_sizes():
    msg = model_error(
        encoder={"hidden_size": 64, "bidirectional": True},
        decoder={"hidden_size": 100, "attention": {"kind": "scaled_dot"}},
    )
    assert msg == (
        "x.yaml: model.decoder.attention.kind: scaled_dot needs encoder output size == decoder "
        "hidden size, got 128 (model.encoder.hidden_size=64 x 2 directions) and "
        "model.decoder.hidden_size=100; use luong_general or bahdanau"
    )


def test_multihead_needs_hidden_size_divisible_by_heads():
    msg = model_error(
        decoder={"hidden_size": 100, "attention": {"kind": "multihead", "num_heads": 3}}
    )
    assert msg == (
        "x.yaml: model.decoder.attention.num_heads: multihead needs model.decoder.hidden_size "
        "divisible by num_heads, got hidden_size=100 and num_heads=3"
    )
    msg = model_error(decoder={"attention": {"kind": "multihead", "num_heads": 0}})
    assert msg == "x.yaml: model.decoder.attention.num_heads: expected an integer >= 1, got 0"


def test_tie_output_needs_embed_dim_equal_to_hidden_size():
    msg = model_error(decoder={"embed_dim": 64, "hidden_size": 128}, tie_output=True)
    assert msg == (
        "x.yaml: model.tie_output: true shares the target embedding with the output projection, "
        "so it needs model.decoder.embed_dim == model.decoder.hidden_size, got 64 and 128"
    )
    ok = raw()
    ok["model"] = {"decoder": {"embed_dim": 32, "hidden_size": 32}, "tie_output": True}
    assert config.from_dict(ok).model.tie_output is True


def test_dropouts_residual_and_coverage_are_checked():
    msg = model_error(decoder={"hidden_dropout": 1.0})
    assert msg == "x.yaml: model.decoder.hidden_dropout: expected a number in [0, 1), got 1.0"
    msg = model_error(encoder={"residual": "yes"})
    assert msg == "x.yaml: model.encoder.residual: expected true or false, got 'yes' (str)"
    msg = model_error(decoder={"attention": {"coverage": 1}})
    assert msg == "x.yaml: model.decoder.attention.coverage: expected true or false, got 1 (int)"
