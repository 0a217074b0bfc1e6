"""Decode step: encoded video bytes -> clips of 1 + 4k frames at the working size.

    step = DecodeStep(DecodeConfig(fps=8.0, resolution=(256, 256)))
    result = step(data, uri)      # DecodedVideo (clips) or VideoFailure (a row); never raises

Per video: probe the container (PyAV, header only) -> choose the source frames the clips
need (fps resampling, clip windows, max_clips) -> decode only those, scaled inside FFmpeg
(decord by default; PyAV when decord fails or when chosen) -> center-crop or pad to the
working size -> cut clips. See `pipeline.decode.backends` for the memory bound.

A video shorter than one clip: short_policy "pad" gives one clip whose tail repeats the
last real frame (Clip.pad_frames says how many); "error" gives a permanent failure.
Frames after the last full clip are dropped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from pipeline.decode import backends as decoders, frames
from pipeline.decode.failures import VideoFailure, clean_message
from schemas.config import FrozenConfig

logger = logging.getLogger(__name__)

DECODERS = ("decord", "pyav")

# decord 0.6.0's native resize returns frames of the wrong size for these output widths
# (whatever the source; measured for widths 1..1100): "DECORDArrayCopyFromTo: The size must
# exactly match". Such working sizes go straight to PyAV rather than failing every video.
DECORD_BAD_WIDTHS = frozenset({1, 2, 3, 4, 6, 8, 12, 16, 24, 48, 72})


@dataclass(frozen=True)
class DecodeConfig(FrozenConfig):
    """How videos become clips.

    fps: output frame rate (nearest source frame in time), None keeps the source rate.
    resolution: working size (height, width) of every clip frame.
    resize_mode: "crop" (scale short side to cover, center-crop) or "pad" (fit, black bars).
    clip_frames: T = 1 + 4k. clip_stride: output frames between clip starts (None = T,
      back to back). max_clips: clips per video at most (None = all).
    decoder: "decord" (PyAV fallback if `fallback`) or "pyav".
    short_policy: "pad" or "error" for videos shorter than one clip.
    threads: decoder threads per video (0 = library default, all cores). Use 1 when many
      videos decode in parallel (one per core), as the pipeline does.
    batch_frames: frames fetched per decoder call; bounds scaled frames held at once.
    """

    fps: float | None = None
    resolution: tuple[int, int] = (256, 256)
    resize_mode: str = "crop"
    clip_frames: int = 17
    clip_stride: int | None = None
    max_clips: int | None = None
    decoder: str = "decord"
    fallback: bool = True
    short_policy: str = "pad"
    threads: int = 1
    batch_frames: int = 32

    def __post_init__(self) -> None:
        if self.fps is not None and not (isinstance(self.fps, (int, float)) and 0 < self.fps < 1000):
            raise ValueError(f"fps must be None or in (0, 1000), got {self.fps!r}")
        res = tuple(self.resolution)
        if len(res) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in res):
            raise ValueError(f"resolution must be (height, width) positive ints, got {self.resolution!r}")
        object.__setattr__(self, "resolution", res)
        if self.resize_mode not in frames.RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {frames.RESIZE_MODES}, got {self.resize_mode!r}")
        frames.check_clip_frames(self.clip_frames)
        if self.clip_stride is not None and (not isinstance(self.clip_stride, int) or self.clip_stride < 1):
            raise ValueError(f"clip_stride must be None or an int >= 1, got {self.clip_stride!r}")
        if self.max_clips is not None and (not isinstance(self.max_clips, int) or self.max_clips < 1):
            raise ValueError(f"max_clips must be None or an int >= 1, got {self.max_clips!r}")
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")
        if self.short_policy not in frames.SHORT_POLICIES:
            raise ValueError(f"short_policy must be one of {frames.SHORT_POLICIES}, got {self.short_policy!r}")
        if not isinstance(self.threads, int) or self.threads < 0:
            raise ValueError(f"threads must be an int >= 0, got {self.threads!r}")
        if not isinstance(self.batch_frames, int) or self.batch_frames < 1:
            raise ValueError(f"batch_frames must be an int >= 1, got {self.batch_frames!r}")

    @property
    def stride(self) -> int:
        return self.clip_stride if self.clip_stride is not None else self.clip_frames


@dataclass(frozen=True)
class SourceInfo:
    """The source as decoded: size, rate, frame count (decodable frames), duration, codec."""

    width: int
    height: int
    fps: float
    frame_count: int
    duration_s: float
    codec: str


@dataclass(frozen=True, eq=False)
class Clip:
    """frames: (T, H, W, 3) uint8 RGB at the working size, T = clip_frames.

    frame_start: source frame index of frames[0]. frame_count: T. pad_frames: how many of
    the last frames repeat the last real one (short videos). fps: rate of `frames`.
    """

    frames: np.ndarray
    clip_index: int
    frame_start: int
    frame_count: int
    pad_frames: int
    fps: float


@dataclass(frozen=True, eq=False)
class DecodedVideo:
    uri: str
    source: SourceInfo
    clips: list[Clip]
    decoder: str
    seconds: float
    fallback_reason: str | None = None

    ok = True


class DecodeStep:
    """bytes or a file-like + uri -> DecodedVideo | VideoFailure. Holds no decoder between calls."""

    def __init__(self, config: DecodeConfig) -> None:
        self.config = config

    def __call__(self, data: bytes | BinaryIO, uri: str) -> DecodedVideo | VideoFailure:
        t0 = time.perf_counter()
        if not isinstance(data, (bytes, bytearray, memoryview)):
            try:
                data = data.read()
            except Exception as exc:  # noqa: BLE001 - becomes a row
                from pipeline.io.storage import is_transient

                return VideoFailure.from_exception(uri, "read", exc, permanent=not is_transient(exc), what="reading")
        data = bytes(data)
        if not data:
            return VideoFailure(uri, "decode", True, "EmptyFile", f"{uri}: empty file (0 bytes)")
        try:
            return self._decode(data, uri, t0)
        except decoders.DecodeError as exc:
            return VideoFailure(uri, "decode", True, exc.error_type, clean_message(str(exc)))
        except MemoryError as exc:
            return VideoFailure.from_exception(uri, "decode", exc, permanent=False, what="decoding")
        except Exception as exc:  # noqa: BLE001 - bad input must never stop a shard
            logger.exception("unexpected error decoding %s", uri)
            return VideoFailure.from_exception(uri, "decode", exc, permanent=True, what="decoding")

    def _decode(self, data: bytes, uri: str, t0: float) -> DecodedVideo | VideoFailure:
        cfg = self.config
        info = decoders.probe(data, uri)
        scaled = frames.scaled_size((info.height, info.width), cfg.resolution, cfg.resize_mode)
        state: dict[str, Any] = {}

        def plan(n_src: int) -> np.ndarray:
            src_idx = frames.resample_indices(n_src, info.fps, cfg.fps) if n_src > 0 else np.zeros(0, np.int64)
            windows = frames.clip_windows(len(src_idx), cfg.clip_frames, cfg.stride, cfg.max_clips, cfg.short_policy)
            if not windows:
                raise decoders.DecodeError(
                    "TooShort" if len(src_idx) else "NoFrames",
                    f"{uri}: {len(src_idx)} frames at {cfg.fps or info.fps:g} fps (source {n_src} at {info.fps:g}), "
                    f"fewer than one clip of {cfg.clip_frames} (short_policy={cfg.short_policy!r})",
                )
            used = np.concatenate([src_idx[w.start : w.start + w.length] for w in windows])
            needed, _ = np.unique(used, return_inverse=True)
            state.update(src_idx=src_idx, windows=windows, needed=needed)
            return needed

        def alloc(n: int) -> np.ndarray:
            state["out"] = np.empty((n, *cfg.resolution, 3), np.uint8)
            return state["out"]

        def finish(batch: np.ndarray) -> np.ndarray:
            return frames.crop_or_pad(batch, cfg.resolution)

        order = ["decord", "pyav"] if cfg.decoder == "decord" else ["pyav"]
        if cfg.decoder == "decord" and not cfg.fallback:
            order = ["decord"]
        fallback_reason = None
        if order[0] == "decord" and scaled[1] in DECORD_BAD_WIDTHS and cfg.fallback:
            order = ["pyav"]
            fallback_reason = f"decord cannot resize to width {scaled[1]} (DECORD_BAD_WIDTHS)"
        for name in order:
            try:
                fn = decoders.decode_decord if name == "decord" else decoders.decode_pyav
                n_src = fn(data, uri, info, scaled, plan, finish, alloc, cfg.threads, cfg.batch_frames)
                break
            except decoders.DecodeError as exc:
                if exc.error_type in ("TooShort", "NoFrames") or name == order[-1]:
                    raise
                fallback_reason = f"decord: {exc.error_type}: {exc}"
            except Exception as exc:  # noqa: BLE001 - decord raises RuntimeError and DECORDError (not a subclass)
                if name == order[-1]:
                    prior = f" (after {fallback_reason})" if fallback_reason else ""
                    raise decoders.DecodeError(
                        type(exc).__name__, clean_message(f"{uri}: {name} could not decode: {exc}{prior}", 400)
                    ) from None
                fallback_reason = clean_message(f"decord {type(exc).__name__}: {exc}", 300)
            logger.warning("%s: decord failed, falling back to PyAV: %s", uri, fallback_reason)
        else:  # pragma: no cover - the loop always breaks or raises
            raise AssertionError("no decoder ran")

        out, windows, src_idx, needed = state["out"], state["windows"], state["src_idx"], state["needed"]
        pos = {int(s): i for i, s in enumerate(needed)}
        out_fps = float(cfg.fps) if cfg.fps is not None else info.fps
        clips = []
        for ci, w in enumerate(windows):
            sel = [pos[int(s)] for s in src_idx[w.start : w.start + w.length]]
            sel += [sel[-1]] * w.pad
            contiguous = cfg.stride >= cfg.clip_frames and sel == list(range(sel[0], sel[0] + len(sel)))
            # Non-overlapping clips are disjoint views of one buffer (no copy); overlapping or
            # padded clips gather their own copy, so writing into one clip never changes another.
            clip_frames = out[sel[0] : sel[0] + len(sel)] if contiguous else out[sel]
            clips.append(Clip(frames=clip_frames, clip_index=ci, frame_start=int(src_idx[w.start]),
                              frame_count=len(sel), pad_frames=w.pad, fps=out_fps))
        duration = info.duration_s if info.duration_s else (n_src / info.fps if info.fps else 0.0)
        source = SourceInfo(width=info.width, height=info.height, fps=info.fps, frame_count=n_src,
                            duration_s=float(duration), codec=info.codec)
        return DecodedVideo(uri=uri, source=source, clips=clips, decoder=name,
                            seconds=time.perf_counter() - t0, fallback_reason=fallback_reason)

