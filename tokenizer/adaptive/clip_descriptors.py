"""Clip descriptors: cheap numbers from which the `latent` router predicts a clip's gain slope.

The gain slope s = (PSNR(1) - PSNR(1/16)) / ln 16 is how much of a clip's quality sits in the
tokens a low budget drops. A learned head pooled over the encoder's output predicted it poorly
on footage unlike its training clips (held-out Spearman 0.66 on `mixed`). These descriptors measure the same thing directly, with crude codecs
whose answers are in the target's own unit (dB), plus the spread of the encoder's latent; a
linear fit on them (`tokenizer.adaptive.latent_router.SlopeRegressor`) generalises (Spearman
0.85 on 48 `mixed` clips, 0.91 on 48 `procedural` ones; `python benchmarks/bench_router.py --clips 48`).

All on the luma of video (B, 3, T, H, W) in [-1, 1] (T = 1 + 4k) and the bounded latent (B, t, h, w, D):
- `spatial_2` .. `spatial_16`: PSNR of the frames against themselves averaged over s x s blocks
  (the mean within-block variance, from pooled first and second moments): how much detail lies
  above each scale.
- on the frames at half resolution: `hold_4`, PSNR of the clip with each latent frame's first
  pixel frame held over its 4 frames (motion inside one latent frame); `hold_clip`, the first
  frame held over the clip; `hold_clip_4`, the first frame at a quarter of the resolution held
  over the clip (a clip described by a sixteenth of one frame's tokens, about what the 1/16
  floor keeps).
- `latent_dt`, `latent_dh`, `latent_dw`: log mean absolute difference of the latent between
  neighbouring latent frames, rows and columns; `latent_spread`: log mean over channels of the
  latent's standard deviation over positions.
Cost: one pass over the pixels and a few over a quarter of them (`benchmarks/bench_adaptive.py`
times it with the head).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tokenizer.config import TEMPORAL_COMPRESSION

DESCRIPTOR_NAMES: tuple[str, ...] = (
    "spatial_2", "spatial_4", "spatial_8", "spatial_16", "hold_4", "hold_clip", "hold_clip_4",
    "latent_dt", "latent_dh", "latent_dw", "latent_spread",
)  # fmt: skip
_LOG_EPS = 1e-4
_MIN_MSE = 1e-8  # PSNR caps at ~66 dB for identical frames


def _psnr(mse: torch.Tensor) -> torch.Tensor:
    """PSNR (B,) in dB of mean squared errors (B,) of signals in [-1, 1] (peak-to-peak 2)."""
    return 10.0 * torch.log10(4.0 / mse.clamp_min(_MIN_MSE))


def _pool(x: torch.Tensor) -> torch.Tensor:
    """(N, H, W) averaged over 2 x 2 blocks (an odd last row or column is dropped; a side of 1 stays).
    Strided sums: several times faster than avg_pool2d on one channel on the CPU."""
    if x.shape[1] > 1:
        x = torch.add(x[:, 0 : x.shape[1] - 1 : 2], x[:, 1::2]).mul_(0.5)
    if x.shape[2] > 1:
        x = torch.add(x[:, :, 0 : x.shape[2] - 1 : 2], x[:, :, 1::2]).mul_(0.5)
    return x


def _mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared difference per clip: (B, ...) tensors broadcast together -> (B,)."""
    return (a - b).pow(2).flatten(1).mean(1)


def _log_mean_abs_diff(x: torch.Tensor, dim: int) -> torch.Tensor:
    """log(mean |x[i+1] - x[i]| along dim + eps) per clip (B,); 0 difference when dim has one entry."""
    if x.shape[dim] < 2:
        return torch.full((x.shape[0],), float(torch.log(torch.tensor(_LOG_EPS))), device=x.device)
    return torch.log(x.diff(dim=dim).abs().flatten(1).mean(1) + _LOG_EPS)


@dataclass(frozen=True)
class ClipDescription:
    """descriptors: (B, len(DESCRIPTOR_NAMES)) float32; detail: (B, t, h, w) float32, the log
    variance of the luma in each token's 8 x 8 block, averaged over the token's pixel frames
    (latent frame 0 <- pixel frame 0, latent frame j <- pixel frames 4(j-1)+1 .. 4j)."""

    descriptors: torch.Tensor
    detail: torch.Tensor


def describe_clip(video: torch.Tensor, bounded: torch.Tensor) -> ClipDescription:
    """video (B, 3, T, H, W) in [-1, 1] (H, W multiples of 8), bounded latent (B, t, h, w, D) ->
    the clip descriptors and the per-token detail (one pass over the pixels serves both)."""
    b, _, t_pix, hp, wp = video.shape
    v = video.float()
    luma = (v[:, 0] * 0.299).add_(v[:, 1], alpha=0.587).add_(v[:, 2], alpha=0.114).reshape(b * t_pix, hp, wp)
    mean, square = luma, luma * luma
    out, levels = [], []
    for _ in range(4):  # block sizes 2, 4, 8, 16: within-block variance = E[x^2] - E[x]^2
        mean, square = _pool(mean), _pool(square)
        variance = square - mean * mean  # >= 0 but for rounding
        levels.append((mean, variance))
        out.append(_psnr(variance.reshape(b, -1).mean(1).clamp_min(0.0)))
    g = TEMPORAL_COMPRESSION
    block = levels[2][1].clamp_min(0.0).reshape(b, t_pix, *levels[2][1].shape[-2:])  # (B, T, H/8, W/8): 8 x 8
    block = torch.cat([block[:, :1].expand(b, g - 1, *block.shape[2:]), block], dim=1)  # frame 0 alone
    detail = torch.log(block.reshape(b, -1, g, *block.shape[2:]).mean(2) + _LOG_EPS)  # (B, t, h, w)
    half = levels[0][0].reshape(b, t_pix, *levels[0][0].shape[-2:])  # (B, T, H/2, W/2)
    rest = half[:, 1:].reshape(b, (t_pix - 1) // g, g, *half.shape[-2:])  # pixel frames 1.. in groups of g
    held = _mse(rest, rest[:, :, :1]) * (t_pix - 1) / t_pix if t_pix > 1 else half.new_zeros(b)
    out.append(_psnr(held))  # frame 0 holds itself exactly
    out.append(_psnr(_mse(half, half[:, :1])))
    first = half[:, 0]  # (B, H/2, W/2), then at a quarter of the full resolution, held over the clip
    low = F.interpolate(_pool(first)[:, None], size=first.shape[-2:], mode="nearest")  # (B, 1, H/2, W/2)
    out.append(_psnr(_mse(half, low)))
    lat = bounded.float()
    out.extend(_log_mean_abs_diff(lat, d) for d in (1, 2, 3))
    out.append(torch.log(lat.flatten(1, 3).std(1, unbiased=False).mean(1) + _LOG_EPS))
    return ClipDescription(descriptors=torch.stack(out, dim=1), detail=detail)


def clip_descriptors(video: torch.Tensor, bounded: torch.Tensor) -> torch.Tensor:
    """video (B, 3, T, H, W) in [-1, 1], bounded latent (B, t, h, w, D) -> (B, len(DESCRIPTOR_NAMES)) float32."""
    return describe_clip(video, bounded).descriptors
