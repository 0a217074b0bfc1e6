"""A pipeline step: a small object with one typed entry method, heavy state built on the worker.

    DecodeStep:   (data: bytes | BinaryIO, uri: str) -> DecodedVideo | VideoFailure
    TokenizeStep: (pending: list[PendingClip])        -> list[ClipTokens]

Both satisfy `Step`, whatever runs them: the Ray actor (`pipeline.exec.worker`) or one process
(`pipeline.tokenize.local`). The executor wires steps together; a step knows nothing of it.
"""

from __future__ import annotations

from typing import Any, ParamSpec, Protocol, TypeVar, runtime_checkable

P = ParamSpec("P")
R_co = TypeVar("R_co", covariant=True)


@runtime_checkable
class Step(Protocol[P, R_co]):
    """One step of the pipeline: its frozen config and one call on its input.

    `Step[[bytes | BinaryIO, str], DecodedVideo | VideoFailure]` is the decode step,
    `Step[[list[PendingClip]], list[ClipTokens]]` the tokenize step."""

    config: Any

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...
