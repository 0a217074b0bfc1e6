"""A user's mistakes get one `Error:` line naming the thing and the value, before Ray starts, with
exit status 2 for a bad option and 1 for anything else; the traceback only with -v."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_helpers import good_corpus

RAY_STARTS = "starting Ray"  # what tokenize prints just before Ray starts


def _run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    base = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    base.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "jobs.cli", *args], env={**base, **(env or {})}, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def _one_error_line(proc: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and RAY_STARTS not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    good_corpus(folder, 2)
    return folder


def test_tokenize_refuses_bad_inputs_before_ray(videos, tiny_checkpoint, tmp_path):
    ck = ["--checkpoint", tiny_checkpoint, "--resolution", "32", "--clip-frames", "5"]
    _one_error_line(_run("tokenize", str(tmp_path / "nope"), str(tmp_path / "o1"), *ck), 1, "not found", "nope")
    (tmp_path / "empty").mkdir()
    _one_error_line(_run("tokenize", str(tmp_path / "empty"), str(tmp_path / "o2"), *ck), 1, "no videos", "empty")
    (tmp_path / "afile").write_text("x")
    _one_error_line(_run("tokenize", str(videos), str(tmp_path / "afile"), *ck), 1, "is a file", "afile")
    _one_error_line(_run("tokenize", str(videos), str(tmp_path / "o3"), "--checkpoint", str(tmp_path / "no.st")), 1,
                    "no.st", "does not exist")
    _one_error_line(_run("tokenize", str(videos), str(tmp_path / "o4"), *ck, "--resolution", "30"), 2,
                    "--resolution", "30")
    _one_error_line(_run("tokenize", str(videos), str(tmp_path / "o5"), *ck, "--clip-frames", "16"), 2,
                    "clip_frames", "16")
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 6))  # nothing was written


def test_missing_s3_credentials_are_one_line(s3_endpoint, s3_bucket, tiny_checkpoint, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_EC2_METADATA_DISABLED="true", RAY_AUTH_MODE="disabled")
    proc = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "tokenize", f"s3://{s3_bucket}/videos", str(tmp_path / "out"),
         "--checkpoint", tiny_checkpoint, "--endpoint-url", s3_endpoint],
        env=env, capture_output=True, text=True, timeout=300)
    _one_error_line(proc, 1, f"s3://{s3_bucket}/videos", "credentials", "--profile", "AWS_ACCESS_KEY_ID", "--anon")


def test_status_and_inspect_of_no_dataset_fail(tmp_path):
    _one_error_line(_run("status", str(tmp_path / "missing")), 1, "no dataset", "missing")
    _one_error_line(_run("inspect", str(tmp_path / "missing")), 1, "no manifest", "missing")


def test_demo_checks_its_options_first(tmp_path):
    _one_error_line(_run("demo", "--out", str(tmp_path / "d1"), "--clip-frames", "16"), 2, "clip_frames", "16")
    _one_error_line(_run("demo", "--out", str(tmp_path / "d2"), "--size", "100"), 2, "100")
    _one_error_line(_run("demo", "--out", str(tmp_path / "d3"), "--checkpoint", str(tmp_path / "x.st")), 2,
                    "x.st", "does not exist")
    assert not any((tmp_path / d).exists() for d in ("d1", "d2", "d3"))


def test_unexpected_failures_are_one_line_and_verbose_shows_the_traceback(tmp_path):
    bad = tmp_path / "ds"
    (bad / "_commits").mkdir(parents=True)
    (bad / "plan.json").write_text("{")  # a plan that is not JSON: a runtime failure, not a usage error
    line = _one_error_line(_run("status", str(bad)), 1, "not valid JSON")
    assert line.startswith("Error: ValueError: ")
    verbose = _run("-v", "status", str(bad))
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr


def test_outputs_honour_the_umask(tmp_path):
    from test_schemas import META, make_clips

    from pipeline.io.dataset import DatasetDir
    from pipeline.io.writer import write_manifest, write_shard

    old = os.umask(0o027)
    try:
        ds = DatasetDir(str(tmp_path / "ds"))
        write_shard(ds, 0, make_clips(1, 1), [], META)
        write_manifest(ds, {})
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "ds").rglob("*") if p.is_file()]
    assert len(files) == 4
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o640}
