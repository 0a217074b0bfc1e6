"""Conversions between uint8 frames and the model's float layout, and the PSNR between two videos."""

from __future__ import annotations

import numpy as np
import torch


def frames_to_tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 frames (T, H, W, 3) or (B, T, H, W, 3) -> float video (B, 3, T, H, W) in [-1, 1]."""
    x = torch.as_tensor(frames)
    if x.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8, got {x.dtype}")
    if x.ndim == 4:
        x = x.unsqueeze(0)
    if x.ndim != 5 or x.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3) or (B, T, H, W, 3), got {tuple(x.shape)}")
    return x.permute(0, 4, 1, 2, 3).to(torch.float32).div(127.5).sub(1.0)


def tensor_to_frames(video: torch.Tensor) -> np.ndarray:
    """float video (B, 3, T, H, W) in [-1, 1] -> uint8 frames (B, T, H, W, 3) (rounded, clamped)."""
    if video.ndim != 5 or video.shape[1] != 3:
        raise ValueError(f"video must be (B, 3, T, H, W), got {tuple(video.shape)}")
    x = ((video.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 4, 1).cpu().numpy()


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-clip PSNR in dB of videos (B, 3, T, H, W) in [-1, 1] (peak = the [0, 255] range)."""
    mse = ((a.float().clamp(-1, 1) - b.float().clamp(-1, 1)) / 2).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))
