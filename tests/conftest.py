"""Shared fixtures: a real moto S3 server on 127.0.0.1, and real encoded videos."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # torch-heavy: imported late in the fixtures
    from tokenizer.adaptive.routers.gain2_curves import Gain2Calibration

# Tests choose Ray's auth mode explicitly (STACK-NOTES): every in-process test cluster runs
# without token auth, so that one started by a CLI test and one started by a fixture in the same
# process agree; the job-submission test turns token auth on for its own head.
os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """URL of a moto S3 server (its own process) that s3fs reaches over HTTP."""
    port = _free_port()
    env = dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError(f"moto server did not start on {url}")
    old = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL")}
    os.environ["AWS_ACCESS_KEY_ID"] = "testing"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
    try:
        yield url
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture()
def s3_bucket(s3_endpoint: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty bucket; returns its name."""
    import s3fs

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint}, skip_instance_cache=True)
    name = "b-" + request.node.name.lower().replace("_", "-").replace("[", "-").replace("]", "")[:40]
    name = "".join(c for c in name if c.isalnum() or c == "-").strip("-")
    if fs.exists(name):
        fs.rm(name, recursive=True)
    fs.mkdir(name)
    return name


@pytest.fixture()
def video_dir(tmp_path: Path) -> Path:
    d = tmp_path / "videos"
    d.mkdir()
    return d


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An untrained `tiny` tokenizer checkpoint (seeded): fast, deterministic tokens."""
    import torch

    from tokenizer.checkpoint import save_tokenizer
    from tokenizer.config import preset
    from tokenizer.nn.model import VideoTokenizer

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny-random.safetensors"
    save_tokenizer(VideoTokenizer(preset("tiny")), path)
    return str(path)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """An in-process Ray for this module; token auth explicitly off (tests choose, see STACK-NOTES)."""
    import shutil
    import tempfile

    import ray

    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")}
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # AF_UNIX socket paths must stay < 108 bytes
    ray.init(num_cpus=2, address="local", include_dashboard=False, log_to_driver=False, _temp_dir=temp)
    try:
        yield
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def gain2_calibration() -> Gain2Calibration:
    """gain2 calibration curves: four straight lines in ln r at the router's probe rates."""
    import torch

    from tokenizer.adaptive.routers.gain2_curves import GAIN2_PROBE_RATES, Gain2Calibration

    rates = GAIN2_PROBE_RATES + (1.0,)
    return Gain2Calibration(rates=rates, curves=torch.tensor([[20.0 + s * math.log(r) for r in rates]
                                                              for s in (0.5, 1.0, 1.5, 2.0)]))


@pytest.fixture(scope="session")
def adaptive_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An untrained InfoTok (adaptive) `tiny` checkpoint with a fixed E[I], E[s] and gain2 calibration
    (straight curves of slopes 0.5 to 2 dB per unit of ln r)."""
    import torch

    from tokenizer.adaptive.modules import ADAPTIVE_PRESETS
    from tokenizer.adaptive.model import AdaptiveTokenizer
    from tokenizer.checkpoint import save_tokenizer
    from tokenizer.config import preset
    from tokenizer.nn.model import VideoTokenizer

    torch.manual_seed(0)
    model = AdaptiveTokenizer(VideoTokenizer(preset("tiny")), ADAPTIVE_PRESETS["tiny"])
    model.set_mean_info(0.3, 1)
    model.set_mean_info(1.0, 1, "gain")
    model.set_gain2(gain2_calibration())
    path = tmp_path_factory.mktemp("ckpt") / "tiny-adaptive-random.safetensors"
    save_tokenizer(model, path)
    return str(path)
