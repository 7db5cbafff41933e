"""Plain data (YAML) -> frozen dataclasses, strictly, for any schema of dataclasses.

Every error names the dotted key at fault, the value found and what was expected, e.g.
``model.encoder.hidden_size: expected an integer, got 'big' (str)``. A union of dataclasses is
resolved by their ``kind`` Literal (one dict, no registries); a dataclass with a
``check(path)`` method validates itself once built. The schema is in config.py.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml


class ConfigError(ValueError):
    """A config value is unknown, of the wrong type or impossible; the message names the key."""


def require(ok: bool, path: str, value: Any, expected: str) -> None:
    """Raises ``path: expected EXPECTED, got VALUE`` unless ``ok``: the common form of a check."""
    if not ok:
        raise ConfigError(f"{path}: expected {expected}, got {value!r}")


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of {len(typing.get_args(tp))} values"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return str(tp)


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # PyYAML reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is Literal:
        if value in typing.get_args(tp) and isinstance(value, str):
            return value
    elif origin in (Union, types.UnionType):
        members = typing.get_args(tp)
        variants = [m for m in members if dataclasses.is_dataclass(m)]
        if len(variants) > 1:  # tagged variants: pick by `kind`
            return _convert_variant(variants, value, path)
        for m in members:
            try:
                return _convert(m, value, path)
            except ConfigError:
                continue
    elif origin is tuple:
        args = typing.get_args(tp)
        if isinstance(value, (list, tuple)) and len(value) == len(args):
            return tuple(
                _convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value))
            )
    elif dataclasses.is_dataclass(tp):
        if isinstance(value, dict):
            return build(tp, value, path)
    else:  # pragma: no cover - schema error
        raise TypeError(f"unsupported config type {tp} at {path}")
    raise ConfigError(f"{path}: expected {_describe(tp)}, got {value!r} ({type(value).__name__})")


def _convert_variant(variants: list[type], value: Any, path: str) -> Any:
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'kind' key, got {value!r}")
    by_kind = {typing.get_args(_hints(v)["kind"])[0]: v for v in variants}
    kind = value.get("kind", next(iter(by_kind)))
    if kind not in by_kind:
        raise ConfigError(
            f"{path}.kind: expected one of {', '.join(map(repr, by_kind))}, got {kind!r}"
        )
    return build(by_kind[kind], value, path)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def build(cls: type, raw: dict, path: str) -> Any:
    """An instance of the dataclass ``cls`` from ``raw``; ``path`` prefixes error keys."""
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        if key not in names:
            where = f"{path}.{key}" if path else str(key)
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{where}: unknown key{hint} (known keys here: {', '.join(names)})")
        kwargs[key] = _convert(hints[key], value, f"{path}.{key}" if path else key)
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None:
        check(path)
    return obj


def to_dict(cfg: Any) -> dict:
    """The config as plain YAML/JSON-able data (tuples become lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"a.b.c=value"`` -> (["a", "b", "c"], value parsed as YAML)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. model.encoder.hidden_size=256")
    key, text = item.split("=", 1)
    keys = key.strip().split(".")
    if not all(keys):
        raise ConfigError(f"--set {item!r}: empty part in the dotted key {key!r}")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {item!r}: value is not valid YAML: {e}") from None
    return keys, value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Sets each ``a.b=value`` in a (deep-copied) raw config dict; validation happens later."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        keys, value = parse_override(item)
        node = raw
        for i, k in enumerate(keys[:-1]):
            nxt = node.get(k)
            if nxt is None:
                nxt = node[k] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(
                    f"--set {item!r}: {'.'.join(keys[: i + 1])} is {nxt!r}, not a mapping"
                )
            node = nxt
        node[keys[-1]] = value
    return raw


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    return {} if raw is None else raw
