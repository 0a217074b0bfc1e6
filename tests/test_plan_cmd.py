"""`infotok plan INPUT OUTPUT`: lists and plans without decoding, reports what it found, writes the
plan into a fresh OUTPUT (which `tokenize` then takes up) and only compares against an existing one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pipeline.plan.store import load_plan
from pipeline.io.dataset import DatasetDir
from pipeline.io.storage import StorageConfig, filesystem


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "jobs.cli", "plan", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def _ok(*args: str) -> dict:
    proc = _run(*args, "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_plan_a_folder_then_compare_a_grown_one(tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    for name, data in [("a/x.mp4", b"1"), ("a/y.MKV", b"22"), ("b/z.mp4", b"1"), ("notes.txt", b"n"),
                       (".hidden.mp4", b"h")]:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)
    got = _ok(str(src), str(out), "--shard-size", "2")
    assert (got["videos"], got["bytes"], got["shards"], got["extensions"], got["skipped"]) == \
        (3, 4, 2, {".mp4": 2, ".mkv": 1}, 2)
    assert got["written"] and got["missing"] == 0 and got["listed_twice"] == 0
    plan = load_plan(DatasetDir(str(out)))
    assert [Path(e.uri).name for e in plan.entries] == ["x.mp4", "y.MKV", "z.mp4"] and plan.n_shards == 2
    human = _run(str(src), str(out), "--shard-size", "2")
    assert human.returncode == 0 and "3 videos" in human.stdout and "already holds a plan" in human.stdout

    (src / "c.mp4").write_bytes(b"333")
    (src / "a" / "x.mp4").write_bytes(b"changed")
    before = (out / "plan.json").read_bytes()
    again = _ok(str(src), str(out), "--shard-size", "2")
    assert (again["written"], again["added"], again["changed"], again["removed"]) == (False, 1, 1, 0)
    assert (out / "plan.json").read_bytes() == before  # compared, not written

    wrong = _run(str(src), str(out), "--shard-size", "3")
    assert wrong.returncode == 1 and "videos_per_shard differs: existing plan 2, new 3" in wrong.stderr
    other = tmp_path / "other"
    other.mkdir()
    (other / "q.mp4").write_bytes(b"q")
    refused = _run(str(other), str(out), "--shard-size", "2")
    assert refused.returncode == 1 and "holds the plan of another input" in refused.stderr


def test_plan_an_s3_list_file_counts_repeats_copies_and_missing(s3_endpoint: str, s3_bucket: str,
                                                                 tmp_path: Path) -> None:
    storage = StorageConfig(endpoint_url=s3_endpoint)
    fs, _ = filesystem(f"s3://{s3_bucket}", storage)
    fs.pipe(f"{s3_bucket}/v/real.mp4", b"abc")
    rows = [{"uri": f"s3://{s3_bucket}/v/a.mp4", "size": 10, "etag": "e1"},
            {"uri": f"s3://{s3_bucket}/v/b.mp4", "size": 10, "etag": "e1"},  # same content as a.mp4
            {"uri": f"s3://{s3_bucket}/v/a.mp4", "size": 10, "etag": "e1"},  # listed twice
            {"uri": f"s3://{s3_bucket}/v/c.mp4", "size": 20, "etag": "e2"},
            {"uri": f"s3://{s3_bucket}/v/real.mp4"},  # no size/etag: one HEAD
            {"uri": f"s3://{s3_bucket}/v/gone.mp4"}]  # no size/etag, and not there
    fs.pipe(f"{s3_bucket}/lists/l.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    got = _ok(f"s3://{s3_bucket}/lists/l.jsonl", f"s3://{s3_bucket}/out", "--endpoint-url", s3_endpoint)
    assert (got["videos"], got["listed_twice"], got["shared_content"], got["missing"], got["stat_requests"]) == \
        (5, 1, 2, 1, 2)
    assert got["bytes"] == 10 + 10 + 20 + 3 and got["shards"] == 1
    plan = load_plan(DatasetDir(f"s3://{s3_bucket}/out", storage))
    assert [e.uri.rsplit("/", 1)[-1] for e in plan.entries] == ["a.mp4", "b.mp4", "c.mp4", "gone.mp4", "real.mp4"]
    assert [e.size for e in plan.entries] == [10, 10, 20, -1, 3]


def test_plan_errors_are_one_line(tmp_path: Path) -> None:
    missing = _run(str(tmp_path / "nope"), str(tmp_path / "out"))
    assert missing.returncode == 1 and missing.stderr.count("Error:") == 1 and "nope" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad = _run(str(tmp_path), str(tmp_path / "out"), "--shard-size", "0")
    assert bad.returncode == 2 and "videos_per_shard must be an integer >= 1, got 0" in bad.stderr
    (tmp_path / "mine.txt").write_text("a user's file")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "v.mp4").write_bytes(b"v")
    foreign = _run(str(tmp_path / "in"), str(tmp_path))
    assert foreign.returncode == 1 and "not an infotok dataset" in foreign.stderr
