"""Token-selection baselines for InfoTok (arXiv 2512.16975), run through the same adaptive
compressor / decompressor so that only the choice of kept tokens differs.

- `fixed`: every clip keeps the same number of tokens, chosen by the router's scores.
- position-only masks, no content: `raster` (prefix), `jump` (evenly strided), `random`.
  A clip's N tokens are spread evenly over its latent frames (earlier frames take the
  remainder), then placed within each frame by position only.
- `elastic`: ElasticTok-style (Yan et al., 2024) binary search per clip for the fewest
  tokens of a per-frame raster prefix whose reconstruction meets an L1 error threshold;
  every probe is one compressor + decoder pass.

Counts: `equal_split` / `apportion` turn a total token count into per-clip counts, so that a
baseline keeps exactly as many tokens over a set of clips as InfoTok did.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tokenizer.adaptive.model import AdaptiveTokenizer
from tokenizer.nn.model import Encoding

POSITION_METHODS: tuple[str, ...] = ("raster", "jump", "random")


def equal_split(total: int, n_clips: int, n_positions: int) -> list[int]:
    """Split `total` tokens over clips as evenly as possible (earlier clips take the remainder)."""
    if not 0 < n_clips <= total <= n_clips * n_positions:
        raise ValueError(f"cannot split {total} tokens over {n_clips} clips of {n_positions} positions")
    q, r = divmod(total, n_clips)
    return [q + (1 if i < r else 0) for i in range(n_clips)]


def apportion(total: int, weights: list[float], n_positions: int) -> list[int]:
    """Per-clip counts in [1, n_positions] summing to `total`, proportional to weights
    (largest remainder; capped clips hand their excess to the others)."""
    n = len(weights)
    if not 0 < n <= total <= n * n_positions:
        raise ValueError(f"cannot apportion {total} tokens over {n} clips of {n_positions} positions")
    w = np.maximum(np.asarray(weights, dtype=np.float64), 1e-12)
    counts = np.ones(n, dtype=np.int64)
    left = total - n
    while left > 0:
        room = n_positions - counts
        open_ = room > 0
        share = w * open_ / (w * open_).sum() * left
        add = np.minimum(np.floor(share).astype(np.int64), room)
        if add.sum() == 0:  # hand out the remainder one by one, largest fractional share first
            order = np.argsort(-(share - np.floor(share)) - 1e-9 * np.arange(n), kind="stable")
            for i in order:
                if left == 0:
                    break
                if room[i] > 0:
                    counts[i] += 1
                    left -= 1
                    room[i] -= 1
            continue
        counts += add
        left -= int(add.sum())
    return counts.tolist()


def frame_counts(n_keep: int, grid: tuple[int, int, int]) -> list[int]:
    """Spread n_keep tokens over the t latent frames (earlier frames take the remainder)."""
    t, h, w = grid
    q, r = divmod(n_keep, t)
    return [min(h * w, q + (1 if j < r else 0)) for j in range(t)]


def position_mask(method: str, n_keep: list[int], grid: tuple[int, int, int], seed: int = 0) -> torch.Tensor:
    """Position-only keep masks (B, t, h, w) bool for per-clip counts n_keep (B,)."""
    if method not in POSITION_METHODS:
        raise ValueError(f"unknown position-only method {method!r}; choose from {POSITION_METHODS}")
    t, h, w = grid
    hw = h * w
    keep = np.zeros((len(n_keep), t, hw), dtype=bool)
    for b, n in enumerate(n_keep):
        rng = np.random.default_rng([seed, b, n])
        for j, k in enumerate(frame_counts(n, grid)):
            if k == 0:
                continue
            if method == "raster":
                pos = np.arange(k)
            elif method == "jump":
                pos = np.floor(np.arange(k) * hw / k).astype(np.int64)  # k distinct, evenly strided
            else:
                pos = rng.choice(hw, size=k, replace=False)
            keep[b, j, pos] = True
    return torch.from_numpy(keep.reshape(len(n_keep), t, h, w))


@dataclass(frozen=True)
class ElasticSearch:
    """Result of `elastic_search`: n_keep (B,) fewest tokens meeting the threshold (n if none
    does) and probes (B,) compressor + decoder passes each clip needed."""

    n_keep: list[int]
    probes: list[int]


@torch.no_grad()
def elastic_search(model: AdaptiveTokenizer, video: torch.Tensor, encoding: Encoding, threshold: float
                   ) -> ElasticSearch:
    """Per-clip binary search over the raster-prefix token count for the fewest tokens whose
    reconstruction has mean L1 error <= threshold ([-1, 1] pixel scale).

    video: (B, 3, T, H, W) in [-1, 1]; encoding: its base encoding (reused by every probe).
    """
    grid = tuple(encoding.indices.shape[1:])
    n = int(np.prod(grid))
    b = video.shape[0]
    lo, hi = [1] * b, [n] * b
    probes = [0] * b
    while any(lo[i] < hi[i] for i in range(b)):
        mids = [(lo[i] + hi[i]) // 2 if lo[i] < hi[i] else hi[i] for i in range(b)]
        keep = position_mask("raster", mids, grid).to(video.device)
        y = model(video, keep, encoding=encoding).reconstruction.clamp(-1, 1)
        err = (y - video).abs().flatten(1).mean(1).tolist()  # (B,)
        for i in range(b):
            if lo[i] >= hi[i]:
                continue
            probes[i] += 1
            if err[i] <= threshold:
                hi[i] = mids[i]
            else:
                lo[i] = mids[i] + 1
    return ElasticSearch(n_keep=hi, probes=probes)
