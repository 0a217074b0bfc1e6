"""The one base of every frozen config and record dataclass: strict `from_dict`, plain `to_dict`.

A typo in a config key must fail loudly, naming the key, instead of being ignored; a record read
back from JSON must come back as the same value (tuples as tuples, nested configs as configs).

    @dataclass(frozen=True)
    class PlanConfig(FrozenConfig):
        videos_per_shard: int = 64

    PlanConfig.from_dict({"videos_per_shard": 8}).to_dict() == {"videos_per_shard": 8}
    PlanConfig.from_dict({"video_per_shard": 8})   # ValueError: unknown PlanConfig keys: [...]

`from_dict` reads the field annotations: a nested dataclass field is rebuilt from its dict, a
`tuple[...]` field from a JSON list (elements converted likewise), `X | None` as X or None.
`to_dict` returns JSON types in field order: nested dataclasses as dicts, tuples as lists.
Validation of values stays in each class's `__post_init__`.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

C = TypeVar("C", bound="FrozenConfig")


def check_keys(cls: type, d: Mapping[str, Any]) -> None:
    """Raise ValueError naming every key of d that is not a field of dataclass cls."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.cache
def _required(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls)
                     if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)


def _from_json(tp: Any, value: Any) -> Any:
    """`value` (as JSON gives it) converted to annotation `tp`, where the two differ."""
    if value is None or tp is None or tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        return _from_json(options[0], value) if len(options) == 1 else value
    if origin is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_json(args[0], v) for v in value)
        if args and len(args) != len(value):
            raise ValueError(f"expected {len(args)} values, got {list(value)!r}")
        return tuple(_from_json(a, v) for a, v in zip(args, value)) if args else tuple(value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp) and isinstance(value, Mapping):
        return tp.from_dict(value) if issubclass(tp, FrozenConfig) else tp(**value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def to_json_value(value: Any) -> Any:
    """Dataclasses as dicts (field order), tuples as lists, recursively; other values as they are."""
    if isinstance(value, FrozenConfig):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [to_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json_value(v) for k, v in value.items()}
    return value


class FrozenConfig:
    """Mixin for `@dataclass(frozen=True)` configs and records (see the module doc)."""

    @classmethod
    def from_dict(cls: type[C], d: Mapping[str, Any]) -> C:
        if not isinstance(d, Mapping):
            raise ValueError(f"{cls.__name__} must be a mapping, got {type(d).__name__}")
        check_keys(cls, d)
        missing = _required(cls) - set(d)
        if missing:
            raise ValueError(f"{cls.__name__} is missing keys: {sorted(missing)}")
        hints = _hints(cls)
        return cls(**{k: _from_json(hints.get(k), v) for k, v in d.items()})

    def to_dict(self) -> dict[str, Any]:
        return {f.name: to_json_value(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
