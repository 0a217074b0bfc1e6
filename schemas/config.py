"""Strict construction of frozen dataclasses from plain dicts (JSON configs and records).

A typo in a config key must fail loudly, naming the key, instead of being ignored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


def check_keys(cls: type, d: Mapping[str, Any]) -> None:
    """Raise ValueError naming every key of d that is not a field of dataclass cls."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
