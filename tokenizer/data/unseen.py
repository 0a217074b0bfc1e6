"""Footage of kinds no training step and no other held-out set makes: the `unseen` held-out set.

The router stage trains on the procedural families and on `tokenizer.data.mixed`'s camera work over
training photographs; `mixed` evaluates that camera work over held-out photographs. These kinds are
made by none of them, over held-out photographs and a flat-colour graphic (so a predictor tuned to
the other sets' look is tested off its ground):
- "shake": a handheld camera (a slow drift plus a random jitter of a few pixels and a slight roll per frame);
- "roll": the camera rotating about its axis while it drifts;
- "grain": a slow pan with fresh sensor noise in every frame (low light);
- "flat": animation-like flat colour (the picture posterised to a few levels), panning;
- "upscaled": footage shot at a quarter of the resolution and scaled up, panning fast;
- "fade": a still shot fading towards black (an exposure change);
- "cut": a still of one picture cut, halfway, to a pan over another;
- "texture": a still shot of fine detail at full resolution with a faint flicker.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tokenizer.data.camera import camera

UNSEEN_KINDS: tuple[str, ...] = ("shake", "roll", "grain", "flat", "upscaled", "fade", "cut", "texture")
# held out from training (`tokenizer.data.photos`); "logo" is the flat-colour graphic
UNSEEN_PHOTOS: tuple[str, ...] = ("horse", "logo", "microaneurysms", "coffee", "cell", "rocket")


def _warp(img: np.ndarray, t: int, h: int, w: int, zoom: float, centers: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Frames (t, h, w, 3) in [0, 1] of a camera at `zoom` (source px per output px), per-frame centers
    (t, 2) (y, x) in source pixels and roll angles (t,) in radians; reflecting outside the picture."""
    ih, iw = img.shape[:2]
    src = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]
    theta = torch.zeros(t, 2, 3)
    for i in range(t):
        c, s = float(np.cos(angles[i])), float(np.sin(angles[i]))
        # output offset (u w/2, v h/2) px -> source offset zoom * R (u w/2, v h/2), normalised by the source's half size
        theta[i, 0, 0], theta[i, 0, 1] = zoom * c * w / iw, -zoom * s * h / iw
        theta[i, 1, 0], theta[i, 1, 1] = zoom * s * w / ih, zoom * c * h / ih
        theta[i, 0, 2] = 2 * centers[i, 1] / iw - 1
        theta[i, 1, 2] = 2 * centers[i, 0] / ih - 1
    grid = F.affine_grid(theta, [t, 3, h, w], align_corners=False)
    out = F.grid_sample(src.expand(t, -1, -1, -1), grid, mode="bilinear", padding_mode="reflection",
                        align_corners=False)
    return out.permute(0, 2, 3, 1).clamp(0, 1).numpy()


def unseen_video(kind: str, photo: np.ndarray, other: np.ndarray, rng: np.random.Generator, t: int, h: int,
                 w: int) -> np.ndarray:
    """One video (t frames) of `kind` (UNSEEN_KINDS) over `photo` (and `other`, the picture "cut" cuts
    to), both float32 (H, W, 3) in [0, 1] -> uint8 (t, h, w, 3). `rng` draws the motion and noise."""
    ih, iw = photo.shape[:2]
    fit = min(ih / h, iw / w)
    center = np.array([rng.uniform(0.35, 0.65) * ih, rng.uniform(0.35, 0.65) * iw])
    angle = rng.uniform(0, 2 * np.pi)
    direction = np.array([np.sin(angle), np.cos(angle)])
    steps = np.arange(t)[:, None]
    if kind == "shake":
        centers = center + 0.5 * direction * steps + rng.normal(0, 2.5, (t, 2)) * fit * 0.6
        x = _warp(photo, t, h, w, fit * 0.6, centers, rng.normal(0, 0.01, t))
    elif kind == "roll":
        spin = rng.choice([-1, 1]) * rng.uniform(0.015, 0.03)
        x = _warp(photo, t, h, w, fit * 0.55, center + 0.3 * direction * steps, spin * np.arange(t))
    elif kind == "grain":
        x = camera(photo, t, h, w, fit * 0.6, fit * 0.6, tuple(center), tuple(0.7 * direction))
        x = x * 0.6 + rng.normal(0, 0.035, x.shape).astype(np.float32)  # dim, noisy
    elif kind == "flat":
        x = camera(photo, t, h, w, fit * 0.7, fit * 0.7, tuple(center), tuple(1.5 * direction))
        x = np.round(x * 3) / 3  # four levels per channel: flat areas, hard edges
    elif kind == "upscaled":
        lh, lw = max(h // 4, 1), max(w // 4, 1)
        low = camera(photo, t, lh, lw, fit * 0.6 * h / lh, fit * 0.6 * w / lw, tuple(center),
                     tuple(4.0 * fit * direction))
        x = F.interpolate(torch.from_numpy(low).permute(0, 3, 1, 2), size=(h, w), mode="bilinear",
                          align_corners=False).permute(0, 2, 3, 1).numpy()
    elif kind == "fade":
        x = camera(photo, t, h, w, fit * 0.7, fit * 0.7, tuple(center), (0.0, 0.0))
        x = x * np.linspace(1.0, 0.25, t, dtype=np.float32)[:, None, None, None]
    elif kind == "cut":
        oh, ow = other.shape[:2]
        ofit = min(oh / h, ow / w)
        a = camera(photo, t, h, w, fit * 0.7, fit * 0.7, tuple(center), (0.0, 0.0))
        b = camera(other, t, h, w, ofit * 0.6, ofit * 0.6, (oh / 2, ow / 2), tuple(1.0 * direction))
        x = np.concatenate([a[: t // 2], b[t // 2 :]])
    elif kind == "texture":
        x = camera(photo, t, h, w, 1.0, 1.0, tuple(center), (0.0, 0.0))
        x = x * (1.0 + rng.normal(0, 0.01, (t, 1, 1, 1))).astype(np.float32)
    else:
        raise ValueError(f"unknown unseen kind {kind!r}; choose from {UNSEEN_KINDS}")
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)
