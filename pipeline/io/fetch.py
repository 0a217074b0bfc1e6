"""Fetch one source video's bytes from storage, as data or as a "read" failure row.

Whole-object reads: decord copies its input into memory anyway, and ranged small reads
cost a round trip each on object stores (~30 ms on moto).
"""

from __future__ import annotations

import logging

from pipeline.decode.failures import VideoFailure, clean_message
from pipeline.io.storage import StorageConfig, filesystem, is_transient, with_retries

logger = logging.getLogger(__name__)


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
