"""The camera-work kinds a real corpus mixes, made from still photographs.

A still shot, soft footage (defocused, slow drift), fast motion (a fast pan), fine texture (a slow
pan over a detailed photograph at full resolution), a zoom, and a low-quality encode (a pan through
x264 at a high CRF and back, with its blocking). The held-out `mixed` set (`tokenizer.eval.heldout`)
makes them from photographs training never sees; the router stage's recipe from training ones.
"""

from __future__ import annotations

import numpy as np

from tokenizer.data.camera import camera
from tokenizer.data.degrade import blur, x264_round_trip

MIXED_KINDS: tuple[str, ...] = ("still", "soft", "fast", "detail", "zoom", "lowq")


def mixed_video(kind: str, photo: np.ndarray, rng: np.random.Generator, t: int, h: int, w: int) -> np.ndarray:
    """One video (t frames) of camera work of `kind` over `photo` float32 (H, W, 3) in [0, 1]: uint8
    (t, h, w, 3). The draws of `rng` fix the center, direction and speed (and the CRF of "lowq")."""
    ih, iw = photo.shape[:2]
    fit = min(ih / h, iw / w)
    center = (rng.uniform(0.35, 0.65) * ih, rng.uniform(0.35, 0.65) * iw)
    angle = rng.uniform(0, 2 * np.pi)
    direction = (np.sin(angle), np.cos(angle))
    if kind == "still":
        x = camera(photo, t, h, w, fit * 0.8, fit * 0.8, center, (0.0, 0.0))
    elif kind == "soft":
        x = blur(camera(photo, t, h, w, fit * 0.6, fit * 0.6, center, (0.3 * direction[0], 0.3 * direction[1])), 2.5)
    elif kind == "fast":
        speed = rng.uniform(6, 10) * fit * 0.5
        x = camera(photo, t, h, w, fit * 0.5, fit * 0.5, center, (speed * direction[0], speed * direction[1]))
    elif kind == "detail":
        x = camera(photo, t, h, w, 1.0, 1.0, center, (0.8 * direction[0], 0.8 * direction[1]))
    elif kind == "zoom":
        x = camera(photo, t, h, w, fit * 0.9, fit * 0.45, center, (0.0, 0.0))
    elif kind == "lowq":
        x = camera(photo, t, h, w, fit * 0.6, fit * 0.6, center, (2.0 * direction[0], 2.0 * direction[1]))
        return x264_round_trip((np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8), crf=int(rng.integers(38, 44)))
    else:
        raise ValueError(f"unknown mixed kind {kind!r}; choose from {MIXED_KINDS}")
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)
