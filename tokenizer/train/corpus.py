"""Training batches of the built-in procedural corpus (`tokenizer.data.procedural`): made on the fly,
offline, a pure function of (seed, step)."""

from __future__ import annotations

import numpy as np

from tokenizer.data.procedural import make_clip


def training_batch(seed: int, step: int, batch: int, frames: int, height: int, width: int) -> np.ndarray:
    """Batch for a training step, uint8 (B, T, H, W, 3); a pure function of (seed, step)."""
    rng = np.random.default_rng([seed, step])
    return np.stack([make_clip(rng, frames, height, width) for _ in range(batch)])
