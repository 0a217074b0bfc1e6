"""A camera over a still photograph: a pan at constant velocity and a linear zoom, bilinear."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def camera(img: np.ndarray, t: int, h: int, w: int, zoom0: float, zoom1: float, center: tuple[float, float],
           velocity: tuple[float, float]) -> np.ndarray:
    """Frames (t, h, w, 3) float in [0, 1] of a camera over img float32 (H, W, 3): zoom in source
    pixels per output pixel (from zoom0 at the first frame to zoom1 at the last; < 1 magnifies),
    center and velocity (source pixels per frame) as (y, x). Outside the photograph it reflects."""
    ih, iw = img.shape[:2]
    src = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]  # (1, 3, ih, iw)
    theta = torch.zeros(t, 2, 3)
    for i in range(t):
        z = zoom0 + (zoom1 - zoom0) * i / max(t - 1, 1)
        theta[i, 0, 0] = z * w / iw
        theta[i, 1, 1] = z * h / ih
        theta[i, 0, 2] = 2 * (center[1] + velocity[1] * i) / iw - 1
        theta[i, 1, 2] = 2 * (center[0] + velocity[0] * i) / ih - 1
    grid = F.affine_grid(theta, [t, 3, h, w], align_corners=False)
    out = F.grid_sample(src.expand(t, -1, -1, -1), grid, mode="bilinear", padding_mode="reflection",
                        align_corners=False)
    return out.permute(0, 2, 3, 1).clamp(0, 1).numpy()
