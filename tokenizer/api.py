"""One entry point for the pipeline: load any tokenizer checkpoint and tokenize clips.

`load_clip_tokenizer` returns an object with `tokenizer_id`, `router`, `expected_info` and
`tokenize(video, beta, expected_info) -> list[ClipTokenization]`, whatever the checkpoint
holds. An adaptive checkpoint routes with the router it was loaded with (`expected_info` is
that router's E[signal]); a fixed-rate checkpoint keeps every token (rate 1, full mask) and
`info` is still the ELBO information estimate (mean L1 reconstruction error pooled on the
token grid).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from schemas.mask import pack_mask
from tokenizer.adaptive.routers.registry import DEFAULT_ROUTER, PAPER_ROUTER, check_router_name
from tokenizer.adaptive.model import AdaptiveTokenizer
from tokenizer.checkpoint import load_tokenizer
from tokenizer.nn.model import VideoTokenizer
from tokenizer.adaptive.router import token_scores

if TYPE_CHECKING:
    from tokenizer.adaptive.curve_fit import CorpusFit


@dataclass(frozen=True)
class ClipTokenization:
    """tokens: (N,) uint16 kept ids in raster order of kept positions; mask: packed keep bits
    (little bit order, raster t,h,w); grid: (t, h, w); rate: the router's budget fraction;
    info: the router's signal (I(x), s or s^)."""

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
        self.router = PAPER_ROUTER  # info is I(x); no budget is ever applied
        self.expected_info = 1.0  # unused: rate is always 1

    @property
    def passes(self) -> tuple[float, float, float]:
        """(encoder, decoder, compressor) passes per clip: the decoder pass measures I(x)."""
        return (1.0, 1.0, 0.0)

    @torch.no_grad()
    def tokenize(self, video: torch.Tensor, beta: float, expected_info: float | None = None) -> list[ClipTokenization]:
        enc = self.model.encode(video)
        scores = token_scores(self.model.decode(enc.codes), video)  # (B, t, h, w)
        out = []
        ids = enc.indices.cpu().numpy()
        for i in range(video.shape[0]):
            grid = tuple(int(v) for v in ids[i].shape)
            keep = np.ones(grid, dtype=bool)
            out.append(ClipTokenization(tokens=ids[i].reshape(-1).astype(np.uint16), mask=pack_mask(keep),
                                        grid=grid, rate=1.0, info=float(scores[i].mean())))
        return out


class AdaptiveClipTokenizer:
    """InfoTok: the router picks each clip's budget from beta and its E[signal]. video: (B, 3, T, H, W) in [-1, 1].

    expected_info is the router's E[signal] in the checkpoint, or None when the checkpoint has
    none (then every `tokenize` call must pass one, e.g. from `infotok calibrate`).
    """

    def __init__(self, model: AdaptiveTokenizer, tokenizer_id: str, router: str = DEFAULT_ROUTER) -> None:
        model.check_router_ready(router)
        self.model = model
        self.tokenizer_id = tokenizer_id
        self.router = router
        mean = model.mean_signal(router)
        self.expected_info: float | None = mean if math.isfinite(mean) and mean > 0 else None

    @property
    def passes(self) -> tuple[float, float, float]:
        """(encoder, decoder, compressor) passes per clip of its router, the final compressor pass included."""
        from tokenizer.adaptive.routers.registry import get_router

        return tuple(float(p) for p in get_router(self.router).passes(self.model))  # type: ignore[return-value]

    @torch.no_grad()
    def tokenize(self, video: torch.Tensor, beta: float, expected_info: float | None = None) -> list[ClipTokenization]:
        # None: the checkpoint's E[signal] (the model refuses, naming the router, when there is none)
        out = self.model.tokenize(video, beta, mean_info=expected_info, router=self.router)
        return [ClipTokenization(tokens=t.ids, mask=t.mask, grid=tuple(int(v) for v in t.grid), rate=float(t.rate),
                                 info=float(t.info)) for t in out]


ClipTokenizer = FixedRateClipTokenizer | AdaptiveClipTokenizer


def load_clip_tokenizer(checkpoint: str | Path | None, device: torch.device | str = "cpu",
                        router: str = DEFAULT_ROUTER, fit: CorpusFit | None = None) -> ClipTokenizer:
    """Load a checkpoint (None: the shipped default) onto device, ready to tokenize.

    An adaptive (InfoTok) checkpoint gives per-clip budgets with `router`, and with `fit` (the
    router's per-corpus fit, `Router.use_fit`) when given; a fixed-rate one keeps every token (the
    router is then unused, and a fit refused)."""
    from tokenizer.adaptive.routers.registry import get_router

    check_router_name(router)
    loaded = load_tokenizer(checkpoint, device=device)
    if loaded.adaptive is not None:
        if fit is not None:  # before the tokenizer reads the router's E[signal]: the fit sets it
            get_router(router).use_fit(loaded.adaptive, fit)
        return AdaptiveClipTokenizer(loaded.adaptive, loaded.tokenizer_id, router)
    if fit is not None:
        raise ValueError(f"checkpoint {loaded.path} is fixed-rate ({loaded.tokenizer_id}): it has no router to "
                         f"use a {fit.router} fit with")
    return FixedRateClipTokenizer(loaded.model, loaded.tokenizer_id)
