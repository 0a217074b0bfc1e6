from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from media import frame_levels, index_frames, moving_square_frames, noise_frames, write_audio, write_video

from pipeline.decode.step import DecodeConfig, DecodedVideo, DecodeStep
from pipeline.decode.failures import VideoFailure
from pipeline.decode.source import fetch_bytes
from pipeline.io.storage import StorageConfig, filesystem

DECODERS = ["decord", "pyav"]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """40 frames at 24 fps whose gray level is 4 * frame index."""
    path = tmp_path_factory.mktemp("v") / "indexed.mp4"
    return write_video(path, index_frames(40), fps=24).read_bytes()


def _ok(result: DecodedVideo | VideoFailure) -> DecodedVideo:
    assert isinstance(result, DecodedVideo), result
    return result


@pytest.mark.parametrize("decoder", DECODERS)
def test_exact_frames_and_back_to_back_clips(indexed: bytes, decoder: str) -> None:
    r = _ok(DecodeStep(DecodeConfig(resolution=(64, 64), clip_frames=9, decoder=decoder))(indexed, "mem://a.mp4"))
    assert r.decoder == decoder and r.fallback_reason is None
    assert (r.source.width, r.source.height, r.source.fps, r.source.frame_count) == (64, 64, 24.0, 40)
    assert r.source.duration_s == pytest.approx(40 / 24, abs=0.05) and r.source.codec == "h264"
    assert [c.clip_index for c in r.clips] == [0, 1, 2, 3]  # 4 x 9 = 36 frames, the last 4 dropped
    assert [c.frame_start for c in r.clips] == [0, 9, 18, 27]
    for c in r.clips:
        assert c.frames.shape == (9, 64, 64, 3) and c.frames.dtype == np.uint8
        assert (c.frame_count, c.pad_frames, c.fps) == (9, 0, 24.0)
        assert frame_levels(c.frames).tolist() == list(range(c.frame_start, c.frame_start + 9))


@pytest.mark.parametrize("decoder", DECODERS)
def test_stride_max_clips_and_small_batches(indexed: bytes, decoder: str) -> None:
    cfg = DecodeConfig(resolution=(64, 64), clip_frames=5, clip_stride=3, max_clips=4, decoder=decoder, batch_frames=2)
    r = _ok(DecodeStep(cfg)(indexed, "a.mp4"))
    assert [c.frame_start for c in r.clips] == [0, 3, 6, 9]
    assert [frame_levels(c.frames).tolist() for c in r.clips][1] == [3, 4, 5, 6, 7]
    big = _ok(DecodeStep(DecodeConfig.from_dict({**cfg.to_dict(), "batch_frames": 64}))(indexed, "a.mp4"))
    assert all(np.array_equal(a.frames, b.frames) for a, b in zip(r.clips, big.clips))


@pytest.mark.parametrize("decoder", DECODERS)
def test_fps_resampling(indexed: bytes, decoder: str) -> None:
    down = _ok(DecodeStep(DecodeConfig(fps=8.0, resolution=(64, 64), clip_frames=5, decoder=decoder))(indexed, "a"))
    # 24 -> 8 fps keeps every 3rd frame: 13 output frames, 2 clips of 5.
    assert [frame_levels(c.frames).tolist() for c in down.clips] == [[0, 3, 6, 9, 12], [15, 18, 21, 24, 27]]
    assert [c.frame_start for c in down.clips] == [0, 15] and down.clips[0].fps == 8.0
    odd = _ok(DecodeStep(DecodeConfig(fps=10.0, resolution=(64, 64), clip_frames=5, decoder=decoder))(indexed, "a"))
    assert frame_levels(odd.clips[0].frames).tolist() == [0, 2, 5, 7, 10]  # nearest frame to j * 2.4
    up = _ok(DecodeStep(DecodeConfig(fps=48.0, resolution=(64, 64), clip_frames=5, max_clips=1, decoder=decoder))(indexed, "a"))
    assert frame_levels(up.clips[0].frames).tolist() == [0, 1, 1, 2, 2]


