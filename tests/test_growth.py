"""A rerun over a grown input tokenizes only the new videos, into a new generation of shards:
committed parts stay byte for byte, the union equals a clean run over the whole input (also when
the growth run is killed and rerun); removed and changed videos are reported, kept, or redone
with --on-change retokenize."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pipeline_helpers import good_corpus, read_errors, read_rows

from pipeline.plan.store import load_plan
from pipeline.job.status import dataset_status
from pipeline.io.dataset import DatasetDir
from schemas.validate import validate_dataset

pytestmark = pytest.mark.timeout(900)


def _cmd(folder: Path, out: Path, ckpt: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "jobs.cli", "tokenize", str(folder), str(out), "--checkpoint", ckpt,
            "--resolution", "32", "--clip-frames", "5", "--shard-size", "1", "--batch-size", "3", "--device", "cpu",
            "--json", "--fit-router", "0", *extra]  # growth, not routing: no per-corpus fit


def _env() -> dict[str, str]:
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", OMP_NUM_THREADS="1")
    env.pop("RAY_ADDRESS", None)
    return env


def _run(folder: Path, out: Path, ckpt: str, *extra: str) -> dict:
    proc = subprocess.run(_cmd(folder, out, ckpt, *extra), env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _add(folder: Path, names: list[str], seed: int) -> None:
    """Real videos under new names (the corpus helper names its files v00, v01, ...)."""
    tmp = folder.parent / f"new-{seed}"
    tmp.mkdir()
    good_corpus(tmp, len(names) + seed)
    for name, src in zip(names, sorted(tmp.iterdir())[seed:]):
        shutil.move(src, folder / name)
    shutil.rmtree(tmp)


def _parts(out: Path) -> dict[str, bytes]:
    return {f"{d}/{p.name}": p.read_bytes() for d in ("tokens", "errors", "_commits") for p in (out / d).glob("*")}


def _key(r: dict) -> tuple[str, int]:
    return r["source_uri"], r["clip_index"]


def test_growth_adds_a_generation_and_leaves_committed_parts(tiny_checkpoint: str, tmp_path: Path) -> None:
    folder, out = tmp_path / "videos", tmp_path / "out"
    folder.mkdir()
    good_corpus(folder, 4)
    first = _run(folder, out, tiny_checkpoint)
    assert (first["n_shards"], first["generations"], first["added"]) == (4, 1, 0)
    before = _parts(out)

    # growth 1, killed mid-way (the driver and all it started), then rerun
    _add(folder, [f"w{i}.mp4" for i in range(4)], seed=1)
    proc = subprocess.Popen(_cmd(folder, out, tiny_checkpoint), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    while len(list((out / "_commits").glob("*.json"))) < 5:
        assert proc.poll() is None, "the growth run finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    # until the new generation is complete, readers keep the previous dataset, whole
    assert [p.shard for p in DatasetDir(str(out)).read_manifest().parts] == [0, 1, 2, 3]
    plan = load_plan(DatasetDir(str(out)), entries=False)
    assert [list(r) for r in plan.generation_shards()] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    st = dataset_status(DatasetDir(str(out)))
    assert (st["generations"], st["shards"], st["finished"]) == (2, 8, False)
    rerun = _run(folder, out, tiny_checkpoint)
    assert rerun["added"] == 0 and rerun["generations"] == 2 and rerun["shards_skipped"] >= 5
    assert rerun["shards_run"] + rerun["shards_skipped"] == 8

    # growth 2, uninterrupted: exactly the new videos are decoded
    _add(folder, ["x0.mp4", "x1.mp4"], seed=2)
    grown = _run(folder, out, tiny_checkpoint)
    assert (grown["added"], grown["videos"], grown["shards_run"], grown["generations"]) == (2, 2, 2, 3), grown
    after = _parts(out)
    assert {k: after[k] for k in before} == before, "a committed part changed"

    clean = _run(folder, tmp_path / "clean", tiny_checkpoint)
    assert clean["n_shards"] == grown["n_shards"] == 10
    assert sorted(read_rows(str(out)), key=_key) == sorted(read_rows(str(tmp_path / "clean")), key=_key)
    assert validate_dataset(DatasetDir(str(out))).ok


def test_removed_and_changed_videos_are_kept_or_retokenized(tiny_checkpoint: str, tmp_path: Path) -> None:
    folder, out = tmp_path / "videos", tmp_path / "out"
    folder.mkdir()
    good_corpus(folder, 4)
    _run(folder, out, tiny_checkpoint)
    before = _parts(out)
    (folder / "v01.mp4").unlink()
    shutil.copy(folder / "v02.mp4", folder / "v00.mp4")  # v00 changes: new bytes, new mtime

    kept = _run(folder, out, tiny_checkpoint)
    assert (kept["removed"], kept["changed"], kept["added"], kept["shards_run"]) == (1, 1, 0, 0), kept
    assert _parts(out) == before

    redo = _run(folder, out, tiny_checkpoint, "--on-change", "retokenize")
    # the plan now holds the new versions: this run found them changed (again) against the old plan
    assert (redo["removed"], redo["changed"], redo["shards_run"]) == (1, 1, 2), redo
    after = _parts(out)
    assert {k: v for k, v in after.items() if "000002" in k or "000003" in k} == \
        {k: v for k, v in before.items() if "000002" in k or "000003" in k}
    rows = read_rows(str(out))
    names = {r["source_uri"].rsplit("/", 1)[-1] for r in rows}
    assert "v01.mp4" not in names
    assert [e["uri"].rsplit("/", 1)[-1] for e in read_errors(str(out))] == ["v01.mp4"]
    v00 = [r for r in rows if r["source_uri"].endswith("v00.mp4")]
    v02 = [r for r in rows if r["source_uri"].endswith("v02.mp4")]
    assert [r["tokens"] for r in v00] == [r["tokens"] for r in v02]  # v00 now holds v02's content
    assert validate_dataset(DatasetDir(str(out))).ok
    again = _run(folder, out, tiny_checkpoint, "--on-change", "retokenize")
    assert (again["removed"], again["changed"], again["shards_run"]) == (0, 0, 0), again
