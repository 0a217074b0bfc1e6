"""TokenDataLoader: a torch DataLoader over a TokenDataset whose state_dict() resumes exactly.

Worker processes hold copies of the dataset, so the main process counts the batches it hands
out; the dataset's split (`pipeline.loader.partition`) turns that count back into the samples
consumed, on every rank at once. Every rank yields the same number of batches per epoch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

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
    """Iterate batches for one epoch per `iter()`; state_dict()/load_state_dict() resume exactly,
    also at another world size, worker count or batch size (see pipeline.loader.dataset).

    Batches are dicts (see pipeline.loader.dataset). drop_last drops each rank's last partial
    batch, i.e. loses samples: keep it False to see every sample once per epoch. len() is the
    number of batches the next iteration yields on this rank (the same on every rank).
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

    def _prepare(self) -> None:
        ds = self.dataset
        ds.batch_size, ds.drop_last = self.batch_size, self.drop_last

    def __len__(self) -> int:
        self._prepare()
        ds = self.dataset
        partition = ds.partition()
        if ds.num_workers:
            return partition.batches(ds.rank) - ds._progress
        left = max(0, partition.shares[ds.rank][0].n_slots - ds._progress)
        return left // self.batch_size if self.drop_last else math.ceil(left / self.batch_size)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self._prepare()
        ds = self.dataset
        ds.partition()  # computed here once, so that worker processes receive it with their copy
        loader = DataLoader(
            ds, batch_size=self.batch_size, num_workers=ds.num_workers, drop_last=self.drop_last,
            collate_fn=default_collate if ds.config.mode == "packed" else collate_clips,
            pin_memory=self.pin_memory, persistent_workers=False,
            prefetch_factor=self.prefetch_factor if ds.num_workers else None,
            multiprocessing_context=self.multiprocessing_context if ds.num_workers else None,
        )
        for batch in loader:
            if ds.num_workers:  # in-process, the dataset counts its samples (and ends the epoch) itself
                ds.observe_batch()
            yield batch
        if ds.num_workers:
            ds.end_epoch()

    def state_dict(self) -> dict[str, Any]:
        self._prepare()
        return {"dataset": self.dataset.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._prepare()
        self.dataset.load_state_dict(state["dataset"])
