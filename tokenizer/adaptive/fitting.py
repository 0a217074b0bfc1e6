"""Fit a router on a sample of a corpus (`Router.fit_corpus`): what a job's `--fit-router N` and
`infotok eval --fit-clips N` run. The sample's clips are uint8 (T, H, W, 3) of one shape; a sample
under `FEW_FIT_CLIPS` is fitted with a warning, one under `MIN_FIT_CLIPS` refused."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from tokenizer.adaptive.curve_fit import FEW_FIT_CLIPS, MIN_FIT_CLIPS, CorpusFit, FitTooSmallError
from tokenizer.adaptive.model import AdaptiveTokenizer
from tokenizer.adaptive.routers.registry import get_router

logger = logging.getLogger(__name__)


def check_fit_size(n_clips: int, what: str = "the fit's sample") -> None:
    """Refuse a sample under MIN_FIT_CLIPS clips; warn under FEW_FIT_CLIPS."""
    if n_clips < MIN_FIT_CLIPS:
        raise FitTooSmallError(f"{what} has {n_clips} clips; a router fit needs at least {MIN_FIT_CLIPS} "
                               f"(about {FEW_FIT_CLIPS} or more for a fit worth its cost)")
    if n_clips < FEW_FIT_CLIPS:
        logger.warning("%s has only %d clips: the router fit will be rough (%d or more are advised)", what,
                       n_clips, FEW_FIT_CLIPS)


@torch.no_grad()
def fit_router(model: AdaptiveTokenizer, router: str, clips: Sequence[np.ndarray], batch_size: int = 8) -> CorpusFit:
    """Fit `router` (one with `fits_corpus`) on the sample clips, on the model's device in float32."""
    from tokenizer.video import frames_to_tensor

    r = get_router(router)
    if not r.fits_corpus:
        r.fit_corpus(model, [])  # raises, naming the router
    check_fit_size(len(clips))
    shapes = {c.shape for c in clips}
    if len(shapes) != 1:
        raise ValueError(f"the fit's sample clips must share one shape, got {sorted(shapes)}")
    model.check_router_ready(router, calibrated=False)
    model.eval()
    device = model.mean_info.device
    videos = [frames_to_tensor(np.stack(clips[i : i + batch_size])).to(device) for i in range(0, len(clips), batch_size)]
    fit = r.fit_corpus(model, videos)
    logger.info("%s", fit.describe())
    return fit
