"""Training batches computed ahead of the step that needs them, on worker threads.

`batch_fn(step)` is a pure function of the step (see `tokenizer.train.trainer`), so computing it
early, or on another thread, changes nothing but when it is ready: a run with workers
trains on exactly the batches of a run without. The corpus generators and the clip
sampler spend their time in numpy and torch kernels, which release the GIL, so threads
are enough to keep a GPU fed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

logger = logging.getLogger(__name__)


class BatchPrefetcher:
    """get(step) -> batch_fn(step), with up to `depth` later steps already in flight.

    workers 0 computes each batch inline when asked for. Steps must be asked for in
    increasing order (a resumed run starts anywhere); `last` bounds the read-ahead.
    """

    def __init__(self, batch_fn: Callable[[int], np.ndarray], workers: int, last: int, depth: int | None = None) -> None:
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self._fn = batch_fn
        self._last = last
        self._depth = depth if depth is not None else 2 * workers
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="batches") if workers else None
        self._pending: dict[int, Future[np.ndarray]] = {}
        self._next = 0  # first step not yet submitted

    def get(self, step: int) -> np.ndarray:
        if self._pool is None:
            return self._fn(step)
        self._next = max(self._next, step)
        while self._next < min(step + 1 + self._depth, self._last):
            self._pending[self._next] = self._pool.submit(self._fn, self._next)
            self._next += 1
        future = self._pending.pop(step, None)
        return future.result() if future is not None else self._fn(step)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pending.clear()

    def __enter__(self) -> BatchPrefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
