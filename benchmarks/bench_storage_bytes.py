"""On-disk bytes per kept token (mask and metadata included) of the token format.

Synthetic clips by default: FSQ ids from per-channel quantized smooth random fields
(skewed, spatially and temporally correlated, as FSQ code usage is), masks from the top-k of
a smooth score at a fixed rate. `--from-dataset PATH` measures a real dataset instead.

    python benchmarks/bench_storage_bytes.py --rate 0.5
    python benchmarks/bench_storage_bytes.py --from-dataset s3://bucket/out --endpoint-url ...
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time

import numpy as np

from pipeline.io.dataset import DatasetDir
from pipeline.io.storage import StorageConfig
from pipeline.io.writer import WriterConfig, write_manifest, write_shard
from schemas.mask import pack_mask
from schemas.tokens import FSQ_LEVELS, ClipTokens, TokenFileMeta


def smooth_field(rng: np.random.Generator, shape: tuple[int, ...], corr: float) -> np.ndarray:
    """Unit-variance random field with a Gaussian spectrum of correlation length `corr` cells."""
    noise = rng.standard_normal(shape)
    spec = np.fft.fftn(noise)
    freqs = np.meshgrid(*[np.fft.fftfreq(n) for n in shape], indexing="ij")
    k2 = sum(f**2 for f in freqs)
    field = np.real(np.fft.ifftn(spec * np.exp(-0.5 * k2 * (2 * np.pi * corr) ** 2)))
    return (field - field.mean()) / (field.std() + 1e-9)


def realistic_clip(rng: np.random.Generator, grid: tuple[int, int, int], rate: float, noise: float,
                   index: int) -> ClipTokens:
    """One synthetic clip: ids from tanh-bounded, rounded smooth fields (one per FSQ channel)."""
    t, h, w = grid
    idx = np.zeros(grid, dtype=np.int64)
    stride = 1
    for level in FSQ_LEVELS:
        z = smooth_field(rng, grid, corr=2.0) + noise * rng.standard_normal(grid)
        k = np.rint((np.tanh(0.8 * z) + 1) / 2 * (level - 1)).astype(np.int64)
        idx += k * stride
        stride *= level
    score = smooth_field(rng, grid, corr=1.5) + 0.3 * rng.standard_normal(grid)
    n_keep = max(1, round(rate * t * h * w))
    flat = score.reshape(-1)
    keep = np.zeros(flat.size, dtype=bool)
    keep[np.argpartition(-flat, n_keep - 1)[:n_keep]] = True
    keep = keep.reshape(grid)
    tokens = idx[keep].astype(np.uint16)
    frames = 1 + 4 * (t - 1)
    return ClipTokens(
        video_id=f"video-{index // 4:08d}", source_uri=f"s3://corpus/videos/{index // 4:08d}.mp4",
        clip_index=index % 4, frame_start=(index % 4) * frames, frame_count=frames, fps=24.0,
        height=8 * h, width=8 * w, grid=grid, tokens=tokens, mask=pack_mask(keep), rate=rate,
        info=float(rng.uniform(0.02, 0.2)), beta=1.0, source_duration_s=float(rng.uniform(5, 60)),
        source_fps=30.0, source_height=720, source_width=1280,
    )


def entropy_bits(ids: np.ndarray) -> float:
    counts = np.bincount(ids.astype(np.int64))
    p = counts[counts > 0] / ids.size
    return float(-(p * np.log2(p)).sum())


def measure_synthetic(n_clips: int, grid: tuple[int, int, int], rate: float, noise: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    clips = [realistic_clip(rng, grid, rate, noise, i) for i in range(n_clips)]
    meta = TokenFileMeta(tokenizer_id="bench", beta=1.0, expected_info=0.1)
    with tempfile.TemporaryDirectory() as root:
        t0 = time.perf_counter()
        commit = write_shard(DatasetDir(root), 0, clips, [], meta, config=WriterConfig())
        write_s = time.perf_counter() - t0
        write_manifest(DatasetDir(root), {"bench": True})
    n_tok = commit.n_tokens
    ids = np.concatenate([c.tokens for c in clips])
    return {
        "source": "synthetic", "clips": n_clips, "grid": list(grid), "rate": rate, "noise": noise,
        "kept_tokens": n_tok, "token_part_bytes": commit.token_bytes,
        "bytes_per_kept_token": commit.token_bytes / n_tok,
        "id_entropy_bits": entropy_bits(ids), "uniform_bits": math.log2(64000),
        "mask_bytes_raw_per_token": sum(len(c.mask) for c in clips) / n_tok,
        "row_groups": len(commit.row_groups), "write_s": write_s,
    }


def measure_dataset(root: str, storage: StorageConfig) -> dict:
    m = DatasetDir(root, storage).read_manifest()
    total = sum(p.token_bytes for p in m.parts)
    return {"source": root, "clips": m.n_clips, "kept_tokens": m.n_tokens, "token_part_bytes": total,
            "bytes_per_kept_token": total / max(1, m.n_tokens), "mean_rate_hint": None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from-dataset", default=None)
    ap.add_argument("--endpoint-url", default=None)
    ap.add_argument("--clips", type=int, default=400)
    ap.add_argument("--grid", default="5,32,32", help="latent t,h,w (default: 17 frames at 256x256)")
    ap.add_argument("--rate", type=float, default=0.5)
    ap.add_argument("--noise", type=float, default=0.35, help="iid noise added to the smooth fields")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.from_dataset:
        out = measure_dataset(args.from_dataset, StorageConfig(endpoint_url=args.endpoint_url))
    else:
        grid = tuple(int(x) for x in args.grid.split(","))
        out = measure_synthetic(args.clips, grid, args.rate, args.noise, args.seed)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
