"""The job owns only what it wrote; INPUT has one spelling in the resume key; dangling links and
retries behave; error rows are reproducible. (Without Ray: these are decided before it starts.)"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pipeline_helpers import good_corpus, small_job
from test_schemas import META, make_clips

from pipeline.decode.failures import clean_message
from pipeline.decode.source import fetch_and_decode
from pipeline.decode.step import DecodeConfig, DecodeStep
from pipeline.job.job import ExecConfig, JobConfig
from pipeline.job.prepare import (
    PreflightError,
    clear_output,
    preflight,
    prepare_output,
    shards_with_transient_errors,
)
from pipeline.exec.ray_exec import retry_delay_s
from pipeline.io.dataset import DatasetDir
from pipeline.io.inputs import InputConfig, list_inputs
from pipeline.io.storage import StorageConfig
from pipeline.io.writer import write_manifest, write_shard
from schemas.errors import ErrorRow


@pytest.fixture()
def videos(tmp_path: Path) -> Path:
    folder = tmp_path / "videos"
    folder.mkdir()
    good_corpus(folder, 3)
    return folder


def _dataset(root: Path) -> None:
    ds = DatasetDir(str(root))
    write_shard(ds, 0, make_clips(2, 1), [], META)
    write_manifest(ds, {})
    (root / "job.json").write_text(json.dumps({"content": {}}))
    (root / "plan.json").write_text("{}")
    (root / "plan").mkdir()
    (root / "plan" / "gen-00000-0123456789ab.parquet").write_bytes(b"entries")


def test_overwrite_deletes_only_the_files_the_layout_names(tmp_path: Path) -> None:
    root = tmp_path / "out"
    _dataset(root)
    (root / "notes.txt").write_text("mine")
    (root / "tokens" / "notes.txt").write_text("mine too")
    (root / "tokens" / "part-12.parquet").write_text("not a part name the writer makes")
    (root / "tokens" / ".tmp-abc").write_text("a write that was killed")
    (root / "plan" / "notes.txt").write_text("mine in the plan folder")
    clear_output(DatasetDir(str(root)))
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert left == ["notes.txt", "plan/notes.txt", "tokens/notes.txt", "tokens/part-12.parquet"]


def test_a_foreign_folder_is_refused_before_anything_is_written(videos: Path, tmp_path: Path,
                                                                tiny_checkpoint: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(PreflightError, match="non-empty folder that is not an infotok dataset.*'notes.txt'"):
        preflight(small_job(str(videos), str(out), tiny_checkpoint))
    other = tmp_path / "other"
    other.mkdir()
    (other / "dataset.json").write_text('{"name": "somebody else\'s dataset"}')
    with pytest.raises(PreflightError, match="not an infotok dataset.*'dataset.json'"):
        preflight(small_job(str(videos), str(other), tiny_checkpoint))
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"] and len(list(other.iterdir())) == 1
    ours = tmp_path / "ours"
    _dataset(ours)
    assert preflight(small_job(str(videos), str(ours), tiny_checkpoint)).n_shards == 2  # a dataset: fine
    assert preflight(small_job(str(videos), str(tmp_path / "new"), tiny_checkpoint)).n_shards == 2


def test_input_spellings_are_one_resume_key(videos: Path, tmp_path: Path, tiny_checkpoint: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(videos.parent)
    spellings = ["videos", "videos/", "./videos", str(videos), str(videos) + "/", f"file://{videos}"]
    jobs = [small_job(s, str(tmp_path / "out"), tiny_checkpoint) for s in spellings]
    assert {j.input for j in jobs} == {str(videos)}
    assert JobConfig.from_dict(jobs[0].to_dict()) == jobs[0]
    first = prepare_output(jobs[1], META)
    assert len(first.todo) == 2
    # a job.json written by an older version holds INPUT as typed: still the same corpus
    job_file = tmp_path / "out" / "job.json"
    doc = json.loads(job_file.read_text())
    doc["content"]["input"] = "videos/"
    job_file.write_text(json.dumps(doc))
    for job in jobs:
        assert prepare_output(job, META).todo == first.todo


def test_a_dangling_link_is_an_error_row_not_a_silent_skip(videos: Path) -> None:
    os.symlink(videos / "nowhere.mp4", videos / "dangling.mp4")
    entries = {Path(e.uri).name: e for e in list_inputs(InputConfig(uri=str(videos)))}
    assert "dangling.mp4" in entries and entries["dangling.mp4"].size == -1
    result = fetch_and_decode(entries["dangling.mp4"].uri, StorageConfig(),
                              DecodeStep(DecodeConfig(resolution=(32, 32), clip_frames=5)))
    assert not result.ok and result.stage == "read" and result.permanent and "dangling.mp4" in result.message


def test_error_messages_are_reproducible() -> None:
    a = clean_message("[16:02:51] src/video/video_reader.cc:151: ERROR opening x.mp4 at 0x7f3a2b4c5d60")
    b = clean_message("[09:11:03] src/video/video_reader.cc:151: ERROR opening x.mp4 at 0x55d0c0ffee00")
    assert a == b == "src/video/video_reader.cc:151: ERROR opening x.mp4 at 0x?"


def test_committed_transient_rows_are_what_retry_errors_redoes(tmp_path: Path) -> None:
    ds = DatasetDir(str(tmp_path / "ds"))
    write_shard(ds, 0, make_clips(1, 1), [ErrorRow("/v/a.mp4", "decode", "permanent", "E", "bad")], META)
    write_shard(ds, 1, make_clips(1, 1, first_video=1), [ErrorRow("/v/b.mp4", "read", "transient", "T", "t")], META)
    write_shard(ds, 2, make_clips(1, 1, first_video=2), [], META)
    assert shards_with_transient_errors(ds, ds.commits()) == {1}


def test_shard_retries_back_off() -> None:
    ex = ExecConfig(retry_delay_s=2.0, max_retry_delay_s=10.0)
    for attempt, (low, high) in enumerate([(1, 3), (2, 6), (4, 12), (5, 15), (5, 15)], start=1):
        delays = [retry_delay_s(ex, attempt) for _ in range(50)]
        assert low <= min(delays) and max(delays) <= high
    with pytest.raises(ValueError, match="retry delays"):
        ExecConfig(retry_delay_s=5, max_retry_delay_s=1)
