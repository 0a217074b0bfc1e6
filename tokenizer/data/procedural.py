"""The procedural clip families: made on the fly, offline and deterministic.

Five families of clearly different complexity: flat scenes with few moving shapes, panned
periodic textures, smooth or fine evolving noise, and pans/zooms over photographs (training
photographs, or the held-out ones: `tokenizer.data.photos`). Training batches
(`tokenizer.train.corpus`) and the held-out procedural set (`tokenizer.eval.heldout`) both draw
from `make_clip`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tokenizer.data.camera import camera
from tokenizer.data.photos import HELDOUT_PHOTOS, TRAIN_PHOTOS, load_photo

KINDS: tuple[str, ...] = ("shapes", "texture", "noise", "photo", "flat")


def smooth_field(rng: np.random.Generator, h: int, w: int, scale: int, channels: int = 3) -> np.ndarray:
    """Random field (channels, h, w) in [0, 1], correlated over `scale` pixels."""
    gh, gw = max(2, h // scale + 2), max(2, w // scale + 2)
    coarse = torch.from_numpy(rng.random((1, channels, gh, gw), dtype=np.float32))
    fine = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
    return fine[0].clamp(0, 1).numpy()


def shapes(rng: np.random.Generator, t: int, h: int, w: int, n_max: int, speed: float) -> np.ndarray:
    """Up to n_max flat ellipses / rectangles moving at up to `speed` px per frame over a colour ramp:
    float (t, h, w, 3) in [0, 1]."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c0, c1 = rng.random(3, dtype=np.float32), rng.random(3, dtype=np.float32)
    ramp = (xx / max(w - 1, 1) * rng.random() + yy / max(h - 1, 1) * rng.random())[..., None] / 2
    base = c0 * (1 - ramp) + c1 * ramp  # (h, w, 3)
    out = np.repeat(base[None], t, axis=0)
    for _ in range(int(rng.integers(1, n_max + 1))):
        color = rng.random(3, dtype=np.float32)
        ry, rx = rng.uniform(0.05, 0.3) * h, rng.uniform(0.05, 0.3) * w
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        vy, vx = rng.uniform(-speed, speed, 2)
        ellipse = rng.random() < 0.5
        for i in range(t):
            dy, dx = (yy - cy - vy * i) / ry, (xx - cx - vx * i) / rx
            inside = (dy**2 + dx**2 <= 1) if ellipse else ((np.abs(dy) <= 1) & (np.abs(dx) <= 1))
            out[i][inside] = color
    return out


def texture(rng: np.random.Generator, t: int, h: int, w: int) -> np.ndarray:
    """A sum of 2-5 coloured sine gratings panned at up to 3 px per frame: float (t, h, w, 3) in [0, 1]."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    vy, vx = rng.uniform(-3, 3, 2)
    out = np.zeros((t, h, w, 3), np.float32)
    for _ in range(int(rng.integers(2, 6))):
        freq = rng.uniform(0.02, 0.25)
        theta = rng.uniform(0, np.pi)
        ky, kx = freq * np.sin(theta), freq * np.cos(theta)
        amp = rng.uniform(0.2, 1.0) * rng.random(3, dtype=np.float32)
        phase = rng.uniform(0, 2 * np.pi)
        for i in range(t):
            wave = np.sin(2 * np.pi * (ky * (yy - vy * i) + kx * (xx - vx * i)) + phase)
            out[i] += wave[..., None] * amp
    out -= out.min()
    return out / max(float(out.max()), 1e-6)


def noise(rng: np.random.Generator, t: int, h: int, w: int) -> np.ndarray:
    """Smooth or fine noise (correlated over 1-16 px) drifting and morphing into a second field:
    float (t, h, w, 3) in [0, 1]."""
    scale = int(rng.choice([1, 2, 4, 8, 16]))
    a = smooth_field(rng, h + 16, w + 16, scale)
    b = smooth_field(rng, h + 16, w + 16, scale)
    vy, vx = rng.uniform(-2, 2, 2)
    mix_speed = rng.uniform(0, 0.15)
    out = np.empty((t, h, w, 3), np.float32)
    for i in range(t):
        m = min(1.0, mix_speed * i)
        f = (1 - m) * a + m * b
        oy, ox = int(round(8 + vy * i)) % 16, int(round(8 + vx * i)) % 16
        out[i] = f[:, oy : oy + h, ox : ox + w].transpose(1, 2, 0)
    return out


def photo_clip(rng: np.random.Generator, t: int, h: int, w: int, names: tuple[str, ...]) -> np.ndarray:
    """A pan and slight zoom over one of the photographs `names`, tinted now and then: float
    (t, h, w, 3) in [0, 1]."""
    img = load_photo(str(rng.choice(list(names))))
    ih, iw = img.shape[:2]
    if rng.random() < 0.3:  # random tint, mostly for grayscale photographs
        img = img * rng.uniform(0.6, 1.2, 3).astype(np.float32)
    # source pixels per output pixel; a photograph smaller than the clip is magnified (zoom < 1)
    zoom_max = min(ih / h, iw / w, 6.0)
    zoom0 = rng.uniform(min(1.0, zoom_max), max(1.0, zoom_max))
    zoom1 = zoom0 * rng.uniform(0.85, 1.15)
    cy, cx = rng.uniform(0.3, 0.7) * ih, rng.uniform(0.3, 0.7) * iw
    vy, vx = rng.uniform(-4, 4, 2) * zoom0
    return camera(img, t, h, w, zoom0, zoom1, (cy, cx), (vy, vx))


def make_clip(
    rng: np.random.Generator, frames: int, height: int, width: int, kind: str | None = None, heldout: bool = False
) -> np.ndarray:
    """One procedural clip, uint8 (frames, height, width, 3). `kind` None draws one at random."""
    kind = kind if kind is not None else str(rng.choice(list(KINDS), p=[0.2, 0.15, 0.15, 0.4, 0.1]))
    if kind == "shapes":
        x = shapes(rng, frames, height, width, n_max=6, speed=4.0)
    elif kind == "flat":
        x = shapes(rng, frames, height, width, n_max=2, speed=1.0)
    elif kind == "texture":
        x = texture(rng, frames, height, width)
    elif kind == "noise":
        x = noise(rng, frames, height, width)
    elif kind == "photo":
        x = photo_clip(rng, frames, height, width, HELDOUT_PHOTOS if heldout else TRAIN_PHOTOS)
    else:
        raise ValueError(f"unknown clip kind {kind!r}; choose from {KINDS}")
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


def heldout_clips(n: int, frames: int, height: int, width: int, seed: int = 1234) -> list[tuple[str, np.ndarray]]:
    """Deterministic evaluation clips (kind, uint8 (T, H, W, 3)); photos are never training photos."""
    rng = np.random.default_rng([seed, 999_983])
    return [(KINDS[i % len(KINDS)], make_clip(rng, frames, height, width, KINDS[i % len(KINDS)], heldout=True)) for i in range(n)]
