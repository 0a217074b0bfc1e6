"""A shard run in one process (`pipeline.tokenize.local`) writes exactly the bytes the Ray job
writes for it; the decode and tokenize steps share one `Step` shape."""

from __future__ import annotations

import dataclasses
import io
import re
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


def test_local_shard_writes_the_ray_jobs_bytes(tiny_checkpoint, local_ray, tmp_path, capfd):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    good_corpus(corpus, 5)
    (corpus / "v99-broken.mp4").write_bytes(b"not a video at all")  # a permanent failure: an error row
    ray_out, local_out = tmp_path / "ray", tmp_path / "local"
    job = small_job(str(corpus), str(ray_out), tiny_checkpoint, shard_size=6)  # one shard
    run_job(job, progress=True)
    # the progress line moves within the one shard: clips counted before it commits, with an ETA
    line = capfd.readouterr().err.replace("\r", "\n")
    assert "speed: 1 worker(s) on cpu, 32x32 px, 5-frame clips, router gain" in line
    before_commit = {m for m in re.findall(r"clips=(\d+).*shards=0/1", line)}
    assert len(before_commit - {"0"}) >= 1, line
    assert re.search(r"\d\d:\d\d<\d\d:\d\d", line) and "shards=1/1" in line

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


def test_a_shard_reports_its_running_totals(tiny_checkpoint, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    expected = good_corpus(corpus, 5)
    job = small_job(str(corpus), str(tmp_path / "out"), tiny_checkpoint, shard_size=5)
    from pipeline.io.inputs import InputConfig, list_inputs

    entries = list_inputs(InputConfig(uri=str(corpus)))
    seen: list[tuple[int, int]] = []
    commit = run_local_shard(job, 0, entries, on_progress=lambda v, c: seen.append((v, c)))
    assert seen[-1] == (5, commit.n_rows) == (5, sum(expected.values()))
    assert len({c for _, c in seen}) >= 3  # clips counted batch by batch, not once at the end
    assert all(a <= b for a, b in zip(seen, seen[1:]))  # running totals never go back


def test_progress_line_names_clips_rates_and_an_eta():
    from pipeline.job.progress import JobProgress, speed_line

    out = io.StringIO()
    bar = JobProgress(videos_planned=8, videos_done=2, shards_planned=4, shards_done=1, file=out)
    bar.show(1, 3)
    bar.show(3, 9, shards_done=2, errors=1)
    bar.close()
    text = out.getvalue()
    assert "5/8" in text and "clips=9" in text and "planned=~18" in text and "shards=2/4" in text
    assert "errors=1" in text and re.search(r"clips/s=\d+\.\d\d", text)
    assert re.search(r"\d\d:\d\d<\d\d:\d\d", text)  # elapsed<remaining
    line = speed_line("cpu", 2, (256, 256), 17, "gain2", (1, 4, 5))
    assert "--resolution 128 (~4x fewer pixels)" in line and "--router latent" in line and "GPU" in line
    assert "--router" not in speed_line("cuda:0", 1, (128, 128), 17, "latent", (1, 0, 1))
