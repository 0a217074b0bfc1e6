from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from media import index_frames, write_video

from pipeline.decode.step import DecodeConfig, DecodedVideo, DecodeStep
from pipeline.decode.failures import VideoFailure
from pipeline.decode.isolate import IsolatedDecoder, IsolationConfig, decode_isolated


def misbehave(data: bytes, uri: str) -> object:
    """Test hook run in the child: the payload says how to fail, else a real decode."""
    if data == b"abort":
        os.abort()
    if data == b"segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if data == b"hang":
        time.sleep(600)
    if data == b"raise":
        raise RuntimeError("hook raised")
    if data.startswith(b"crash-once:"):
        marker = Path(data.split(b":", 1)[1].decode())
        if not marker.exists():
            marker.write_text("crashed")
            os.abort()
        return "recovered"
    return DecodeStep(DecodeConfig(resolution=(32, 32), clip_frames=5))(data, uri)


@pytest.fixture(scope="module")
def video() -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return write_video(Path(d) / "v.mp4", index_frames(12)).read_bytes()


def test_crash_is_retried_then_permanent_and_decoder_recovers(video: bytes) -> None:
    with IsolatedDecoder(misbehave, IsolationConfig(timeout_s=60, attempts=2)) as dec:
        r = dec(b"abort", "s3://b/poison.mp4")
        assert isinstance(r, VideoFailure)
        assert (r.stage, r.permanent, r.error_type) == ("decode", True, "DecoderCrashed")
        assert r.message.startswith("s3://b/poison.mp4: decoder process killed by signal SIGABRT")
        assert "after 2 attempts" in r.message and dec.restarts == 2
        segv = dec(b"segv", "s.mp4")
        assert isinstance(segv, VideoFailure) and "SIGSEGV" in segv.message
        ok = dec(video, "good.mp4")  # the same decoder serves the next video
        assert isinstance(ok, DecodedVideo) and ok.clips[1].frames.shape == (5, 32, 32, 3)
        pid = dec._proc.pid
    assert dec._proc is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_hang_times_out(video: bytes) -> None:
    t0 = time.monotonic()
    r = decode_isolated(misbehave, b"hang", "slow.mp4", IsolationConfig(timeout_s=1.0, attempts=2))
    elapsed = time.monotonic() - t0
    assert isinstance(r, VideoFailure) and r.permanent and r.error_type == "DecoderTimeout"
    assert "no result after 1.0s (timeout_s=1)" in r.message
    assert 2.0 <= elapsed < 20


def test_transient_crash_then_success(tmp_path: Path) -> None:
    with IsolatedDecoder(misbehave, IsolationConfig(timeout_s=60, attempts=3)) as dec:
        assert dec(b"crash-once:" + str(tmp_path / "m").encode(), "flaky.mp4") == "recovered"
        assert dec.restarts == 1


def test_exception_and_bad_input_are_rows(video: bytes) -> None:
    with IsolatedDecoder(misbehave, IsolationConfig(timeout_s=60, attempts=1)) as dec:
        r = dec(b"raise", "x.mp4")
        assert isinstance(r, VideoFailure) and r.permanent and r.error_type == "RuntimeError"
        assert "x.mp4" in r.message and "hook raised" in r.message
        bad = dec(b"\x00" * 100, "zeros.mp4")
        assert isinstance(bad, VideoFailure) and bad.error_type == "Unreadable" and dec.restarts == 0


def test_isolation_config_validation() -> None:
    with pytest.raises(ValueError, match="attempts must be an int >= 1, got 0"):
        IsolationConfig(attempts=0)
    with pytest.raises(ValueError, match="unknown IsolationConfig keys"):
        IsolationConfig.from_dict({"timeout": 3})
