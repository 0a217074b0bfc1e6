"""A real DDP run: torchrun --nproc-per-node 2 (gloo, CPU) trains a tiny LM over TokenDataLoader
(tests/ddp_lm.py); both ranks take the same number of steps, a checkpoint resumes at world size 1,
and the samples seen equal one uninterrupted pass."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from test_schemas import META, make_clips

from pipeline.io.dataset import DatasetDir
from pipeline.io.writer import WriterConfig, write_manifest, write_shard

SCRIPT = str(Path(__file__).with_name("ddp_lm.py"))
ROOT = str(Path(__file__).resolve().parents[1])


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args: list[str], nproc: int) -> None:
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(nproc),
               "--master-addr", "127.0.0.1", "--master-port", str(_port()), SCRIPT, *args]
    else:
        cmd = [sys.executable, SCRIPT, *args]
    # start_new_session: a hang is ended by the timeout with the whole group, nothing left behind
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        raise AssertionError(f"{' '.join(cmd)} hung (a rank waiting in a collective?)")
    assert proc.returncode == 0, out[-3000:]


def _seen(out: Path, tag: str) -> tuple[dict[int, int], list[int]]:
    """Steps per rank, and the sample numbers each rank trained on (padding repeats left out)."""
    steps, seen = {}, []
    for f in sorted(out.glob(f"steps-{tag}-rank*.json")):
        steps[int(f.stem.rsplit("rank", 1)[1])] = json.loads(f.read_text())["steps"]
    for f in sorted(out.glob(f"seen-{tag}-rank*.jsonl")):
        for line in f.read_text().splitlines():
            rec = json.loads(line)
            seen += [i for i, pad in zip(rec["sample_index"], rec["padding"]) if not pad]
    return steps, seen


@pytest.mark.timeout(900)
def test_torchrun_two_ranks_equal_steps_and_resume_at_world_size_one(tmp_path: Path) -> None:
    data = str(tmp_path / "ds")
    first = 0
    for s in range(3):  # uneven: 2, 5 and 3 videos per shard, row groups of different sizes
        n = (2, 5, 3)[s]
        write_shard(DatasetDir(data), s, make_clips(n, 3, seed=s, first_video=first), [], META,
                    WriterConfig(row_group_tokens=150))
        first += n
    write_manifest(DatasetDir(data), {})
    out = tmp_path / "out"
    out.mkdir()

    _run([data, str(out), "--tag", "full", "--workers", "1"], nproc=2)
    steps, full = _seen(out, "full")
    assert set(steps) == {0, 1} and steps[0] == steps[1] > 2, steps
    assert sorted(full) == list(range(len(full))), "one uninterrupted pass sees every sample once"

    _run([data, str(out), "--tag", "head", "--stop-after", "2"], nproc=2)
    _run([data, str(out), "--tag", "tail", "--resume", str(out / "ckpt")], nproc=1)
    head_steps, head = _seen(out, "head")
    tail_steps, tail = _seen(out, "tail")
    assert head_steps == {0: 2, 1: 2} and set(tail_steps) == {0}
    assert len(head + tail) == len(set(head + tail)), "a sample was seen twice"
    assert sorted(head + tail) == sorted(full), "resumed at world size 1, the run saw other samples than one pass"
