"""The tokenize job on a real in-process Ray: local folders, bad inputs, resume, dead actors."""

from __future__ import annotations

import collections
import threading
import time
from pathlib import Path

import pytest
from pipeline_helpers import clip_keys, good_corpus, read_errors, read_rows, small_job

from media import moving_square_frames, write_audio, write_video
from pipeline.job.prepare import OutputMismatchError
from pipeline.exec.ray_exec import run_job
from pipeline.job.status import dataset_status
from pipeline.io.dataset import DatasetDir
from schemas.validate import validate_dataset

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    d = tmp_path_factory.mktemp("corpus")
    return d, good_corpus(d, 5)


@pytest.fixture(scope="module")
def reference(corpus, tiny_checkpoint, local_ray, tmp_path_factory) -> tuple[str, list[dict]]:
    """An uninterrupted run of the job: the dataset every other run must reproduce."""
    folder, _ = corpus
    out = str(tmp_path_factory.mktemp("ref") / "ds")
    run_job(small_job(str(folder), out, tiny_checkpoint), progress=False)
    return out, read_rows(out)


def test_folder_to_valid_dataset(corpus, reference, tiny_checkpoint):
    _, expected = corpus
    out, rows = reference
    report = validate_dataset(DatasetDir(out))
    assert report.ok, report.violations[:3]
    counts = collections.Counter(name for name, _ in clip_keys(rows))
    assert dict(counts) == expected
    assert len(set(clip_keys(rows))) == len(rows)  # every clip exactly once
    st = dataset_status(DatasetDir(out))
    assert st["finished"] and st["shards_done"] == st["shards"] == 3 and st["errors"] == 0

    from pipeline.loader.dataset import LoaderConfig, TokenDataset

    seen = [s for s in TokenDataset(out, LoaderConfig(mode="clips", shuffle=False))]
    assert len(seen) == len(rows)


def test_rerun_skips_committed_shards(corpus, reference, tiny_checkpoint):
    folder, _ = corpus
    out, rows = reference
    result = run_job(small_job(str(folder), out, tiny_checkpoint), progress=False)
    assert result.shards_run == 0 and result.shards_skipped == 3
    assert read_rows(out) == rows


def test_decode_modes_give_the_same_dataset(corpus, reference, tiny_checkpoint, tmp_path):
    """'overlap' (a sliding window decoding while the model runs) and 'alternate' (what 'auto'
    picks on CPU) differ only in timing: the dataset is the same, row for row."""
    import dataclasses

    from pipeline.job.job import ExecConfig
    from pipeline.job.job import decode_overlaps

    folder, _ = corpus
    _, ref_rows = reference
    job = small_job(str(folder), str(tmp_path / "ds"), tiny_checkpoint)
    job = dataclasses.replace(job, execution=dataclasses.replace(job.execution, decode_overlap="overlap",
                                                                 decode_window=1))
    run_job(job, progress=False)
    assert read_rows(str(tmp_path / "ds")) == ref_rows
    assert decode_overlaps(ExecConfig(), model_on_gpu=True) and not decode_overlaps(ExecConfig(), model_on_gpu=False)
    assert decode_overlaps(ExecConfig(decode_overlap="overlap"), model_on_gpu=False)
    assert not decode_overlaps(ExecConfig(decode_overlap="alternate"), model_on_gpu=True)
    with pytest.raises(ValueError, match="decode_overlap must be one of .* got 'sometimes'"):
        ExecConfig(decode_overlap="sometimes")


def test_rerun_with_other_settings_refused_then_overwrite(corpus, reference, tiny_checkpoint, tmp_path):
    folder, _ = corpus
    out, _ = reference
    with pytest.raises(OutputMismatchError, match=r"tokenize.beta: 1.0 -> 0.5"):
        run_job(small_job(str(folder), out, tiny_checkpoint, beta=0.5), progress=False)
    with pytest.raises(OutputMismatchError, match=r"tokenize.router: 'gain' -> 'elbo'"):
        run_job(small_job(str(folder), out, tiny_checkpoint, router="elbo"), progress=False)
    with pytest.raises(OutputMismatchError, match=r"plan.videos_per_shard: 2 -> 3"):
        run_job(small_job(str(folder), out, tiny_checkpoint, shard_size=3), progress=False)
    copy = tmp_path / "copy"
    run_job(small_job(str(folder), str(copy), tiny_checkpoint), progress=False)
    result = run_job(small_job(str(folder), str(copy), tiny_checkpoint, shard_size=3), overwrite=True,
                     progress=False)
    assert result.n_shards == 2 and result.shards_run == 2
    assert validate_dataset(DatasetDir(str(copy))).ok


