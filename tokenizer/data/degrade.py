"""Degradations real footage carries: defocus (a Gaussian blur) and a low-quality H.264 encode."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def blur(frames: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (separable, reflecting at the edges) of every frame: float (t, h, w, 3) in and out."""
    r = int(3 * sigma)
    x = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    k = k / k.sum()
    v = torch.from_numpy(frames).permute(0, 3, 1, 2).reshape(-1, 1, *frames.shape[1:3])  # (t*3, 1, h, w)
    v = F.conv2d(F.pad(v, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    v = F.conv2d(F.pad(v, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))
    return v.reshape(frames.shape[0], 3, *frames.shape[1:3]).permute(0, 2, 3, 1).numpy()


def x264_round_trip(frames: np.ndarray, crf: int) -> np.ndarray:
    """uint8 frames (t, h, w, 3) through an in-memory H.264 encode at `crf` and back (its blocking)."""
    import io

    import av

    buf = io.BytesIO()
    t, h, w, _ = frames.shape
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
        out.mux(stream.encode())
    buf.seek(0)
    with av.open(buf) as src:
        decoded = [f.to_ndarray(format="rgb24") for f in src.decode(video=0)]
    if len(decoded) != t:
        raise RuntimeError(f"x264 round trip returned {len(decoded)} frames, expected {t}")
    return np.stack(decoded)
