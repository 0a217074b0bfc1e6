"""Writes real encoded test videos with PyAV (no committed binaries)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_video(path: str | Path, frames: np.ndarray, fps: int = 24, codec: str = "libx264") -> Path:
    """Encode frames (T, H, W, 3) uint8 RGB into a video file (near-lossless x264, crf 12).

    Odd sizes are allowed: they are written as yuv444p, which libx264 accepts.
    """
    from pipeline.decode.video_write import write_video as write

    return write(path, frames, fps=fps, codec=codec, crf=12)


def moving_square_frames(n: int, h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    """A bright square moving over a smooth gradient: simple, compressible content."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), np.full_like(xx, 90)], -1)
    out = np.empty((n, h, w, 3), np.uint8)
    size = max(4, min(h, w) // 4)
    y0, x0 = int(rng.integers(0, max(h - size, 1))), 0
    for t in range(n):
        f = base.copy()
        x = (x0 + 3 * t) % max(w - size, 1)
        f[y0 : y0 + size, x : x + size] = (250, 240, 30)
        out[t] = f
    return out.astype(np.uint8)


def noise_frames(n: int, h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    """Uniform noise: incompressible content."""
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def index_frames(n: int, h: int = 64, w: int = 64, step: int = 4) -> np.ndarray:
    """Solid gray frames, frame t at level (step * t) % 256: the decoded level names the frame."""
    levels = (np.arange(n) * step) % 256
    return np.broadcast_to(levels[:, None, None, None], (n, h, w, 3)).astype(np.uint8)


def frame_levels(frames: np.ndarray, step: int = 4) -> np.ndarray:
    """Source frame index recovered from `index_frames` content (mean level / step, rounded)."""
    return np.rint(frames.reshape(len(frames), -1).mean(axis=1) / step).astype(int)


def write_audio(path: str | Path, seconds: float = 0.5, codec: str = "aac", rate: int = 16000) -> Path:
    """An audio-only file (a 440 Hz tone); the container follows the suffix (.m4a, .mp4, .wav)."""
    import av

    path = Path(path)
    fmt = "s16" if codec.startswith("pcm") else "fltp"
    n = int(seconds * rate)
    tone = np.sin(2 * np.pi * 440 * np.arange(n) / rate).astype(np.float32)[None]
    if fmt == "s16":
        tone = (tone * 20000).astype(np.int16)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        chunk = 1024
        for i in range(0, n, chunk):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, i : i + chunk]), format=fmt, layout="mono")
            frame.sample_rate = rate
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
