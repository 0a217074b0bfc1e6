"""Decode-only throughput of DecodeStep vs the `ffmpeg` CLI on the same files, side by side.

    python benchmarks/bench_decode.py [--reps 3] [--size 256] [--threads 1]

Writes its own test videos (PyAV, libx264 crf 23, a pan over a photograph), then for each
file alternates: DecodeStep(decord), DecodeStep(pyav), and
`ffmpeg -threads T -i f -vf scale=w:h:flags=bicubic,crop=S:S -f rawvideo -pix_fmt rgb24`
to /dev/null (decode + scale + RGB conversion, the same work), reporting the median of
`--reps` runs. Ratio = DecodeStep frames/s / ffmpeg frames/s (target >= 0.8).

Diagnostics (--diag): decord variants that explain where time goes: native resize vs
full-size decode + a separate resize, get_batch vs per-frame indexing, threads.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.decode.step import DecodeConfig, DecodedVideo, DecodeStep
from pipeline.decode.frames import scaled_size

CLIP = 17


def _pan_frames(n: int, h: int, w: int) -> np.ndarray:
    """A slow pan and zoom over a photograph: realistic, compressible motion."""
    from PIL import Image
    from skimage import data

    img = Image.fromarray(data.astronaut())  # 512x512 RGB
    big = np.asarray(img.resize((w * 2, h * 2), Image.BILINEAR))
    out = np.empty((n, h, w, 3), np.uint8)
    for t in range(n):
        y, x = (t * 3) % h, (t * 5) % w
        out[t] = big[y : y + h, x : x + w]
    return out


def write_h264(path: Path, frames: np.ndarray, fps: int = 30) -> Path:
    from pipeline.decode.video_write import write_video

    return write_video(path, frames, fps=fps, crf=23)


def _median_time(fn: Callable[[], object], reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run_ffmpeg(path: Path, scaled: tuple[int, int], size: int, threads: int) -> None:
    h, w = scaled
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-threads", str(threads), "-i", str(path),
           "-vf", f"scale={w}:{h}:flags=bicubic,crop={size}:{size}", "-filter_threads", str(threads),
           "-an", "-f", "rawvideo", "-pix_fmt", "rgb24", "-y", "/dev/null"]
    subprocess.run(cmd, check=True)


def diag_decord(data: bytes, n: int, src_hw: tuple[int, int], scaled: tuple[int, int], reps: int) -> list[tuple[str, float]]:
    """frames/s of decord access patterns on one file."""
    from decord import VideoReader, cpu
    from PIL import Image

    idx = list(range(n))
    h, w = scaled

    def native(threads: int) -> None:
        vr = VideoReader(io.BytesIO(data), ctx=cpu(0), width=w, height=h, num_threads=threads)
        for i in range(0, n, 32):
            vr.get_batch(idx[i : i + 32]).asnumpy()

    def per_frame() -> None:
        vr = VideoReader(io.BytesIO(data), ctx=cpu(0), width=w, height=h, num_threads=1)
        for i in idx:
            vr[i].asnumpy()

    def full_then_pil() -> None:
        vr = VideoReader(io.BytesIO(data), ctx=cpu(0), num_threads=1)
        for i in range(0, n, 32):
            for f in vr.get_batch(idx[i : i + 32]).asnumpy():
                np.asarray(Image.fromarray(f).resize((w, h), Image.BICUBIC))

    def open_only() -> None:
        len(VideoReader(io.BytesIO(data), ctx=cpu(0), width=w, height=h, num_threads=1))

    out = [
        ("decord get_batch, native resize, 1 thread", native, 1),
        ("decord get_batch, native resize, auto threads", native, 0),
        ("decord vr[i] per frame, native resize", per_frame, None),
        ("decord full size + PIL resize", full_then_pil, None),
    ]
    rows = []
    for name, fn, arg in out:
        t = _median_time((lambda f=fn, a=arg: f(a)) if arg is not None else fn, reps)
        rows.append((name, n / t))
    t_open = _median_time(open_only, reps)
    rows.append(("decord open + index only (s per file, not fps)", t_open))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--size", type=int, default=256, help="working resolution (square)")
    ap.add_argument("--threads", type=int, default=1, help="decoder threads, both sides (0 = auto)")
    ap.add_argument("--diag", action="store_true", help="also time decord access patterns")
    args = ap.parse_args()
    if shutil.which("ffmpeg") is None:
        print("ffmpeg not found: apt-get install -y ffmpeg", file=sys.stderr)
        return 2

    specs = [("1280x720", 720, 1280, 255), ("640x360", 360, 640, 340), ("1920x1080", 1080, 1920, 119)]
    tmp = Path(tempfile.mkdtemp(prefix="bench_decode_"))
    files = []
    for name, h, w, n in specs:
        t0 = time.perf_counter()
        files.append((name, write_h264(tmp / f"{name}.mp4", _pan_frames(n, h, w)), n, (h, w)))
        print(f"wrote {name} ({n} frames) in {time.perf_counter() - t0:.1f}s", file=sys.stderr)

    startup = _median_time(lambda: subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "nullsrc=s=16x16:d=0.04", "-frames:v", "1",
         "-f", "null", "-"], check=True), max(args.reps, 5))
    header = (f"{'video':<10} {'frames':>6} {'decord f/s':>10} {'pyav f/s':>9} {'ffmpeg f/s':>10} {'decord/ffmpeg':>13} "
              f"{'pyav/ffmpeg':>11} {'decord/ffmpeg-nostart':>21} {'clips/s':>8}")
    print(f"working size {args.size}x{args.size} crop, clip {CLIP} frames, threads {args.threads}, median of {args.reps}; "
          f"ffmpeg process start-up {startup * 1000:.0f} ms (subtracted in the -nostart column)")
    print(header)
    print("-" * len(header))
    tot = {"decord": 0.0, "pyav": 0.0, "ffmpeg": 0.0, "frames": 0}
    for name, path, n, src_hw in files:
        data = path.read_bytes()
        steps = {d: DecodeStep(DecodeConfig(resolution=(args.size, args.size), clip_frames=CLIP, decoder=d,
                                            fallback=False, threads=args.threads)) for d in ("decord", "pyav")}
        scaled = scaled_size(src_hw, (args.size, args.size), "crop")
        for d, step in steps.items():  # warm-up and correctness
            r = step(data, str(path))
            assert isinstance(r, DecodedVideo) and r.decoder == d and len(r.clips) * CLIP == n, r
        run_ffmpeg(path, scaled, args.size, args.threads)
        times: dict[str, list[float]] = {"decord": [], "pyav": [], "ffmpeg": []}
        for _ in range(args.reps):  # interleaved: each round sees the same machine load
            for d, step in steps.items():
                t0 = time.perf_counter()
                step(data, str(path))
                times[d].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            run_ffmpeg(path, scaled, args.size, args.threads)
            times["ffmpeg"].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        for k in ("decord", "pyav", "ffmpeg"):
            tot[k] += med[k]
        tot["frames"] += n
        fps = {k: n / v for k, v in med.items()}
        print(f"{name:<10} {n:>6} {fps['decord']:>10.0f} {fps['pyav']:>9.0f} {fps['ffmpeg']:>10.0f} "
              f"{fps['decord'] / fps['ffmpeg']:>13.2f} {fps['pyav'] / fps['ffmpeg']:>11.2f} "
              f"{(med['ffmpeg'] - startup) / med['decord']:>21.2f} {n / CLIP / med['decord']:>8.1f}")
    n = tot["frames"]
    print(f"{'all':<10} {n:>6} {n / tot['decord']:>10.0f} {n / tot['pyav']:>9.0f} {n / tot['ffmpeg']:>10.0f} "
          f"{tot['ffmpeg'] / tot['decord']:>13.2f} {tot['ffmpeg'] / tot['pyav']:>11.2f} "
          f"{(tot['ffmpeg'] - startup * len(files)) / tot['decord']:>21.2f} {n / CLIP / tot['decord']:>8.1f}")

    if args.diag:
        print("\ndecord access patterns (frames/s, 1280x720 file):")
        name, path, n, src_hw = files[0]
        for label, v in diag_decord(path.read_bytes(), n, src_hw, scaled_size(src_hw, (args.size, args.size), "crop"), args.reps):
            print(f"  {label:<48} {v:>8.2f}" if "s per file" in label else f"  {label:<48} {v:>8.0f}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
