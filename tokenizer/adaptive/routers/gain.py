"""The `gain` router: a clip's budget by the measured slope of its quality curve.

signal = s, measured with one probe at GAIN_PROBE_RATE: s = max(0, PSNR(1) - PSNR(r_lo)) / ln(1/r_lo),
where PSNR(1) comes from the adaptive path with every token kept (that pass's error also gives
the token scores) and PSNR(r_lo) from the same path keeping the top r_lo. If PSNR(r) = P + s ln r,
the split that maximises the mean PSNR at a fixed total gives r proportional to s (equal marginal
gains, the codec rule), so r_x = clip(beta * s / E[s], 1/16, 1) buys quality where it rises; a clip
whose error cannot fall (s = 0) gets the floor. Cost per clip besides the encode and the final
compressor pass: two compressor + decoder passes.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

from tokenizer.adaptive.routers.base import Router, Scored

if TYPE_CHECKING:
    import torch

    from tokenizer.adaptive.model import AdaptiveTokenizer
    from tokenizer.nn.model import Encoding

# the gain router's probe rate, chosen by the sweep of benchmarks/bench_router.py (docs/routers.md)
GAIN_PROBE_RATE = 0.0625


def gain_slope(psnr_full: torch.Tensor, psnr_probe: torch.Tensor, probe_rate: float) -> torch.Tensor:
    """s = max(0, PSNR(1) - PSNR(r_lo)) / ln(1/r_lo): (B,), (B,) dB -> (B,) dB per unit of ln r."""
    if not 0.0 < probe_rate < 1.0:
        raise ValueError(f"probe rate must be in (0, 1), got {probe_rate!r}")
    return (psnr_full.double() - psnr_probe.double()).clamp_min(0.0).float() / math.log(1.0 / probe_rate)


def full_rate_pass(model: AdaptiveTokenizer, video: torch.Tensor, encoding: Encoding
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The full rate through the adaptive path (every token kept) -> (token scores (B, t, h, w),
    PSNR (B,)), so that PSNR(1) and a probe's PSNR come from the same compressor and decoder and
    their difference is the curve's."""
    import torch

    from tokenizer.adaptive.router import token_scores
    from tokenizer.video import psnr

    keep = torch.ones(encoding.indices.shape, dtype=torch.bool, device=video.device)
    recon = model(video, keep, encoding=encoding).reconstruction  # (B, 3, T, H, W)
    return token_scores(recon, video), psnr(recon.float().clamp(-1, 1), video.float())


class GainRouter(Router):
    name: ClassVar[str] = "gain"
    signal_name: ClassVar[str] = "E[s]"
    how_to_set: ClassVar[str] = "run `infotok calibrate --router gain` (or `infotok train --stage router`)"
    mean_buffers: ClassVar[tuple[str, str] | None] = ("mean_gain", "gain_count")

    def score(self, model: AdaptiveTokenizer, video: torch.Tensor, encoding: Encoding) -> Scored:
        scores, full = full_rate_pass(model, video, encoding)
        probe = model.probe_psnr(video, encoding, scores, GAIN_PROBE_RATE)
        return Scored(encoding=encoding, scores=scores, signal=gain_slope(full, probe, GAIN_PROBE_RATE),
                      router=self.name)

    def passes(self, model: AdaptiveTokenizer) -> tuple[float, float, float]:
        return (1, 2, 3)
