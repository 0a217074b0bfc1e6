"""A token dataset's kept tokens in memory, and the held-out split by video.

The probe reads a dataset once into flat arrays (`ClipCorpus`): every kept id, its (t, h, w)
latent position, and per clip its offsets, grid and pixel count. The split is a pure function
of each clip's `video_id` (a hash, never the row order), so all clips of a video land on the
same side, a dataset grown by more videos keeps its old videos on their side, and two datasets
of the same videos (another router, another beta) are split alike.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

SPLIT_SALT = b"infotok-lm-probe-split-v1"
VALIDATION_SALT = b"infotok-lm-probe-validation-v1"  # the early-stopping split of the training videos


@dataclass(frozen=True)
class ClipCorpus:
    """R clips, N kept tokens. Clip r owns tokens[offsets[r]:offsets[r+1]] (raster order of its
    kept cells, as stored) and positions[...] (int16 (t, h, w) of each).

    tokens: (N,) int64 code ids in [0, codebook); positions: (N, 3) int16; offsets: (R+1,) int64;
    grids: (R, 3) int64 (t, h, w); pixels: (R,) int64 frame_count * height * width;
    video_ids: (R,) object (str).
    """

    tokens: np.ndarray
    positions: np.ndarray
    offsets: np.ndarray
    grids: np.ndarray
    pixels: np.ndarray
    video_ids: np.ndarray

    def __post_init__(self) -> None:
        r = len(self.offsets) - 1
        assert self.grids.shape == (r, 3) and self.pixels.shape == (r,) and self.video_ids.shape == (r,)
        assert self.positions.shape == (len(self.tokens), 3) and int(self.offsets[-1]) == len(self.tokens)

    @property
    def n_clips(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    @property
    def n_videos(self) -> int:
        return len(set(self.video_ids.tolist()))

    @property
    def kept(self) -> np.ndarray:
        """(R,) int64 kept tokens per clip."""
        return np.diff(self.offsets)

    @property
    def cells(self) -> np.ndarray:
        """(R,) int64 t*h*w cells per clip."""
        return np.prod(self.grids, axis=1)

    def subset(self, rows: np.ndarray) -> ClipCorpus:
        """The clips at `rows` (sorted ascending, unique), in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        n = self.kept[rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(n, out=offsets[1:])
        # every kept token of the chosen rows, as one index array: its row's old start, shifted
        take = np.repeat(self.offsets[rows] - offsets[:-1], n) + np.arange(int(offsets[-1]), dtype=np.int64)
        return ClipCorpus(tokens=self.tokens[take], positions=self.positions[take], offsets=offsets,
                          grids=self.grids[rows], pixels=self.pixels[rows], video_ids=self.video_ids[rows])


def video_hash(video_id: str, salt: bytes = SPLIT_SALT) -> float:
    """A video's place in [0, 1): the first 8 bytes of blake2b(salt + id), as a fraction."""
    digest = hashlib.blake2b(salt + video_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def heldout_rows(video_ids: np.ndarray, fraction: float) -> np.ndarray:
    """(R,) bool: the clips whose video hashes below `fraction` (held out)."""
    if not 0 < fraction < 1:
        raise ValueError(f"heldout fraction must be in (0, 1), got {fraction}")
    place = {v: video_hash(v) for v in set(video_ids.tolist())}
    return np.array([place[v] < fraction for v in video_ids.tolist()], dtype=bool)


def split_by_video(corpus: ClipCorpus, fraction: float) -> tuple[ClipCorpus, ClipCorpus]:
    """(train, heldout); ValueError naming the counts when either side would be empty."""
    held = heldout_rows(corpus.video_ids, fraction)
    n_held = len(set(corpus.video_ids[held].tolist()))
    if n_held == 0 or n_held == corpus.n_videos:
        side = "none" if n_held == 0 else "all"
        raise ValueError(f"{corpus.n_videos} video(s) with heldout fraction {fraction}: the split by video hash "
                         f"holds {side} of them out; give more videos or another --heldout-fraction")
    return corpus.subset(np.flatnonzero(~held)), corpus.subset(np.flatnonzero(held))


def validation_split(train: ClipCorpus, fraction: float) -> tuple[ClipCorpus, ClipCorpus | None]:
    """(fit, validation) of the training videos, by a hash of video_id salted apart from the
    held-out split: the videos placed below `fraction`, at least one; (train, None) when fraction
    is 0 or fewer than 3 training videos leave nothing to spare."""
    if fraction <= 0 or train.n_videos < 3:
        return train, None
    place = {v: video_hash(v, VALIDATION_SALT) for v in set(train.video_ids.tolist())}
    chosen = {v for v, p in place.items() if p < fraction} or {min(place, key=place.__getitem__)}
    if len(chosen) == len(place):
        chosen.discard(max(place, key=place.__getitem__))
    val = np.array([v in chosen for v in train.video_ids.tolist()], dtype=bool)
    return train.subset(np.flatnonzero(~val)), train.subset(np.flatnonzero(val))


def sample_rows(video_ids: np.ndarray, clip_index: np.ndarray, max_clips: int) -> np.ndarray:
    """Sorted row indices of at most max_clips clips, chosen by a hash of (video_id, clip_index)
    (deterministic, independent of row order)."""
    if max_clips < 1:
        raise ValueError(f"max_clips must be >= 1, got {max_clips}")
    if len(video_ids) <= max_clips:
        return np.arange(len(video_ids), dtype=np.int64)
    keys = np.array([video_hash(f"{v}#{c}") for v, c in zip(video_ids.tolist(), clip_index.tolist())])
    return np.sort(np.argsort(keys, kind="stable")[:max_clips]).astype(np.int64)
