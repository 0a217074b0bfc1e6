"""Routers: which tokens a clip keeps (per-token scores, top N) and how many (its budget).

Four kinds (`ROUTERS`); three share one budget formula: r_x = clip(beta * signal(x) / E[signal], 1/16, 1),
N_x = round(r_x * t*h*w) (round half up, at least 1), keep the N_x highest-scoring tokens.
- `elbo`, the paper's rule (InfoTok, arXiv 2512.16975), unchanged: signal = I(x), the mean
  token score. It sets the budget by the *level* of a clip's error.
- `gain`: signal = s, the slope of the clip's PSNR curve, measured with one probe at
  GAIN_PROBE_RATE: s = max(0, PSNR(1) - PSNR(r_lo)) / ln(1/r_lo), where PSNR(1) comes from the
  adaptive path with every token kept (that pass's error also gives the token scores) and
  PSNR(r_lo) from the same path keeping the top r_lo. If PSNR(r) = P + s ln r,
  the split that maximises the mean PSNR at a fixed total gives r proportional to s (equal
  marginal gains, the codec rule), so the budget buys quality where it rises; a clip whose
  error cannot fall (s = 0) gets the floor.
- `gain2`: the clip's curve measured with several probes, each clip's rate the optimum of
  PSNR(r) - lam * r on it (`tokenizer.adaptive.gain2`, its own budget rule).
- `latent`: a small head on the encoder's output predicts the token scores, and a linear fit on
  clip descriptors (crude codecs on the pixels, the latent's spread) predicts s
  (`tokenizer.adaptive.latent_router`, `tokenizer.adaptive.clip_descriptors`): no decoder pass at all.
All three keep tokens by the same kind of score: the full-rate error (elbo: of the base
decode; gain: of the adaptive path with every token kept) or its prediction (latent).
Cost per clip besides the encode and the final compressor pass: elbo one decode; gain two
compressor + decoder passes; latent one pass of a small head and the descriptors.

The score of a token is the L1 reconstruction error of one full-rate decoder pass, pooled
onto the token grid with the causal frame alignment of the tokenizer: latent frame 0 <-
pixel frame 0, latent frame j <- pixel frames 4(j-1)+1 .. 4j, mean over each 8x8 block.
I(x) = mean of the scores; r_x = clip(beta * I(x) / E[I], 1/16, 1); N_x = round(r_x * t*h*w)
(round half up, at least 1); the N_x tokens with the highest scores are kept (ties go to
the earlier raster position).
"""

from __future__ import annotations

import math

import torch

from schemas.routers import SIGNAL_NAMES
from tokenizer.config import SPATIAL_COMPRESSION, TEMPORAL_COMPRESSION

MIN_RATE = 1.0 / 16.0
MAX_RATE = 1.0
# the gain router's probe rate, chosen by the sweep of benchmarks/bench_router.py (see README)
GAIN_PROBE_RATE = 0.0625


_HOW_TO_SET = {
    "elbo": "train the adaptive stage or run `infotok calibrate --router elbo`",
    "gain": "run `infotok calibrate --router gain` (or `infotok train --stage router`)",
    "gain2": "run `infotok calibrate --router gain2 --write-checkpoint NEW`",
    "latent": "train the head with `infotok train --stage router` or run `infotok calibrate --router latent`",
}


def check_beta(beta: float) -> float:
    """Return beta as a float; raise ValueError unless 0 < beta <= 1 (NaN is refused)."""
    b = float(beta)
    if not (math.isfinite(b) and 0.0 < b <= 1.0):
        raise ValueError(f"beta must be a finite number in (0, 1], got {beta!r}")
    return b


def check_mean_info(mean_info: float, router: str = "elbo") -> float:
    """E[signal] of a router as a float; raise ValueError unless finite and > 0."""
    m = float(mean_info)
    if not (math.isfinite(m) and m > 0.0):
        raise ValueError(
            f"{SIGNAL_NAMES.get(router, 'E[signal]')} of the {router} router must be a finite positive number, "
            f"got {mean_info!r}; {_HOW_TO_SET.get(router, 'run `infotok calibrate`')}"
        )
    return m


def gain_slope(psnr_full: torch.Tensor, psnr_probe: torch.Tensor, probe_rate: float) -> torch.Tensor:
    """s = max(0, PSNR(1) - PSNR(r_lo)) / ln(1/r_lo): (B,), (B,) dB -> (B,) dB per unit of ln r."""
    if not 0.0 < probe_rate < 1.0:
        raise ValueError(f"probe rate must be in (0, 1), got {probe_rate!r}")
    return (psnr_full.double() - psnr_probe.double()).clamp_min(0.0).float() / math.log(1.0 / probe_rate)


def token_scores(reconstruction: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
    """Per-token information l: (B, 3, T, H, W) videos in [-1, 1] -> (B, t, h, w) float32 >= 0.

    The reconstruction is clamped to [-1, 1] first (the decoder output is not).
    """
    if reconstruction.shape != video.shape or video.ndim != 5:
        raise ValueError(f"reconstruction {tuple(reconstruction.shape)} and video {tuple(video.shape)} must match")
    b, _, t_pix, hp, wp = video.shape
    g, s = TEMPORAL_COMPRESSION, SPATIAL_COMPRESSION
    err = (reconstruction.float().clamp(-1, 1) - video.float()).abs().mean(1)  # (B, T, H, W)
    # frame 0 repeated g times so that latent frame 0 averages pixel frame 0 only
    err = torch.cat([err[:, :1].expand(b, g - 1, hp, wp), err], dim=1)  # (B, T+g-1, H, W)
    t = err.shape[1] // g
    pooled = err.reshape(b, t, g, hp // s, s, wp // s, s).mean(dim=(2, 4, 6))  # (B, t, h, w)
    return pooled


def clip_information(scores: torch.Tensor) -> torch.Tensor:
    """I(x): (B, t, h, w) scores -> (B,) their mean."""
    return scores.flatten(1).mean(1)


def budget_rate(info: torch.Tensor, beta: float | torch.Tensor, mean_info: float, router: str = "elbo"
                ) -> torch.Tensor:
    """r_x = clip(beta * signal(x) / E[signal], 1/16, 1): signal (B,), beta scalar or (B,) -> (B,) float."""
    m = check_mean_info(mean_info, router)
    if isinstance(beta, torch.Tensor):
        for b in beta.flatten().tolist():
            check_beta(b)
        beta_t = beta.to(info.dtype)
    else:
        beta_t = torch.tensor(check_beta(beta), dtype=info.dtype, device=info.device)
    return (beta_t * info / m).clamp(MIN_RATE, MAX_RATE)


def budget_tokens(rate: torch.Tensor, n_positions: int) -> torch.Tensor:
    """N_x = round(r_x * n) with round half up, clamped to [1, n]: rate (B,) -> (B,) int64."""
    n = torch.floor(rate.double() * n_positions + 0.5).to(torch.int64)
    return n.clamp(1, n_positions)


def top_n_mask(scores: torch.Tensor, n_keep: torch.Tensor) -> torch.Tensor:
    """Keep the n_keep[b] highest scores of each clip: (B, t, h, w), (B,) -> (B, t, h, w) bool.

    Ties are broken towards the earlier raster position (stable sort), so masks are deterministic.
    """
    b = scores.shape[0]
    flat = scores.reshape(b, -1)
    order = torch.argsort(-flat, dim=1, stable=True)  # (B, N) best first
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand(b, -1))
    return (ranks < n_keep.to(flat.device)[:, None]).reshape(scores.shape)
