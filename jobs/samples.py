"""Sample videos of clearly different complexity, generated offline for the demo."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# (name, corpus kind): ordered from simplest to most complex content
SAMPLES: tuple[tuple[str, str], ...] = (
    ("static_scene", "flat"),
    ("moving_shapes", "shapes"),
    ("photo_pan", "photo"),
    ("texture_pan", "texture"),
    ("evolving_noise", "noise"),
)


def write_samples(folder: str | Path, height: int = 128, width: int = 128, frames: int = 33, fps: int = 24,
                  seed: int = 7) -> list[Path]:
    """Write one mp4 per sample kind (height x width pixels) into folder; deterministic in seed.
    Returns the paths."""
    from pipeline.decode.video_write import write_video
    from tokenizer.data.procedural import make_clip

    folder = Path(folder)
    paths = []
    for i, (name, kind) in enumerate(SAMPLES):
        clip = make_clip(np.random.default_rng([seed, i]), frames, height, width, kind, heldout=True)
        paths.append(write_video(folder / f"{i}_{name}.mp4", clip, fps=fps))
    return paths
