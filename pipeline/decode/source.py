"""Where a video's clips come from: its bytes fetched from storage (whole-object reads: decord
copies its input into memory anyway, and small ranged reads cost a round trip each on object
stores, ~30 ms on moto), then a decode function, in one place.

Every path that turns a URI into clips goes through `fetch_and_decode`: the Ray decode tasks,
the actor's isolated decoder processes, the beta-tuning sample, `infotok eval` / `train --data`.
The decode function is a `DecodeStep`, a `FaultableDecode` or an `IsolatedDecoder`: anything
that maps (bytes, uri) to a DecodedVideo or a VideoFailure without raising.

`FaultableDecode` adds the fault drill: with INFOTOK_FAULT_INJECT="crash=NEEDLE,hang=NEEDLE,
transient=NEEDLE" the decode of every uri containing NEEDLE aborts its process, hangs (as a native
decoder can), or fails in a way a retry may fix (as an unreachable store does); it is how
recovery is tested (and rehearsed on a real cluster).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from pipeline.decode.failures import VideoFailure, clean_message
from pipeline.decode.step import DecodeConfig, DecodedVideo, DecodeStep
from pipeline.io.storage import StorageConfig, filesystem, is_transient, with_retries

logger = logging.getLogger(__name__)

DecodeFn = Callable[[bytes, str], Any]  # (data, uri) -> DecodedVideo | VideoFailure, never raises

FAULT_ENV = "INFOTOK_FAULT_INJECT"


def fetch_bytes(uri: str, storage: StorageConfig = StorageConfig(), attempts: int = 5,
                max_bytes: int | None = None) -> bytes | VideoFailure:
    """The object's bytes, retrying transient errors; a VideoFailure(stage="read") otherwise.

    max_bytes: refuse (permanently) objects larger than this, before downloading them.
    """
    try:
        fs, path = filesystem(uri, storage)
        if max_bytes is not None:
            size = with_retries(lambda: fs.size(path), f"stat {uri}", attempts=attempts)
            if size is not None and size > max_bytes:
                return VideoFailure(uri, "read", True, "TooLarge", f"{uri}: {size} bytes, more than max_bytes={max_bytes}")
        return with_retries(lambda: fs.cat_file(path), f"read {uri}", attempts=attempts)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a row
        permanent = not is_transient(exc)
        logger.warning("read failed (%s): %s", "permanent" if permanent else "transient", clean_message(f"{uri}: {exc}"))
        return VideoFailure.from_exception(uri, "read", exc, permanent=permanent, what="reading")


def fetch_and_decode(uri: str, storage: StorageConfig, decode: DecodeFn) -> DecodedVideo | VideoFailure:
    """The video's clips, or the read / decode failure that becomes its error row."""
    data = fetch_bytes(uri, storage)
    if isinstance(data, VideoFailure):
        return data
    return decode(data, uri)


def _inject_fault(uri: str) -> VideoFailure | None:
    for item in os.environ.get(FAULT_ENV, "").split(","):
        kind, _, needle = item.partition("=")
        if needle and needle in uri:
            logger.warning("%s: injecting decoder %s for %s", FAULT_ENV, kind, uri)
            if kind == "crash":
                os.abort()
            if kind == "hang":
                time.sleep(24 * 3600)
            if kind == "transient":
                return VideoFailure(uri, "decode", False, "InjectedTransient", f"{uri}: injected transient failure")
    return None


class FaultableDecode:
    """DecodeStep plus the FAULT_ENV drill: what runs in a Ray decode task or an isolated decoder
    process (picklable: it holds the config as a dict)."""

    def __init__(self, decode: dict[str, Any]) -> None:
        self.step = DecodeStep(DecodeConfig.from_dict(decode))

    def __call__(self, data: bytes, uri: str) -> DecodedVideo | VideoFailure:
        return _inject_fault(uri) or self.step(data, uri)