@pytest.mark.parametrize("decoder", DECODERS)
def test_resize_crop_and_pad_odd_and_wide_sizes(video_dir: Path, decoder: str) -> None:
    odd = write_video(video_dir / "odd.mp4", moving_square_frames(5, h=61, w=97)).read_bytes()
    wide_frames = np.zeros((5, 40, 1000, 3), np.uint8)
    wide_frames[:, :, 480:520] = 255  # a white band at the center of a black strip
    wide = write_video(video_dir / "wide.mp4", wide_frames).read_bytes()
    for data, src in ((odd, (61, 97)), (wide, (40, 1000))):
        for mode in ("crop", "pad"):
            cfg = DecodeConfig(resolution=(40, 56), resize_mode=mode, clip_frames=5, decoder=decoder)
            r = _ok(DecodeStep(cfg)(data, f"{src}.mp4"))
            assert (r.source.height, r.source.width) == src
            assert [c.frames.shape for c in r.clips] == [(5, 40, 56, 3)]
    crop = _ok(DecodeStep(DecodeConfig(resolution=(40, 56), clip_frames=5, decoder=decoder))(wide, "w"))
    # crop keeps the middle 56 of 1000 columns at full height: the 40-column white band, black beside it
    row = crop.clips[0].frames[0, 20, :, 0].astype(int)
    assert row[28] > 200 and row[0] < 40 and row[-1] < 40
    pad = _ok(DecodeStep(DecodeConfig(resolution=(40, 56), resize_mode="pad", clip_frames=5, decoder=decoder))(wide, "w"))
    f = pad.clips[0].frames[0].astype(int)  # 1000x40 fit into 56 wide -> ~2 rows tall, black bars above and below
    assert f[:15].max() == 0 and f[-15:].max() == 0 and f[19:21, 26:30].mean() > 100


def test_one_frame_video_pad_or_error(video_dir: Path) -> None:
    data = write_video(video_dir / "one.mp4", index_frames(1) + 100).read_bytes()
    r = _ok(DecodeStep(DecodeConfig(resolution=(64, 64), clip_frames=9))(data, "one.mp4"))
    (clip,) = r.clips
    assert (clip.frame_count, clip.pad_frames, clip.frame_start) == (9, 8, 0)
    assert all(np.array_equal(clip.frames[0], fr) for fr in clip.frames)
    fail = DecodeStep(DecodeConfig(resolution=(64, 64), clip_frames=9, short_policy="error"))(data, "s3://b/one.mp4")
    assert isinstance(fail, VideoFailure) and fail.permanent and fail.error_type == "TooShort"
    assert "s3://b/one.mp4: 1 frames" in fail.message and "one clip of 9" in fail.message


