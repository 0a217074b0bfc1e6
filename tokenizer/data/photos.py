"""Photographs that scikit-image ships, split once into training and held-out sets.

Evaluation clips never show a training photograph: `HELDOUT_PHOTOS` (the procedural held-out set)
and `MIXED_PHOTOS` (the mixed held-out set) are disjoint from `TRAIN_PHOTOS`.
"""

from __future__ import annotations

import functools

import numpy as np

TRAIN_PHOTOS: tuple[str, ...] = (
    "astronaut", "chelsea", "hubble_deep_field", "immunohistochemistry", "retina",
    "stereo_motorcycle", "colorwheel", "brick", "camera", "grass", "gravel", "moon",
    "coins", "clock", "page", "text",
)  # fmt: skip
HELDOUT_PHOTOS: tuple[str, ...] = ("coffee", "rocket")
MIXED_PHOTOS: tuple[str, ...] = ("coffee", "rocket", "cell", "microaneurysms", "horse")


@functools.lru_cache(maxsize=None)
def load_photo(name: str) -> np.ndarray:
    """A photograph from skimage.data as float32 (H, W, 3) in [0, 1]."""
    import skimage.data

    img = getattr(skimage.data, name)()
    if isinstance(img, tuple):
        img = img[0]
    img = np.asarray(img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    return (img[..., :3].astype(np.float32) / 255.0).copy()
