"""Pipeline throughput on this machine: decode-only, tokenize-only and end-to-end clips/s.

efficiency = end_to_end / (1 / (1/decode + 1/tokenize)): on one machine both stages share
the CPUs, so the ideal end-to-end rate is the harmonic combination of the two stage rates.

    python benchmarks/bench_pipeline.py [--videos 16] [--resolution 128] [--clip-frames 17]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def make_corpus(folder: Path, n: int, size: int, frames: int) -> list[Path]:
    from pipeline.video_write import write_video
    from tokenizer.corpus import make_clip

    paths = []
    for i in range(n):
        clip = make_clip(np.random.default_rng([3, i]), frames, size, size)
        paths.append(write_video(folder / f"v{i:03d}.mp4", clip, fps=24, crf=23))
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--videos", type=int, default=16)
    ap.add_argument("--source-size", type=int, default=256)
    ap.add_argument("--source-frames", type=int, default=68)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--clip-frames", type=int, default=17)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--checkpoint", default=None)
    args = ap.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    from pipeline.decode import DecodeConfig, DecodeStep
    from pipeline.job import ExecConfig, JobConfig
    from pipeline.plan import PlanConfig
    from pipeline.ray_exec import run_job
    from pipeline.tokenize_step import PendingClip, TokenizeConfig, TokenizeStep

    tmp = Path(tempfile.mkdtemp(prefix="bench-pipe-"))
    videos = make_corpus(tmp / "videos", args.videos, args.source_size, args.source_frames)
    decode = DecodeConfig(resolution=(args.resolution, args.resolution), clip_frames=args.clip_frames)
    tok_cfg = TokenizeConfig(checkpoint=args.checkpoint, batch_size=args.batch_size, device="cpu")

    # decode only: one process per core would be the ideal; Ray runs decodes 2-wide here, so do we
    from concurrent.futures import ProcessPoolExecutor

    t = time.perf_counter()
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        results = list(pool.map(_decode, [(str(p), decode.to_dict()) for p in videos]))
    decode_s = time.perf_counter() - t
    n_clips = sum(len(r.clips) for r in results)

    # tokenize only: the model on already-decoded clips, all cores
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    step = TokenizeStep(tok_cfg)
    pending = [PendingClip(video_id=f"v{i}", uri=r.uri, source=r.source, clip=c)
               for i, r in enumerate(results) for c in r.clips]
    step(pending[: args.batch_size])  # warm-up
    t = time.perf_counter()
    step(pending)
    tokenize_s = time.perf_counter() - t

    # end to end through Ray (fresh output)
    job = JobConfig(input=str(tmp / "videos"), output=str(tmp / "ds"), decode=decode, tokenize=tok_cfg,
                    plan=PlanConfig(videos_per_shard=4),
                    execution=ExecConfig(worker_cpus=1.0, decode_cpus=0.5))
    from pipeline.ray_exec import init_ray

    init_ray(None)  # cluster start-up is not part of the job's throughput
    t = time.perf_counter()
    result = run_job(job, progress=False)
    e2e_s = time.perf_counter() - t
    assert result.clips == n_clips, (result.clips, n_clips)

    d, k, e = n_clips / decode_s, n_clips / tokenize_s, n_clips / e2e_s
    ideal = 1 / (1 / d + 1 / k)
    out = {"clips": n_clips, "decode_clips_s": d, "tokenize_clips_s": k, "end_to_end_clips_s": e,
           "ideal_clips_s": ideal, "efficiency": e / ideal}
    print(json.dumps(out, indent=1))
    print(f"\n{'stage':<14} {'clips/s':>8}\n{'decode':<14} {d:8.2f}\n{'tokenize':<14} {k:8.2f}\n"
          f"{'end-to-end':<14} {e:8.2f}\n{'ideal':<14} {ideal:8.2f}\nefficiency {e / ideal:.2f}")


def _decode(args: tuple[str, dict]):  # noqa: ANN202 - DecodedVideo
    from pipeline.decode import DecodeConfig, DecodeStep

    path, cfg = args
    return DecodeStep(DecodeConfig.from_dict(cfg))(Path(path).read_bytes(), path)


if __name__ == "__main__":
    main()
