"""Encode frames to a video file with PyAV (reconstructions, demo samples)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_video(path: str | Path, frames: np.ndarray, fps: float = 24, codec: str = "libx264", crf: int = 12) -> Path:
    """Encode uint8 RGB frames (T, H, W, 3) to `path` (container from the suffix).

    Odd frame sizes use yuv444p (yuv420p needs even sizes); even sizes use yuv420p.
    """
    import av

    path = Path(path)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    _, h, w, _ = frames.shape
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=int(round(fps)))
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p" if (h % 2 == 0 and w % 2 == 0) else "yuv444p"
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": "veryfast"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())
    return path
