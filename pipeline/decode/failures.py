"""Typed per-video failures: what becomes a row in the errors table.

A failure is data, not an exception: the pipeline records it and goes on with the
shard. `permanent` separates inputs that will never work (undecodable bytes, no video
stream, a missing object) from ones worth retrying (storage timeouts, a decoder
process that crashed or hung and has attempts left).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from schemas.config import FrozenConfig

STAGES = ("read", "decode")

# Decoder messages can embed the raw input (decord prints the bytes it failed to read):
# keep error text short and printable so rows and logs stay readable and small.
_MAX_MESSAGE_CHARS = 500


# What differs between two runs that hit the same cause: decord stamps its messages with the wall
# clock ("[16:02:51] .../video_reader.cc:151: ..."), native errors print object addresses. Error rows
# must be reproducible (a redone shard's error part equals the uninterrupted run's).
_CLOCK = re.compile(r"\[\d{1,2}:\d{2}:\d{2}(?:\.\d+)?\]\s*")
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")


def clean_message(text: str, limit: int = _MAX_MESSAGE_CHARS) -> str:
    """Printable, single-line, bounded, reproducible version of an error text (no clock stamps or
    memory addresses: the cause stays, what changes from run to run goes)."""
    out = "".join(c if c.isprintable() else " " for c in text.replace("\n", " "))
    out = _ADDRESS.sub("0x?", _CLOCK.sub("", out))
    out = " ".join(out.split())
    return out if len(out) <= limit else out[: limit - 3] + "..."


@dataclass(frozen=True)
class VideoFailure(FrozenConfig):
    """One video that produced no clips.

    uri: the source, as in the manifest; stage: "read" (fetching bytes) or "decode";
    permanent: False if a retry may succeed; error_type: exception class or a named
    condition ("Truncated", "NoVideoStream", "DecoderTimeout", ...); message: names the
    uri and the offending value.
    """

    uri: str
    stage: str
    permanent: bool
    error_type: str
    message: str

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"VideoFailure.stage must be one of {STAGES}, got {self.stage!r}")

    ok = False

    @classmethod
    def from_exception(cls, uri: str, stage: str, exc: BaseException, permanent: bool, what: str = "") -> VideoFailure:
        prefix = f"{what} " if what else ""
        msg = clean_message(f"{prefix}{uri}: {type(exc).__name__}: {exc}")
        return cls(uri=uri, stage=stage, permanent=permanent, error_type=type(exc).__name__, message=msg)
