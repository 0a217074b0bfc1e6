"""TokenDataLoader: a torch DataLoader over a TokenDataset whose state_dict() is exact.

Worker processes hold copies of the dataset, so the main process learns their progress
from the `cursor` each batch carries. torch's DataLoader serves workers round robin and
skips exhausted ones; on resume the workers are rotated so that the first batch comes from
the worker that was next, hence the batch sequence after a resume equals the uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, default_collate

from pipeline.loader.dataset import TokenDataset

_TENSOR_LISTS = ("tokens", "positions")


def collate_clips(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch of variable-length clips: tokens/positions stay lists, the rest is collated."""
    out: dict[str, Any] = {k: [s[k] for s in samples] for k in _TENSOR_LISTS}
    rest = [{k: v for k, v in s.items() if k not in _TENSOR_LISTS} for s in samples]
    out.update(default_collate(rest))
    return out


class TokenDataLoader:
    """Iterate batches for one epoch per `iter()`; state_dict()/load_state_dict() resume exactly.

    Batches are dicts (see pipeline.loader.dataset); the `cursor` entry is consumed here and removed.
    drop_last drops each worker's last partial batch, i.e. loses clips: keep it False to see
    every clip once per epoch.
    """

    def __init__(self, dataset: TokenDataset, batch_size: int, drop_last: bool = False, pin_memory: bool = False,
                 prefetch_factor: int | None = None, multiprocessing_context: str | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.pin_memory = pin_memory
        self.prefetch_factor = prefetch_factor
        self.multiprocessing_context = multiprocessing_context

    def __iter__(self) -> Iterator[dict[str, Any]]:
        ds = self.dataset
        loader = DataLoader(
            ds, batch_size=self.batch_size, num_workers=ds.num_workers, drop_last=self.drop_last,
            collate_fn=default_collate if ds.config.mode == "packed" else collate_clips,
            pin_memory=self.pin_memory, persistent_workers=False,
            prefetch_factor=self.prefetch_factor if ds.num_workers else None,
            multiprocessing_context=self.multiprocessing_context if ds.num_workers else None,
        )
        for batch in loader:
            cursor: torch.Tensor = batch.pop("cursor")
            if ds.num_workers:  # in-process, the dataset tracks itself (and may have ended the epoch)
                ds.observe(cursor[-1])
            yield batch
        if ds.num_workers:
            ds.end_epoch()  # in-process iteration ends the epoch itself

    def state_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset.state_dict(), "batch_size": self.batch_size, "drop_last": self.drop_last}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("batch_size", "drop_last"):
            if state.get(key) != getattr(self, key):
                raise ValueError(f"loader state field {key!r} is {state.get(key)!r}, this loader has {getattr(self, key)!r}")
        self.dataset.load_state_dict(state["dataset"])
