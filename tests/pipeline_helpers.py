"""Shared helpers of the pipeline tests: small corpora and dataset readers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from media import moving_square_frames, noise_frames, write_video
from pipeline.decode.step import DecodeConfig
from pipeline.job.job import ExecConfig, JobConfig
from pipeline.plan.plan import PlanConfig
from pipeline.io.storage import StorageConfig
from pipeline.tokenize.step import TokenizeConfig


def good_corpus(folder: Path, n: int = 5) -> dict[str, int]:
    """n real mp4s of different lengths; returns name -> expected clips (5-frame clips, back to back)."""
    expected = {}
    for i in range(n):
        frames = 5 * (i % 3 + 1) + i % 2  # 5, 11, 15, 6, 10 ... frames
        clip = moving_square_frames(frames, 48, 64, seed=i) if i % 2 == 0 else noise_frames(frames, 48, 64, seed=i)
        name = f"v{i:02d}.mp4"
        write_video(folder / name, clip, fps=10)
        expected[name] = frames // 5
    return expected


def small_job(input_uri: str, output: str, checkpoint: str, shard_size: int = 2, beta: float = 1.0,
              storage: StorageConfig = StorageConfig(), router: str = "gain") -> JobConfig:
    return JobConfig(
        input=input_uri,
        output=output,
        decode=DecodeConfig(resolution=(32, 32), clip_frames=5),
        tokenize=TokenizeConfig(checkpoint=checkpoint, beta=beta, router=router, batch_size=3, device="cpu"),
        plan=PlanConfig(videos_per_shard=shard_size),
        storage=storage,
        execution=ExecConfig(decode_timeout_s=60, worker_cpus=0.5, decode_cpus=0.5),
    )


def _read_parts(root: str, folder: str, storage: StorageConfig) -> list[dict]:
    from pipeline.io.storage import filesystem
    from schemas.layout import join

    fs, path = filesystem(join(root, folder), storage)
    rows = []
    for name in sorted(fs.ls(path, detail=False)):
        with fs.open(name, "rb") as f:
            rows += pq.read_table(f).to_pylist()
    return rows


def read_rows(root: str, storage: StorageConfig = StorageConfig()) -> list[dict]:
    """Every token row of every part, in part order, as plain Python (for exact comparisons)."""
    return _read_parts(root, "tokens", storage)


def read_errors(root: str, storage: StorageConfig = StorageConfig()) -> list[dict]:
    """Every error row, in part order."""
    return _read_parts(root, "errors", storage)


def clip_keys(rows: list[dict]) -> list[tuple[str, int]]:
    return [(r["source_uri"].rsplit("/", 1)[-1], r["clip_index"]) for r in rows]


def as_array(x: object) -> np.ndarray:
    return np.asarray(x)
