"""Frame arithmetic for decode: fps resampling, clip windows, resize geometry, crop/pad.

Pure numpy, no decoder: the decoders (pipeline.decode.step) scale frames natively in FFmpeg
to `scaled_size(...)` and this module cuts or pads them to the working size.

Conventions: frames are uint8 RGB, layout (N, H, W, 3). Sizes are (height, width).
Clips are T = 1 + 4k frames long (the causal tokenizer's frame 0 + groups of 4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

RESIZE_MODES = ("crop", "pad")
SHORT_POLICIES = ("pad", "error")


def check_clip_frames(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1 or (n - 1) % 4 != 0:
        raise ValueError(f"clip_frames must be 1 + 4k (1, 5, 9, 17, ...), got {n!r}")


def resample_indices(n_src: int, src_fps: float, target_fps: float | None) -> np.ndarray:
    """Source frame index for each output frame: nearest source frame in time.

    Output frame j sits at time j / target_fps and takes source frame round(j * src/target).
    target_fps None keeps every source frame. Upsampling (target > source) repeats frames.
    Returns int64 (n_out,), non-decreasing, every value < n_src.
    """
    if n_src <= 0:
        return np.zeros(0, np.int64)
    if target_fps is None:
        return np.arange(n_src, dtype=np.int64)
    if not src_fps or src_fps <= 0 or not math.isfinite(src_fps):
        raise ValueError(f"cannot resample to {target_fps} fps: source fps is unknown ({src_fps!r})")
    step = src_fps / target_fps
    # Frames whose time j/target lies inside the source duration n_src/src.
    n_out = max(1, math.floor(n_src / step + 1e-9))
    idx = np.floor(np.arange(n_out, dtype=np.float64) * step + 0.5 + 1e-9).astype(np.int64)
    return np.minimum(idx, n_src - 1)


@dataclass(frozen=True)
class Window:
    """A clip over output frames [start, start + length); `pad` repeats of the last frame follow."""

    start: int
    length: int
    pad: int


def clip_windows(n_out: int, clip_frames: int, stride: int, max_clips: int | None, short_policy: str) -> list[Window]:
    """Full clips at start = 0, stride, 2*stride, ...; frames after the last full clip are dropped.

    A video with fewer than clip_frames output frames gives, under short_policy "pad", one
    clip of all its frames followed by repeats of its last frame, and under "error", none
    (the caller reports it). Zero frames always give none.
    """
    check_clip_frames(clip_frames)
    if stride < 1:
        raise ValueError(f"clip stride must be >= 1, got {stride}")
    if short_policy not in SHORT_POLICIES:
        raise ValueError(f"short_policy must be one of {SHORT_POLICIES}, got {short_policy!r}")
    if n_out <= 0:
        return []
    if n_out < clip_frames:
        return [Window(0, n_out, clip_frames - n_out)] if short_policy == "pad" else []
    n_clips = 1 + (n_out - clip_frames) // stride
    if max_clips is not None:
        n_clips = min(n_clips, max_clips)
    return [Window(i * stride, clip_frames, 0) for i in range(n_clips)]


def scaled_size(src_hw: tuple[int, int], out_hw: tuple[int, int], mode: str) -> tuple[int, int]:
    """Size (h, w) to scale a source frame to before `crop_or_pad` gives exactly out_hw.

    "crop": scale so the frame covers out_hw (short side matches; aspect kept), then center-crop.
    "pad": scale so the frame fits inside out_hw (long side matches), then center-pad with black.
    """
    (sh, sw), (oh, ow) = src_hw, out_hw
    if sh < 1 or sw < 1:
        raise ValueError(f"source frame size must be positive, got {sh}x{sw} (h x w)")
    if mode == "crop":
        scale = max(oh / sh, ow / sw)
        return max(oh, round(sh * scale)), max(ow, round(sw * scale))
    if mode == "pad":
        scale = min(oh / sh, ow / sw)
        return min(oh, max(1, round(sh * scale))), min(ow, max(1, round(sw * scale)))
    raise ValueError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")


def crop_or_pad(frames: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Center-crop and/or center-pad (N, h, w, 3) uint8 to (N, out_h, out_w, 3); black padding."""
    assert frames.ndim == 4 and frames.shape[-1] == 3, frames.shape
    _, h, w, _ = frames.shape
    oh, ow = out_hw
    if (h, w) == (oh, ow):
        return frames
    top, left = max(0, (h - oh) // 2), max(0, (w - ow) // 2)
    frames = frames[:, top : top + oh, left : left + ow]
    h, w = frames.shape[1:3]
    if (h, w) == (oh, ow):
        return frames
    out = np.zeros((frames.shape[0], oh, ow, 3), np.uint8)
    pt, pl = (oh - h) // 2, (ow - w) // 2
    out[:, pt : pt + h, pl : pl + w] = frames
    return out
