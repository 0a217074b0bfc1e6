"""A PNG of a few frames of one or more versions of a clip (source above reconstruction), for a
person to look at: `infotok demo` and `infotok decode --png` write them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

LABEL_WIDTH = 120  # pixels of the row-label column
CAPTION_HEIGHT = 16  # pixels of the caption strip


def comparison_png(rows: list[tuple[str, np.ndarray]], path: Path, caption: str, n_frames: int = 4) -> Path:
    """PNG of `n_frames` frames spread over the clip, one labelled row per (label, frames) in `rows`
    (frames: uint8 (T, H, W, 3), the same T, H, W in every row), `caption` on a strip at the top."""
    from PIL import Image, ImageDraw

    if not rows:
        raise ValueError("comparison_png needs at least one row of frames")
    shapes = {frames.shape for _, frames in rows}
    if len(shapes) != 1:
        raise ValueError(f"every row must have the same (T, H, W, 3) frames, got {sorted(shapes)}")
    length = len(rows[0][1])
    idx = np.linspace(0, length - 1, min(n_frames, length)).round().astype(int)
    strips = [np.concatenate([frames[i] for i in idx], axis=1) for _, frames in rows]
    h, w = strips[0].shape[:2]
    canvas = Image.new("RGB", (LABEL_WIDTH + w, CAPTION_HEIGHT + len(rows) * h), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), caption, fill="black")
    for r, ((label, _), strip) in enumerate(zip(rows, strips)):
        top = CAPTION_HEIGHT + r * h
        canvas.paste(Image.fromarray(strip), (LABEL_WIDTH, top))
        draw.text((4, top + h // 2 - 6), label, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path
