"""A shard run in one process (`pipeline.tokenize.local`) writes exactly the bytes the Ray job
writes for it; the decode and tokenize steps share one `Step` shape."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from pipeline_helpers import good_corpus, small_job

from pipeline.exec.ray_exec import run_job
from pipeline.io.dataset import DatasetDir
from pipeline.plan.store import load_plan
from pipeline.tokenize.local import run_local_shard

pytestmark = pytest.mark.timeout(300)


def _files(root: Path) -> dict[str, bytes]:
    """Every part and commit marker of a dataset, by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for folder in ("tokens", "errors", "_commits")
            for p in sorted((root / folder).iterdir())}


def test_local_shard_writes_the_ray_jobs_bytes(tiny_checkpoint, local_ray, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    good_corpus(corpus, 5)
    (corpus / "v99-broken.mp4").write_bytes(b"not a video at all")  # a permanent failure: an error row
    ray_out, local_out = tmp_path / "ray", tmp_path / "local"
    job = small_job(str(corpus), str(ray_out), tiny_checkpoint)
    run_job(job, progress=False)

    plan = load_plan(DatasetDir(str(ray_out)))
    local_job = dataclasses.replace(job, output=str(local_out))
    commits = [run_local_shard(local_job, s.shard_id, list(s.entries)) for s in plan.shards()]

    assert sum(c.n_errors for c in commits) == 1 and sum(c.n_rows for c in commits) > 0
    ray_files = _files(ray_out)
    assert len(ray_files) == 3 * plan.n_shards
    assert _files(local_out) == ray_files


def test_decode_and_tokenize_steps_are_steps(tiny_checkpoint):
    from pipeline.decode.step import DecodeConfig, DecodeStep
    from pipeline.step import Step
    from pipeline.tokenize.step import TokenizeConfig, TokenizeStep

    assert isinstance(DecodeStep(DecodeConfig()), Step)
    assert isinstance(TokenizeStep(TokenizeConfig(checkpoint=tiny_checkpoint, device="cpu")), Step)
