"""Tokens back to video: the decoder a model trained on an infotok dataset uses for its samples.

It decodes with any checkpoint's base (`tokenizer.base.protocol.BaseTokenizer`): the shipped
tokenizer, or an external Cosmos DV base found as `tokenizer.checkpoint.load_tokenizer` finds it
(the recorded paths, `$INFOTOK_BASE`, or `from_checkpoint(..., base=...)`).

A clip as the dataset stores it is (tokens, mask, grid): `tokens` the kept token ids in raster
order of the kept positions, `mask` the packed keep bits (`schemas.mask`, little bit order over
the raster-flattened (t, h, w) grid), `grid` the latent grid (t, h, w); the clip is
1 + 4(t - 1) frames of 8h x 8w pixels. A generative model may instead emit (tokens, positions)
with positions (N, 3) (t, h, w) of each token, the loader's `clips` mode layout.

`Detokenizer.decode` takes one clip in either form; `decode_rows` takes dataset rows (dicts with
the token schema's columns) and refuses a row written by another tokenizer; `decode_batch` takes
a `TokenDataLoader` batch of `clips` mode. All return video (B, 3, T, H, W) float in [-1, 1];
`to_frames` turns one clip into (T, H, W, 3) uint8 frames for a video writer.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from schemas.mask import mask_nbytes, popcount, unpack_mask
from tokenizer.checkpoint import LoadedTokenizer, load_tokenizer

logger = logging.getLogger(__name__)


class TokenizerMismatchError(ValueError):
    """Tokens were written by a different tokenizer than the one asked to decode them."""


@dataclass(frozen=True)
class StoredClip:
    """One clip's tokens as the dataset stores them. ids: (N,) int64; keep: (t, h, w) bool with
    exactly N positions set, the i-th id at the i-th set position in raster order."""

    ids: np.ndarray
    keep: np.ndarray

    @property
    def grid(self) -> tuple[int, int, int]:
        t, h, w = self.keep.shape
        return int(t), int(h), int(w)


def stored_clip(tokens: Any, grid: Sequence[int], mask: bytes | None = None,
                positions: Any | None = None) -> StoredClip:
    """Check and normalize one clip: tokens (N,) ids; grid (t, h, w); and either mask (packed keep
    bits) or positions ((N, 3) t, h, w of each token). Neither: every position is kept."""
    ids = np.asarray(tokens.cpu() if isinstance(tokens, torch.Tensor) else tokens).astype(np.int64).reshape(-1)
    shape = tuple(int(v) for v in (grid.tolist() if isinstance(grid, torch.Tensor) else grid))
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"grid must be three positive ints (t, h, w), got {shape}")
    if mask is not None and positions is not None:
        raise ValueError("give mask or positions, not both")
    if mask is not None:
        if len(mask) != mask_nbytes(shape):
            raise ValueError(f"mask has {len(mask)} bytes, grid {shape} needs {mask_nbytes(shape)}")
        if popcount(mask) != ids.size:
            raise ValueError(f"mask keeps {popcount(mask)} positions but there are {ids.size} tokens")
        keep = unpack_mask(mask, shape)
    elif positions is not None:
        pos = np.asarray(positions.cpu() if isinstance(positions, torch.Tensor) else positions).astype(np.int64)
        if pos.shape != (ids.size, 3):
            raise ValueError(f"positions must be ({ids.size}, 3) for {ids.size} tokens, got {pos.shape}")
        if ids.size and ((pos < 0).any() or (pos >= np.asarray(shape)).any()):
            raise ValueError(f"positions must lie inside the grid {shape}")
        keep = np.zeros(shape, dtype=bool)
        keep[pos[:, 0], pos[:, 1], pos[:, 2]] = True
        if int(keep.sum()) != ids.size:
            raise ValueError("positions name one grid position more than once")
        # ids follow raster order of the kept positions: reorder a model's emission order to it
        ids = ids[np.argsort(np.ravel_multi_index(tuple(pos.T), shape), kind="stable")]
    else:
        if ids.size != int(np.prod(shape)):
            raise ValueError(f"without a mask, a grid {shape} needs {int(np.prod(shape))} tokens, got {ids.size}")
        keep = np.ones(shape, dtype=bool)
    return StoredClip(ids=ids, keep=keep)


def to_frames(video: torch.Tensor) -> np.ndarray:
    """video (3, T, H, W) or (1, 3, T, H, W) float in [-1, 1] -> (T, H, W, 3) uint8 frames."""
    if video.ndim == 5:
        if video.shape[0] != 1:
            raise ValueError(f"to_frames takes one clip, got a batch of {video.shape[0]}")
        video = video[0]
    pixels = ((video.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # (3, T, H, W)
    return pixels.permute(1, 2, 3, 0).cpu().numpy()


class Detokenizer:
    """Decodes stored or generated token clips with one checkpoint's decoder (adaptive or fixed-rate)."""

    def __init__(self, loaded: LoadedTokenizer) -> None:
        self.loaded = loaded
        self.tokenizer_id = loaded.tokenizer_id

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path | None = None, device: str | torch.device = "cpu",
                        base: str | None = None) -> Detokenizer:
        """Load a checkpoint (None: the shipped default) for decoding; base: 'KIND:ENCODER,DECODER'
        of an external base's files (None: $INFOTOK_BASE, else the paths the checkpoint records)."""
        return cls(load_tokenizer(checkpoint, device=device, base=base))

    def check_tokenizer(self, tokenizer_id: str, what: str = "the tokens") -> None:
        """Raise TokenizerMismatchError unless tokenizer_id is this checkpoint's."""
        if tokenizer_id != self.tokenizer_id:
            raise TokenizerMismatchError(
                f"{what} were written by tokenizer {tokenizer_id!r}; this checkpoint is {self.tokenizer_id!r} "
                f"({self.loaded.path}): decode with the checkpoint that wrote them")

    @torch.no_grad()
    def decode(self, tokens: Any, grid: Sequence[int], mask: bytes | None = None,
               positions: Any | None = None) -> torch.Tensor:
        """One clip (see `stored_clip`) -> video (1, 3, T, H, W) float in [-1, 1]."""
        return self.decode_clips([stored_clip(tokens, grid, mask, positions)])

    def decode_rows(self, rows: Sequence[Mapping[str, Any]], tokenizer_id: str) -> list[torch.Tensor]:
        """Dataset rows (dicts with tokens, mask, grid_t, grid_h, grid_w) of a dataset whose manifest
        names tokenizer_id -> one (1, 3, T, H, W) video per row, in order."""
        self.check_tokenizer(tokenizer_id, "the dataset's tokens")
        clips = [stored_clip(r["tokens"], (r["grid_t"], r["grid_h"], r["grid_w"]), mask=r["mask"]) for r in rows]
        return self._decode_each(clips)

    def decode_batch(self, batch: Mapping[str, Any], tokenizer_id: str) -> list[torch.Tensor]:
        """A loader batch of `clips` mode (lists `tokens`, `positions`, `grid`) -> one video per clip."""
        self.check_tokenizer(tokenizer_id, "the dataset's tokens")
        clips = [stored_clip(t, g, positions=p) for t, p, g in zip(batch["tokens"], batch["positions"], batch["grid"])]
        return self._decode_each(clips)

    def _decode_each(self, clips: list[StoredClip]) -> list[torch.Tensor]:
        # one decoder call per grid shape (clips of a dataset mostly share one)
        out: list[torch.Tensor | None] = [None] * len(clips)
        by_grid: dict[tuple[int, int, int], list[int]] = {}
        for i, clip in enumerate(clips):
            by_grid.setdefault(clip.grid, []).append(i)
        for members in by_grid.values():
            video = self.decode_clips([clips[i] for i in members])
            for j, i in enumerate(members):
                out[i] = video[j:j + 1]
        return [v for v in out if v is not None]

    @torch.no_grad()
    def decode_clips(self, clips: Sequence[StoredClip]) -> torch.Tensor:
        """Clips sharing one grid -> video (B, 3, T, H, W) float clamped to [-1, 1]."""
        grids = {c.grid for c in clips}
        if len(grids) != 1:
            raise ValueError(f"clips of one decode call must share a grid, got {sorted(grids)}")
        keep = np.stack([c.keep for c in clips])  # (B, t, h, w)
        adaptive = self.loaded.adaptive
        if adaptive is not None:
            return adaptive.decode_kept(keep, [c.ids for c in clips])
        if not keep.all():
            raise ValueError(f"checkpoint {self.loaded.path} is fixed-rate: it decodes full grids only")
        model = self.loaded.model
        device = next(model.parameters()).device
        return model.decode_indices(torch.from_numpy(np.stack([c.ids.reshape(c.grid) for c in clips])).to(device))
