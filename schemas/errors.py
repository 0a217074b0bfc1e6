"""Arrow schema of the errors table: one row per input that failed a pipeline stage.

Bad input never stops a job; it becomes a row here. `kind` keeps permanent failures
(undecodable video, unsupported codec) apart from transient ones (storage timeouts that
were retried and still failed) so that a rerun can retry only the transient ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

ERRORS_SCHEMA_NAME = "infotok.errors"
ERRORS_SCHEMA_VERSION = 1

STAGES = ("plan", "read", "decode", "tokenize", "write")
KINDS = ("permanent", "transient")

ERRORS_SCHEMA = pa.schema(
    [
        pa.field("uri", pa.string(), nullable=False),
        pa.field("video_id", pa.string(), nullable=True),  # null when the failure precedes id assignment
        pa.field("stage", pa.string(), nullable=False),  # one of STAGES
        pa.field("kind", pa.string(), nullable=False),  # one of KINDS
        pa.field("error_type", pa.string(), nullable=False),  # exception class name
        pa.field("message", pa.string(), nullable=False),
        pa.field("attempts", pa.int32(), nullable=False),
    ]
).with_metadata({b"infotok.schema": ERRORS_SCHEMA_NAME.encode(), b"infotok.schema_version": b"1"})


@dataclass(frozen=True)
class ErrorRow:
    """One failed input. Build from an exception with `ErrorRow.from_exception`."""

    uri: str
    stage: str
    kind: str
    error_type: str
    message: str
    video_id: str | None = None
    attempts: int = 1

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"error stage must be one of {STAGES}, got {self.stage!r}")
        if self.kind not in KINDS:
            raise ValueError(f"error kind must be one of {KINDS}, got {self.kind!r}")

    @classmethod
    def from_exception(
        cls, uri: str, stage: str, exc: BaseException, transient: bool, video_id: str | None = None, attempts: int = 1
    ) -> ErrorRow:
        return cls(
            uri=uri,
            stage=stage,
            kind="transient" if transient else "permanent",
            error_type=type(exc).__name__,
            message=str(exc)[:2000],
            video_id=video_id,
            attempts=attempts,
        )


def errors_to_table(rows: Sequence[ErrorRow]) -> pa.Table:
    """Build an errors table with the exact schema (empty tables are valid)."""
    cols = {f.name: [getattr(r, f.name) for r in rows] for f in ERRORS_SCHEMA}
    return pa.Table.from_pydict(cols, schema=ERRORS_SCHEMA)
