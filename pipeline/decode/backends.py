"""Decoder backends: probe a container with PyAV, decode chosen frames with decord or PyAV.

Both backends scale inside FFmpeg while decoding (decord: `VideoReader(width=, height=)`,
a filter graph; PyAV: `frame.reformat(width, height)`, swscale), so a 4K source is never
held at full resolution: only `batch_frames` scaled frames are in flight at a time.

Memory bound of one decode: the encoded bytes (decord copies them once more into its own
buffer) + `batch_frames` frames at the scaled size + the working-size frames the clips need.

Errors raised here are `DecodeError` (permanent, named) or the libraries' own exceptions;
`pipeline.decode.step.DecodeStep` turns all of them into `VideoFailure` rows.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

# A stream that declares its frame count may decode up to this many fewer frames
# (edit lists, a dropped leading B-frame) before we call the file truncated.
_EXACT_COUNT_SLACK = 1
# When only a duration is known (mkv, webm, ts), it is an estimate: flag a file only if
# it decodes clearly fewer frames than duration * fps.
_DURATION_COUNT_FRACTION = 0.9


class DecodeError(Exception):
    """A named, permanent decode failure (error_type is the row's error_type)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


@dataclass(frozen=True)
class Probe:
    """Container header facts. frames: declared count (0 = not declared); duration_s None = unknown."""

    width: int
    height: int
    fps: float
    frames: int
    duration_s: float | None
    codec: str

    @property
    def expected_frames(self) -> tuple[int, bool] | None:
        """(count, exact): declared count, else duration * fps, else None."""
        if self.frames > 0:
            return self.frames, True
        if self.duration_s and self.fps > 0:
            return round(self.duration_s * self.fps), False
        return None


def probe(data: bytes, uri: str) -> Probe:
    """Read the container header (no decoding) with PyAV."""
    import av

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                kinds = sorted({s.type for s in container.streams}) or ["none"]
                raise DecodeError("NoVideoStream", f"{uri}: no video stream (streams: {', '.join(kinds)})")
            st = container.streams.video[0]
            rate = st.average_rate or st.guessed_rate or st.base_rate
            fps = float(rate) if rate else 0.0
            duration = None
            if st.duration and st.time_base:
                duration = float(st.duration * st.time_base)
            elif container.duration and len(container.streams) == 1:
                duration = container.duration / 1_000_000  # AV_TIME_BASE
            width, height = st.codec_context.width, st.codec_context.height
            if width < 1 or height < 1:
                raise DecodeError("NoFrameSize", f"{uri}: video stream has no frame size ({width}x{height})")
            return Probe(width=width, height=height, fps=fps if math.isfinite(fps) else 0.0, frames=int(st.frames or 0),
                         duration_s=duration, codec=st.codec_context.name)
    except av.FFmpegError as exc:
        raise DecodeError("Unreadable", f"{uri}: not a readable video container ({len(data)} bytes): "
                          f"{type(exc).__name__}: {exc}") from None


def check_complete(uri: str, found: int, info: Probe) -> None:
    """Raise DecodeError("Truncated") if fewer frames exist than the container promises."""
    expected = info.expected_frames
    if expected is None:
        return
    n, exact = expected
    limit = n - _EXACT_COUNT_SLACK if exact else math.floor(_DURATION_COUNT_FRACTION * n) - 1
    if found < limit:
        basis = "declared frame count" if exact else f"duration {info.duration_s:.3f}s x {info.fps:g} fps"
        raise DecodeError("Truncated", f"{uri}: truncated or corrupt: {found} frames decodable, {n} expected ({basis})")


def _batches(indices: np.ndarray, size: int) -> list[np.ndarray]:
    return [indices[i : i + size] for i in range(0, len(indices), size)]


# Finish(frames (n, h, w, 3) at the scaled size) -> working-size frames; supplied by DecodeStep.
Finish = Callable[[np.ndarray], np.ndarray]
# Plan(n_src) -> the sorted unique source indices needed (may raise DecodeError).
PlanIndices = Callable[[int], np.ndarray]


def decode_decord(data: bytes, uri: str, info: Probe, scaled_hw: tuple[int, int], plan: PlanIndices,
                  finish: Finish, out: Callable[[int], np.ndarray], threads: int, batch_frames: int) -> int:
    """Decode with decord; returns the source frame count. Writes finished frames via `out`.

    `out(n)` allocates the (n, H, W, 3) result once the needed count is known; frames are
    fetched with `get_batch` in sorted batches (sequential access, no per-frame seek).
    """
    from decord import VideoReader, cpu

    h, w = scaled_hw
    vr = VideoReader(io.BytesIO(data), ctx=cpu(0), width=w, height=h, num_threads=threads)
    n_src = len(vr)
    check_complete(uri, n_src, info)
    needed = plan(n_src)
    dest = out(len(needed))
    k = 0
    for batch in _batches(needed, batch_frames):
        arr = vr.get_batch(batch.tolist()).asnumpy()  # (b, h, w, 3) uint8 at the scaled size
        if arr.shape[1:3] != (h, w):
            raise DecodeError("BadFrameSize", f"{uri}: decord returned frames {arr.shape[1:3]}, asked for {(h, w)}")
        dest[k : k + len(batch)] = finish(arr)
        k += len(batch)
    return n_src


def _count_packets(data: bytes) -> int:
    import av

    from av.video.reformatter import VideoReformatter

    # One reformatter keeps its swscale context across frames. Scaling in the source pixel
    # format, then converting the small frame to RGB, measured ~2x faster here than a
    # single scale-to-RGB (`to_ndarray(width=, height=, format="rgb24")`).
    reformatter = VideoReformatter()
    with av.open(io.BytesIO(data), mode="r") as container:
        st = container.streams.video[0]
        return sum(1 for p in container.demux(st) if p.size > 0)


def decode_pyav(data: bytes, uri: str, info: Probe, scaled_hw: tuple[int, int], plan: PlanIndices,
                finish: Finish, out: Callable[[int], np.ndarray], threads: int, batch_frames: int) -> int:
    """Decode with PyAV, sequentially; same contract as `decode_decord`.

    The frame count is the declared one, or else a demux-only packet count (cheap: no
    decoding). PyAV ends quietly at a truncation, so the decoded count is checked too.
    """
    import av

    n_src = info.frames if info.frames > 0 else _count_packets(data)
    check_complete(uri, n_src, info)
    needed = plan(n_src)
    dest = out(len(needed))
    if len(needed) == 0:
        return n_src
    h, w = scaled_hw
    last = int(needed[-1])
    # needed is sorted and unique: walk it alongside the decoded frames.
    k, pending = 0, []
    i = -1
    from av.video.reformatter import VideoReformatter

    # One reformatter keeps its swscale context across frames. Scaling in the source pixel
    # format, then converting the small frame to RGB, measured ~2x faster here than a
    # single scale-to-RGB (`to_ndarray(width=, height=, format="rgb24")`).
    reformatter = VideoReformatter()
    with av.open(io.BytesIO(data), mode="r") as container:
        st = container.streams.video[0]
        st.thread_type = "AUTO" if threads != 1 else "SLICE"
        st.codec_context.thread_count = threads
        for i, frame in enumerate(container.decode(st)):
            if k + len(pending) < len(needed) and i == needed[k + len(pending)]:
                small = reformatter.reformat(frame, width=w, height=h, interpolation="BICUBIC")
                pending.append(small.to_ndarray(format="rgb24"))
                if len(pending) == batch_frames:
                    dest[k : k + len(pending)] = finish(np.stack(pending))
                    k, pending = k + len(pending), []
            if i >= last:
                break
    if pending:
        dest[k : k + len(pending)] = finish(np.stack(pending))
        k += len(pending)
    if k < len(needed):
        raise DecodeError("Truncated", f"{uri}: truncated or corrupt: decoding stopped after {i + 1} frames, "
                          f"{n_src} expected (frame {int(needed[k])} needed)")
    return n_src