def test_part_without_marker_is_redone(corpus, reference, tiny_checkpoint, tmp_path):
    folder, _ = corpus
    ref_out, ref_rows = reference
    out = tmp_path / "ds"
    run_job(small_job(str(folder), str(out), tiny_checkpoint), progress=False)
    (out / "_commits" / "part-000001.json").unlink()
    (out / "dataset.json").unlink()
    (out / "tokens" / "part-000001.parquet").write_bytes(b"half a parquet file")
    result = run_job(small_job(str(folder), str(out), tiny_checkpoint), progress=False)
    assert result.shards_run == 1
    assert read_rows(str(out)) == ref_rows


def test_killed_actor_shard_is_retried(corpus, reference, tiny_checkpoint, tmp_path):
    import ray

    folder, _ = corpus
    _, ref_rows = reference
    out = tmp_path / "ds"
    workers: list = []
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = run_job(small_job(str(folder), str(out), tiny_checkpoint, shard_size=1),
                                        progress=False, workers_out=workers)
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 120
    while not (out / "_commits").exists() or not list((out / "_commits").glob("*.json")):
        assert time.monotonic() < deadline and t.is_alive(), outcome
        time.sleep(0.05)
    victim = workers[0]
    ray.kill(victim, no_restart=True)  # dies while its next shard is in flight
    t.join(timeout=240)
    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    assert result.shard_retries >= 1
    rows = read_rows(str(out))
    assert sorted(clip_keys(rows)) == sorted(clip_keys(ref_rows))
    key = lambda r: (r["source_uri"].rsplit("/", 1)[-1], r["clip_index"])  # noqa: E731
    strip = lambda r: {k: v for k, v in r.items() if k != "source_uri"}  # noqa: E731
    assert [strip(r) for r in sorted(rows, key=key)] == [strip(r) for r in sorted(ref_rows, key=key)]


def test_bad_inputs_become_error_rows(tiny_checkpoint, local_ray, tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    good = moving_square_frames(10, 48, 64)
    write_video(d / "good.mp4", good, fps=10)
    full = write_video(tmp_path / "full.mp4", moving_square_frames(30, 64, 64), fps=10).read_bytes()
    (d / "truncated.mp4").write_bytes(full[: len(full) // 3])
    (d / "random.mp4").write_bytes(bytes(range(256)) * 40)
    (d / "empty.mp4").write_bytes(b"")
    (d / "notes.mp4").write_text("this is a text file, not a video\n" * 20)
    write_audio(d / "audio_only.mp4")
    write_video(d / "one_frame.mp4", moving_square_frames(1, 48, 64), fps=10)
    write_video(d / "odd_97x61.mp4", moving_square_frames(10, 61, 97), fps=10)
    write_video(d / "wide_1000x40.mp4", moving_square_frames(10, 40, 1000), fps=10)
    out = tmp_path / "ds"
    result = run_job(small_job(str(d), str(out), tiny_checkpoint, shard_size=4), progress=False)
    rows, errors = read_rows(str(out)), read_errors(str(out))
    clips = collections.Counter(name for name, _ in clip_keys(rows))
    # good files: 10 frames -> 2 clips of 5; a 1-frame video is padded into one clip
    assert clips == {"good.mp4": 2, "odd_97x61.mp4": 2, "wide_1000x40.mp4": 2, "one_frame.mp4": 1}
    by_file = collections.Counter(e["uri"].rsplit("/", 1)[-1] for e in errors)
    bad = {"truncated.mp4", "random.mp4", "empty.mp4", "notes.mp4", "audio_only.mp4"}
    assert set(by_file) == bad and all(n == 1 for n in by_file.values())
    for e in errors:
        name = e["uri"].rsplit("/", 1)[-1]
        assert name in e["message"], e
        assert e["kind"] == "permanent" and e["stage"] in ("read", "decode") and e["error_type"]
    assert result.errors == len(bad)
    assert validate_dataset(DatasetDir(str(out))).ok


def test_adaptive_checkpoint_gives_per_clip_budgets(corpus, adaptive_checkpoint, local_ray, tmp_path):
    from schemas.mask import popcount

    folder, expected = corpus
    out = tmp_path / "ds"
    # elbo: an untrained model gains nothing from tokens, so its gain slopes are all 0 (every clip
    # at the floor); its full-rate error still differs per clip (test_shipped covers `gain`)
    result = run_job(small_job(str(folder), str(out), adaptive_checkpoint, beta=0.5, router="elbo"), progress=False)
    rows = read_rows(str(out))
    assert len(rows) == sum(expected.values()) == result.clips
    cells = [r["grid_t"] * r["grid_h"] * r["grid_w"] for r in rows]
    n = [r["n_tokens"] for r in rows]
    assert all(len(r["tokens"]) == r["n_tokens"] == popcount(r["mask"]) for r in rows)
    assert all(c / 16 - 1 <= k < c for k, c in zip(n, cells))  # the budget drops tokens, never below 1/16
    assert len(set(n)) > 1  # budgets differ with content
    assert all(r["beta"] == 0.5 for r in rows)
    assert validate_dataset(DatasetDir(str(out))).ok
