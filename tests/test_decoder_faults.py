"""A decoder that crashes its process or hangs kills only its Ray task: it is retried, then
recorded as an error row, and the job finishes with every good clip."""

from __future__ import annotations

import collections
import os
import subprocess
import sys

import pytest
from pipeline_helpers import clip_keys, good_corpus, read_errors, read_rows

from media import moving_square_frames, write_video
from pipeline.decode.source import FAULT_ENV

pytestmark = pytest.mark.timeout(600)


def test_crashing_and_hanging_decoders_become_error_rows(tiny_checkpoint, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    expected = good_corpus(folder, 3)
    write_video(folder / "crash_me.mp4", moving_square_frames(10, 48, 64), fps=10)
    write_video(folder / "hang_me.mp4", moving_square_frames(10, 48, 64), fps=10)
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", OMP_NUM_THREADS="1")
    env[FAULT_ENV] = "crash=crash_me,hang=hang_me"
    env.pop("RAY_ADDRESS", None)
    out = tmp_path / "ds"
    proc = subprocess.run([sys.executable, "-m", "jobs.cli", "tokenize", str(folder), str(out), "--checkpoint",
                           tiny_checkpoint, "--resolution", "32", "--clip-frames", "5", "--shard-size", "5",
                           "--device", "cpu", "--decode-timeout", "25", "--json"],
                          env=env, capture_output=True, text=True, timeout=500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows, errors = read_rows(str(out)), read_errors(str(out))
    assert dict(collections.Counter(n for n, _ in clip_keys(rows))) == expected
    by_file = {e["uri"].rsplit("/", 1)[-1]: e for e in errors}
    assert set(by_file) == {"crash_me.mp4", "hang_me.mp4"}
    assert by_file["crash_me.mp4"]["error_type"] == "DecoderCrashed"
    assert by_file["hang_me.mp4"]["error_type"] == "DecoderTimeout"
    assert "crash_me.mp4" in by_file["crash_me.mp4"]["message"] and "2 attempts" in by_file["hang_me.mp4"]["message"]


def test_a_transient_failure_is_never_committed(tiny_checkpoint, tmp_path):
    """A video failing transiently on every try leaves its shard uncommitted (the job exits 1 naming
    it, the other shards are kept); a rerun once the cause is gone completes the dataset, equal to an
    uninterrupted run."""
    folder = tmp_path / "videos"
    folder.mkdir()
    expected = good_corpus(folder, 4)
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", OMP_NUM_THREADS="1")
    env.pop("RAY_ADDRESS", None)
    args = ["--checkpoint", tiny_checkpoint, "--resolution", "32", "--clip-frames", "5", "--shard-size", "2",
            "--device", "cpu"]

    def tokenize(out, fault: str = "") -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "jobs.cli", "tokenize", str(folder), str(out), *args],
                              env={**env, FAULT_ENV: fault}, capture_output=True, text=True, timeout=500)

    out = tmp_path / "ds"
    failed = tokenize(out, "transient=v03")
    assert failed.returncode == 1, failed.stderr[-3000:]
    assert "1 of 2 shards are not committed (shards [1])" in failed.stderr and "InjectedTransient" in failed.stderr
    assert sorted(p.name for p in (out / "_commits").iterdir()) == ["part-000000.json"]
    assert not (out / "dataset.json").exists()
    done = tokenize(out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(1 already done)" in done.stdout
    reference = tmp_path / "ref"
    assert tokenize(reference).returncode == 0
    assert read_rows(str(out)) == read_rows(str(reference)) and read_errors(str(out)) == []
    assert dict(collections.Counter(n for n, _ in clip_keys(read_rows(str(out))))) == expected
