"""What every router shares: the token scores of a full-rate pass, the budget formula, top N.

The routers themselves (`elbo`, the paper's rule; `gain`; `gain2`; `latent`) are in
`tokenizer.adaptive.routers`, each one module, named only by `tokenizer.adaptive.routers.registry`.
Three of them share InfoTok's budget formula (arXiv 2512.16975): r_x = clip(beta * signal(x) / E[signal],
1/16, 1) (`clip_rate`); N_x = round(r_x * t*h*w) (round half up, at least 1), and keep the N_x
highest-scoring tokens (ties go to the earlier raster position).

The score of a token is the L1 reconstruction error of one full-rate decoder pass, pooled
onto the token grid with the causal frame alignment of the tokenizer: latent frame 0 <-
pixel frame 0, latent frame j <- pixel frames 4(j-1)+1 .. 4j, mean over each 8x8 block.
I(x) = mean of the scores (the elbo router's signal).
"""

from __future__ import annotations

import math

import torch

from tokenizer.config import SPATIAL_COMPRESSION, TEMPORAL_COMPRESSION

MIN_RATE = 1.0 / 16.0
MAX_RATE = 1.0


def check_beta(beta: float) -> float:
    """Return beta as a float; raise ValueError unless 0 < beta <= 1 (NaN is refused)."""
    b = float(beta)
    if not (math.isfinite(b) and 0.0 < b <= 1.0):
        raise ValueError(f"beta must be a finite number in (0, 1], got {beta!r}")
    return b


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


def clip_rate(info: torch.Tensor, beta: float | torch.Tensor, mean_info: float) -> torch.Tensor:
    """r_x = clip(beta * signal(x) / E[signal], 1/16, 1): signal (B,), beta scalar or (B,), E[signal]
    finite > 0 -> (B,) float. (`routers.registry.budget_rate` checks E[signal] with the router's message.)"""
    m = float(mean_info)
    if not (math.isfinite(m) and m > 0.0):
        raise ValueError(f"E[signal] must be a finite positive number, got {mean_info!r}; run `infotok calibrate`")
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
