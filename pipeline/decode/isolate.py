"""Crash isolation for decoding: run decodes in a child process with a timeout.

decord has public reports of native hangs (holding the GIL) and segfaults. A decode run
in-process can take the whole worker down; here it runs in a long-lived child process
(multiprocessing "spawn": no forked copies of threads or locks), reused across videos.

If the child dies (segfault, abort, OOM kill) or gives no answer within `timeout_s`, it is
killed and restarted, and the same video is tried again: those attempts are transient
(logged). After `attempts` attempts the video becomes one permanent `VideoFailure`
(stage "decode", error_type "DecoderCrashed" or "DecoderTimeout"): a poison file must not
stall its shard forever.

Requests and results cross the process boundary through a multiprocessing pipe (in-memory
pickling of bytes and numpy arrays between our own two processes; nothing is persisted).
`fn` must be picklable: a `DecodeStep` is (it holds only its frozen config).

One `IsolatedDecoder` serves one caller thread at a time; an `IsolatedDecoderPool` holds one
per core and decodes a window of videos in parallel, results in order.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from pipeline.decode.failures import VideoFailure
from pipeline.decode.source import DecodeFn, fetch_and_decode
from pipeline.io.storage import StorageConfig
from schemas.config import FrozenConfig

logger = logging.getLogger(__name__)



@dataclass(frozen=True)
class IsolationConfig(FrozenConfig):
    """timeout_s: wall time allowed for one decode. attempts: tries before a permanent failure."""

    timeout_s: float = 300.0
    attempts: int = 2

    def __post_init__(self) -> None:
        if not isinstance(self.timeout_s, (int, float)) or self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s!r}")
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or self.attempts < 1:
            raise ValueError(f"attempts must be an int >= 1, got {self.attempts!r}")


def _serve(conn: Connection, fn: DecodeFn) -> None:
    """Child loop: (data, uri) in, result out; None or a closed pipe ends it."""
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        data, uri = msg
        try:
            result = fn(data, uri)
        except Exception as exc:  # noqa: BLE001 - fn should not raise; if it does, it is a row
            result = VideoFailure.from_exception(uri, "decode", exc, permanent=True, what="decoding (isolated)")
        conn.send(result)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class IsolatedDecoder:
    """Calls `fn(data, uri)` in a child process; a crash or hang becomes a failure row."""

    def __init__(self, fn: DecodeFn, config: IsolationConfig = IsolationConfig()) -> None:
        self.fn = fn
        self.config = config
        self._ctx = multiprocessing.get_context("spawn")
        self._proc: Any = None
        self._conn: Connection | None = None
        self.restarts = 0

    def _start(self) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=_serve, args=(child, self.fn), name="infotok-decode", daemon=True)
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent

    def _kill(self) -> int | None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            conn.close()
        if proc is None:
            return None
        if proc.is_alive():
            proc.kill()
        proc.join(10)
        return proc.exitcode

    def _attempt(self, data: bytes, uri: str) -> tuple[Any, str, str]:
        """(result, "", "") on success, else (None, error_type, reason)."""
        if self._proc is None or not self._proc.is_alive():
            if self._proc is not None:
                self._kill()
                self.restarts += 1
            self._start()
        assert self._conn is not None
        t0 = time.monotonic()
        try:
            self._conn.send((data, uri))
            if self._conn.poll(self.config.timeout_s):
                return self._conn.recv(), "", ""
        except (EOFError, OSError, BrokenPipeError):
            code = self._kill()
            self.restarts += 1
            return None, "DecoderCrashed", f"decoder process {_describe_exit(code)}"
        self._kill()
        self.restarts += 1
        return None, "DecoderTimeout", f"no result after {time.monotonic() - t0:.1f}s (timeout_s={self.config.timeout_s:g})"

    def __call__(self, data: bytes, uri: str) -> Any:
        """DecodedVideo | VideoFailure, never raises for a bad input, a crash or a hang."""
        data = bytes(data)
        error_type, reason = "", ""
        for attempt in range(1, self.config.attempts + 1):
            result, error_type, reason = self._attempt(data, uri)
            if not error_type:
                return result
            if attempt < self.config.attempts:
                logger.warning("%s: %s (attempt %d/%d, transient, retrying)", uri, reason, attempt, self.config.attempts)
        n = self.config.attempts
        msg = f"{uri}: {reason}; gave up after {n} attempt{'s' if n > 1 else ''} on {len(data)} bytes"
        logger.error("permanent decode failure: %s", msg)
        return VideoFailure(uri=uri, stage="decode", permanent=True, error_type=error_type, message=msg)

    def close(self) -> None:
        """Ask the child to exit, then make sure it has."""
        if self._conn is not None and self._proc is not None and self._proc.is_alive():
            try:
                self._conn.send(None)
                self._proc.join(5)
            except (OSError, BrokenPipeError):
                pass
        self._kill()

    def __enter__(self) -> IsolatedDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def decode_isolated(fn: DecodeFn, data: bytes, uri: str, config: IsolationConfig = IsolationConfig()) -> Any:
    """One decode in a fresh child process (start-up ~0.1-0.5 s); prefer a reused IsolatedDecoder."""
    with IsolatedDecoder(fn, config) as dec:
        return dec(data, uri)


class IsolatedDecoderPool:
    """Decodes windows of videos in `slots` isolated child processes (one per core it may use).

    What a CPU tokenize actor uses between model batches (alternate mode). On 2 cores this ran
    8.14 clips/s end to end vs 7.41 with one Ray task per video (medians, benchmarks/bench_pipeline.py):
    Ray's per-task dispatch and object transfer cost more than the decoding itself there. The
    children live as long as the pool and exit when their end of the pipe closes.
    """

    def __init__(self, fn: DecodeFn, storage: StorageConfig, config: IsolationConfig, slots: int,
                 window: int) -> None:
        import queue

        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.storage = storage
        self.slots = max(1, slots)
        self.window = window
        self.idle: queue.SimpleQueue[IsolatedDecoder] = queue.SimpleQueue()
        for _ in range(self.slots):
            self.idle.put(IsolatedDecoder(fn, config))

    def _decode(self, data: bytes, uri: str) -> Any:
        decoder = self.idle.get()
        try:
            return decoder(data, uri)
        finally:
            self.idle.put(decoder)

    def _one(self, uri: str) -> Any:
        return fetch_and_decode(uri, self.storage, self._decode)

    def decodes(self, uris: Sequence[str]) -> Iterator[Any]:
        """DecodedVideo | VideoFailure per uri, in order; a window at a time, nothing in flight while
        the consumer works on a window."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=self.slots, thread_name_prefix="infotok-decode") as pool:
            for i in range(0, len(uris), self.window):
                yield from list(pool.map(self._one, uris[i : i + self.window]))
