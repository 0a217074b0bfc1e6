"""A storage outage of 60 s in the middle of a job (a TCP proxy in front of the moto S3 server that
the test closes and reopens) ends with every video tokenized or with a non-zero exit naming what is
left; a rerun then completes the dataset, equal to an uninterrupted run. No error row is committed
for a video the outage made unreadable."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import s3fs
from pipeline_helpers import good_corpus, read_errors, read_rows

pytestmark = pytest.mark.timeout(900)


class FlakyProxy:
    """Forwards 127.0.0.1:port to a target; while `down`, refuses service: new connections are closed
    at once and open ones are cut."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.down = threading.Event()
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.server.accept()
            if self.down.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def outage(self) -> None:
        self.down.set()
        with self.lock:
            for s in self.open:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.open.clear()

    def restore(self) -> None:
        self.down.clear()


def test_outage_then_rerun_completes(s3_endpoint, s3_bucket, tiny_checkpoint, tmp_path):
    local = tmp_path / "videos"
    local.mkdir()
    good_corpus(local, 8)
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint}, skip_instance_cache=True)
    for p in sorted(local.iterdir()):
        fs.put_file(str(p), f"{s3_bucket}/in/{p.name}")
    proxy = FlakyProxy(int(s3_endpoint.rsplit(":", 1)[1]))
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", OMP_NUM_THREADS="1")
    env.pop("RAY_ADDRESS", None)

    def tokenize(out: Path, endpoint: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "jobs.cli", "tokenize", f"s3://{s3_bucket}/in", str(out), "--endpoint-url", endpoint,
             "--checkpoint", tiny_checkpoint, "--resolution", "32", "--clip-frames", "5", "--shard-size", "1",
             "--batch-size", "3", "--device", "cpu", "--json", "--fit-router", "0"],  # outages, not routing
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    reference = tokenize(tmp_path / "ref", s3_endpoint)
    assert reference.wait(timeout=400) == 0, reference.stderr.read()[-3000:]

    out = tmp_path / "out"
    job = tokenize(out, f"http://127.0.0.1:{proxy.port}")
    deadline = time.monotonic() + 300
    while not ((out / "_commits").exists() and any((out / "_commits").glob("*.json"))):
        assert job.poll() is None and time.monotonic() < deadline, job.stderr.read()[-3000:]
        time.sleep(0.05)
    proxy.outage()  # at least one shard is committed: the outage hits a job that is running
    time.sleep(60)
    proxy.restore()
    code = job.wait(timeout=400)
    stderr = job.stderr.read()
    committed = len(list((out / "_commits").glob("*.json")))
    if code == 0:
        assert committed == 8
    else:
        assert code == 1 and "not committed" in stderr, stderr[-3000:]
        rerun = tokenize(out, f"http://127.0.0.1:{proxy.port}")
        assert rerun.wait(timeout=400) == 0, rerun.stderr.read()[-3000:]
    assert read_rows(str(out)) == read_rows(str(tmp_path / "ref"))
    assert read_errors(str(out)) == []  # the outage left no error row behind