def _truncated_mp4(d: Path) -> bytes:
    data = write_video(d / "t.mp4", noise_frames(20)).read_bytes()
    return data[: len(data) // 2]


def _truncated_mkv(d: Path) -> bytes:
    # mkv declares no frame count: both decoders silently return the frames before the cut
    data = write_video(d / "t.mkv", noise_frames(40)).read_bytes()
    return data[: len(data) // 2]


BAD_INPUTS = {
    "truncated.mp4": (_truncated_mp4, "Unreadable"),
    "truncated.mkv": (_truncated_mkv, "Truncated"),
    "random.mp4": (lambda d: np.random.default_rng(1).bytes(20_000), "Unreadable"),
    "empty.mp4": (lambda d: b"", "EmptyFile"),
    "notes.mp4": (lambda d: b"just some text\n" * 50, "Unreadable"),
    "tone.m4a": (lambda d: write_audio(d / "tone.m4a").read_bytes(), "NoVideoStream"),
    "tone.wav": (lambda d: write_audio(d / "tone.wav", codec="pcm_s16le").read_bytes(), "NoVideoStream"),
    "tone.mp4": (lambda d: write_audio(d / "tone.mp4").read_bytes(), "NoVideoStream"),
}


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_is_one_permanent_failure(video_dir: Path, name: str, decoder: str) -> None:
    make, error_type = BAD_INPUTS[name]
    data = make(video_dir)
    uri = f"s3://bucket/bad/{name}"
    r = DecodeStep(DecodeConfig(resolution=(64, 64), clip_frames=5, decoder=decoder))(data, uri)
    assert isinstance(r, VideoFailure), r
    assert (r.uri, r.stage, r.permanent, r.error_type) == (uri, "decode", True, error_type)
    assert r.message.startswith(uri) and len(r.message) <= 500 and r.message.isprintable()
    assert VideoFailure.from_dict(r.to_dict()) == r
    if error_type == "Truncated":
        assert "20 frames decodable, 40 expected" in r.message or "19 frames decodable, 40 expected" in r.message


def test_decord_failure_falls_back_to_pyav(video_dir: Path) -> None:
    # decord 0.6 cannot read MPEG-TS from memory ("Unable to handle EOF"); PyAV can.
    data = write_video(video_dir / "v.ts", index_frames(12)).read_bytes()
    r = _ok(DecodeStep(DecodeConfig(resolution=(64, 64), clip_frames=5))(data, "v.ts"))
    assert r.decoder == "pyav" and "decord" in (r.fallback_reason or "")
    assert frame_levels(r.clips[1].frames).tolist() == [5, 6, 7, 8, 9]
    strict = DecodeStep(DecodeConfig(resolution=(64, 64), clip_frames=5, fallback=False))(data, "v.ts")
    assert isinstance(strict, VideoFailure) and strict.permanent and strict.error_type == "DECORDError"
    assert strict.message.startswith("v.ts: decord could not decode")


def test_decord_bad_resize_width_uses_pyav(indexed: bytes) -> None:
    r = _ok(DecodeStep(DecodeConfig(resolution=(48, 48), clip_frames=5, max_clips=1))(indexed, "a.mp4"))
    assert r.decoder == "pyav" and "width 48" in (r.fallback_reason or "")
    assert r.clips[0].frames.shape == (5, 48, 48, 3)


def test_file_like_input_and_read_failures(indexed: bytes, video_dir: Path) -> None:
    step = DecodeStep(DecodeConfig(resolution=(64, 64), clip_frames=9, max_clips=1))
    assert _ok(step(io.BytesIO(indexed), "a.mp4")).clips[0].frame_start == 0

    class Flaky(io.RawIOBase):
        def read(self, n: int = -1) -> bytes:
            raise TimeoutError("read timed out after 30 s")

    r = step(Flaky(), "s3://b/slow.mp4")
    assert isinstance(r, VideoFailure) and (r.stage, r.permanent) == ("read", False)
    assert "s3://b/slow.mp4" in r.message and "timed out" in r.message
    missing = fetch_bytes(str(video_dir / "missing.mp4"), attempts=1)
    assert isinstance(missing, VideoFailure) and (missing.stage, missing.permanent) == ("read", True)
    assert "missing.mp4" in missing.message


def test_fetch_from_s3(s3_endpoint: str, s3_bucket: str, indexed: bytes) -> None:
    storage = StorageConfig(endpoint_url=s3_endpoint)
    fs, _ = filesystem(f"s3://{s3_bucket}", storage)
    fs.pipe(f"{s3_bucket}/v/a.mp4", indexed)
    data = fetch_bytes(f"s3://{s3_bucket}/v/a.mp4", storage)
    assert data == indexed
    too_big = fetch_bytes(f"s3://{s3_bucket}/v/a.mp4", storage, max_bytes=100)
    assert isinstance(too_big, VideoFailure) and too_big.error_type == "TooLarge" and "max_bytes=100" in too_big.message


def test_config_validation() -> None:
    with pytest.raises(ValueError, match=r"clip_frames must be 1 \+ 4k .*got 8"):
        DecodeConfig(clip_frames=8)
    with pytest.raises(ValueError, match="unknown DecodeConfig keys: \\['clip_len'\\]"):
        DecodeConfig.from_dict({"clip_len": 9})
    with pytest.raises(ValueError, match="decoder must be one of .* got 'ffmpeg'"):
        DecodeConfig(decoder="ffmpeg")
    with pytest.raises(ValueError, match="resolution must be .* got \\(0, 64\\)"):
        DecodeConfig(resolution=(0, 64))
    with pytest.raises(ValueError, match="short_policy"):
        DecodeConfig(short_policy="skip")
    cfg = DecodeConfig.from_dict({"resolution": [32, 40], "fps": 12})
    assert cfg.resolution == (32, 40) and DecodeConfig.from_dict(cfg.to_dict()) == cfg


def test_clips_do_not_share_frames(indexed: bytes) -> None:
    for stride in (3, None):
        r = _ok(DecodeStep(DecodeConfig(resolution=(64, 64), clip_frames=5, clip_stride=stride, max_clips=3))(indexed, "a"))
        before = [c.frames.copy() for c in r.clips]
        r.clips[0].frames[:] = 0  # a consumer normalizing in place must not corrupt the next clip
        assert all(np.array_equal(c.frames, b) for c, b in zip(r.clips[1:], before[1:]))


@pytest.mark.parametrize("decoder", DECODERS)
def test_decodes_only_the_frames_clips_need(indexed: bytes, decoder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import decord

    calls: list[list[int]] = []
    real = decord.VideoReader.get_batch

    def spy(self: decord.VideoReader, indices: list[int]) -> object:
        calls.append(list(indices))
        return real(self, indices)

    monkeypatch.setattr(decord.VideoReader, "get_batch", spy)
    cfg = DecodeConfig(resolution=(64, 64), clip_frames=5, clip_stride=10, max_clips=2, batch_frames=3, decoder=decoder)
    r = _ok(DecodeStep(cfg)(indexed, "a.mp4"))
    assert [frame_levels(c.frames).tolist() for c in r.clips] == [[0, 1, 2, 3, 4], [10, 11, 12, 13, 14]]
    if decoder == "decord":  # batches of <= 3 sorted indices, none outside the two clips
        assert calls == [[0, 1, 2], [3, 4, 10], [11, 12, 13], [14]]
    else:
        assert calls == []
