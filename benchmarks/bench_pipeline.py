"""Pipeline throughput on this machine: decode-only, tokenize-only and end-to-end clips/s.

efficiency = end_to_end / (1 / (1/decode + 1/tokenize)): on one machine both stages share
the CPUs, so the ideal end-to-end rate is the harmonic combination of the two stage rates.
The machine is shared and noisy, so every measurement is repeated, interleaved (decode,
tokenize, then one end-to-end run per decode mode, `--repeats` times), and the best and the
median of each are reported; efficiency is computed from the best rates and from the medians.
End to end is the whole job (actor start, planning, writing, manifest) after Ray is up.

    python benchmarks/bench_pipeline.py [--videos 64] [--repeats 3] [--modes alternate,overlap]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def make_corpus(folder: Path, n: int, size: int, frames: int) -> list[Path]:
    from pipeline.decode.video_write import write_video
    from tokenizer.data.procedural import make_clip

    paths = []
    for i in range(n):
        clip = make_clip(np.random.default_rng([3, i]), frames, size, size)
        paths.append(write_video(folder / f"v{i:03d}.mp4", clip, fps=24, crf=23))
    return paths


def _ideal(d: float, k: float) -> float:
    return 1 / (1 / d + 1 / k)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--videos", type=int, default=64)
    ap.add_argument("--source-size", type=int, default=256)
    ap.add_argument("--source-frames", type=int, default=68)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--clip-frames", type=int, default=17)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--modes", default="alternate,overlap", help="decode_overlap settings to run end to end")
    ap.add_argument("--checkpoint", default=None)
    args = ap.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]

    from concurrent.futures import ProcessPoolExecutor

    import torch

    from pipeline.decode.step import DecodeConfig
    from pipeline.job.job import ExecConfig, JobConfig
    from pipeline.plan.plan import PlanConfig
    from pipeline.exec.cluster import init_ray
    from pipeline.exec.ray_exec import run_job
    from pipeline.tokenize.step import PendingClip, TokenizeConfig, TokenizeStep

    tmp = Path(tempfile.mkdtemp(prefix="bench-pipe-"))
    videos = make_corpus(tmp / "videos", args.videos, args.source_size, args.source_frames)
    decode = DecodeConfig(resolution=(args.resolution, args.resolution), clip_frames=args.clip_frames)
    tok_cfg = TokenizeConfig(checkpoint=args.checkpoint, batch_size=args.batch_size, device="cpu")
    torch.set_num_threads(os.cpu_count() or 1)
    step = TokenizeStep(tok_cfg)
    rates: dict[str, list[float]] = {"decode": [], "tokenize": [], **{f"e2e_{m}": [] for m in modes}}
    n_clips = 0
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:  # decode only: one process per core
        list(pool.map(_decode, [(str(videos[0]), decode.to_dict())] * (os.cpu_count() or 1)))  # warm the pool
        init_ray(None)  # after the pool forked; cluster start-up is not part of the job's throughput
        for rep in range(args.repeats):
            t = time.perf_counter()
            results = list(pool.map(_decode, [(str(p), decode.to_dict()) for p in videos]))
            decode_s = time.perf_counter() - t
            n_clips = sum(len(r.clips) for r in results)
            rates["decode"].append(n_clips / decode_s)

            # tokenize only: the model on already-decoded clips, all cores
            pending = [PendingClip(video_id=f"v{i}", uri=r.uri, source=r.source, clip=c)
                       for i, r in enumerate(results) for c in r.clips]
            step(pending[: args.batch_size])  # warm-up
            t = time.perf_counter()
            step(pending)
            rates["tokenize"].append(n_clips / (time.perf_counter() - t))
            del results, pending

            for mode in modes:  # end to end through Ray, fresh output each time
                job = JobConfig(input=str(tmp / "videos"), output=str(tmp / f"ds-{mode}-{rep}"), decode=decode,
                                tokenize=tok_cfg, plan=PlanConfig(videos_per_shard=4),
                                execution=ExecConfig(worker_cpus=1.0, decode_cpus=0.5, decode_overlap=mode))
                t = time.perf_counter()
                result = run_job(job, progress=False)
                rates[f"e2e_{mode}"].append(n_clips / (time.perf_counter() - t))
                assert result.clips == n_clips, (result.clips, n_clips)

    best = {k: max(v) for k, v in rates.items()}
    median = {k: statistics.median(v) for k, v in rates.items()}
    out = {"clips": n_clips, "repeats": args.repeats, "rates": rates, "best": best, "median": median,
           "ideal_best": _ideal(best["decode"], best["tokenize"]),
           "ideal_median": _ideal(median["decode"], median["tokenize"]),
           "efficiency_best": {m: best[f"e2e_{m}"] / _ideal(best["decode"], best["tokenize"]) for m in modes},
           "efficiency_median": {m: median[f"e2e_{m}"] / _ideal(median["decode"], median["tokenize"]) for m in modes}}
    print(json.dumps(out, indent=1))
    print(f"\n{n_clips} clips, {args.repeats} repeats\n{'clips/s':<22} {'best':>8} {'median':>8}")
    for k in rates:
        print(f"{k:<22} {best[k]:8.2f} {median[k]:8.2f}")
    print(f"{'ideal':<22} {out['ideal_best']:8.2f} {out['ideal_median']:8.2f}")
    for m in modes:
        print(f"{'efficiency ' + m:<22} {out['efficiency_best'][m]:8.2f} {out['efficiency_median'][m]:8.2f}")


def _decode(args: tuple[str, dict]):  # noqa: ANN202 - DecodedVideo
    from pipeline.decode.step import DecodeConfig, DecodeStep

    path, cfg = args
    return DecodeStep(DecodeConfig.from_dict(cfg))(Path(path).read_bytes(), path)


if __name__ == "__main__":
    main()
