"""One entry point for the pipeline: load any tokenizer checkpoint and tokenize clips.

`load_clip_tokenizer` returns an object with `tokenizer_id`, `expected_info` and
`tokenize(video, beta, expected_info) -> list[ClipTokenization]`, whatever the checkpoint
holds. A fixed-rate checkpoint keeps every token (rate 1, full mask); `info` is still the
router's information estimate (mean L1 reconstruction error pooled on the token grid).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from schemas.mask import pack_mask
from tokenizer.checkpoint import load_tokenizer
from tokenizer.model import VideoTokenizer


@dataclass(frozen=True)
class ClipTokenization:
    """tokens: (N,) uint16 kept ids in raster order of kept positions; mask: packed keep bits
    (little bit order, raster t,h,w); grid: (t, h, w); rate = N / (t*h*w); info: I(x)."""

    tokens: np.ndarray
    mask: bytes
    grid: tuple[int, int, int]
    rate: float
    info: float


class FixedRateClipTokenizer:
    """Every token kept. video: (B, 3, T, H, W) in [-1, 1]."""

    def __init__(self, model: VideoTokenizer, tokenizer_id: str) -> None:
        self.model = model
        self.tokenizer_id = tokenizer_id
        self.expected_info = 1.0  # unused: rate is always 1

    @torch.no_grad()
    def tokenize(self, video: torch.Tensor, beta: float, expected_info: float | None = None) -> list[ClipTokenization]:
        enc = self.model.encode(video)
        err = (self.model.decode(enc.codes).float().clamp(-1, 1) - video.float()).abs()  # (B, 3, T, H, W)
        # causal pooling: latent frame 0 <- pixel frame 0; latent frame j <- pixel frames 4(j-1)+1..4j
        first, rest = err[:, :, :1], err[:, :, 1:]
        b, c, t_rest, h, w = rest.shape
        pooled = [first.mean(dim=(1, 2))]
        if t_rest:
            pooled_rest = rest.reshape(b, c, t_rest // 4, 4, h, w).mean(dim=(1, 3))
            pooled.append(pooled_rest)
        per_frame = torch.cat([p if p.ndim == 4 else p.unsqueeze(1) for p in pooled], dim=1)  # (B, t, H, W)
        scores = torch.nn.functional.avg_pool2d(per_frame, 8)  # (B, t, h, w)
        out = []
        ids = enc.indices.cpu().numpy()
        for i in range(video.shape[0]):
            grid = tuple(int(v) for v in ids[i].shape)
            keep = np.ones(grid, dtype=bool)
            out.append(ClipTokenization(tokens=ids[i].reshape(-1).astype(np.uint16), mask=pack_mask(keep),
                                        grid=grid, rate=1.0, info=float(scores[i].mean())))
        return out


def load_clip_tokenizer(checkpoint: str | Path | None, device: torch.device | str = "cpu") -> FixedRateClipTokenizer:
    """Load a checkpoint (None: the shipped default) onto device, ready to tokenize."""
    loaded = load_tokenizer(checkpoint, device=device)
    return FixedRateClipTokenizer(loaded.model, loaded.tokenizer_id)
