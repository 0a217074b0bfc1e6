"""`infotok decode`: a video's clips rebuilt from a beta-0.5 dataset, written as mp4 / PNG, with a PSNR
against the source equal to what the evaluation path (route, then reconstruct) gives for that clip."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from pipeline_helpers import small_job

from jobs.cli import main
from pipeline.decode.step import DecodeConfig, DecodeStep
from pipeline.decode.video_write import write_video
from pipeline.io.dataset import DatasetDir
from pipeline.io.inputs import ManifestEntry, video_id_of
from pipeline.io.writer import write_manifest
from pipeline.tokenize.local import run_local_shard
from pipeline.tokenize.step import TokenizeConfig
from tokenizer.checkpoint import load_tokenizer
from tokenizer.data.procedural import make_clip
from tokenizer.eval.metrics import psnr
from tokenizer.video import frames_to_tensor

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, DecodeConfig]:
    """A two-video dataset of the shipped checkpoint at beta 0.5 (gain router), written in-process."""
    root = tmp_path_factory.mktemp("decode")
    videos = []
    for i, kind in enumerate(("photo", "shapes")):
        clip = make_clip(np.random.default_rng([3, i]), 18, 32, 32, kind, heldout=True)
        videos.append(write_video(root / f"{i}_{kind}.mp4", clip, fps=12))
    job = small_job(str(root), str(root / "ds"), "unused", beta=0.5)
    job = dataclasses.replace(job, decode=DecodeConfig(resolution=(32, 32), clip_frames=9),
                              tokenize=TokenizeConfig(beta=0.5, router="gain", batch_size=2, device="cpu"))
    entries = [ManifestEntry(uri=str(v), size=v.stat().st_size, version="1", video_id=video_id_of(str(v)))
               for v in videos]
    run_local_shard(job, 0, entries)
    write_manifest(DatasetDir(job.output), job.to_dict())
    return job.output, videos[0], job.decode


def _reference_psnr(video: Path, decode: DecodeConfig, clip_index: int) -> float:
    """The evaluation path: route the source clip at beta 0.5, reconstruct it from the kept positions."""
    model = load_tokenizer(None).adaptive
    clip = next(c for c in DecodeStep(decode)(video.read_bytes(), str(video)).clips if c.clip_index == clip_index)
    x = frames_to_tensor(clip.frames)
    with torch.no_grad():
        keep = model.route(x, 0.5, router="gain").keep
        recon = model(x, keep).reconstruction.clamp(-1, 1)
    return float(psnr(recon, x).mean())


def test_decode_writes_the_clip_and_its_psnr_matches_the_evaluation(dataset, tmp_path) -> None:
    root, video, decode = dataset
    out = tmp_path / "clip.mp4"
    res = CliRunner().invoke(main, ["decode", root, "--video-id", video.name, "--clip", "1", "--out", str(out),
                                    "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert [c["clip_index"] for c in doc["clips"]] == [1] and doc["clips"][0]["rate"] < 1
    ref = _reference_psnr(video, decode, 1)
    print(f"decode PSNR {doc['psnr']:.4f} dB, evaluation path {ref:.4f} dB")
    assert abs(doc["psnr"] - ref) < 0.1
    assert out.stat().st_size > 0
    frames = DecodeStep(DecodeConfig(resolution=(32, 32), clip_frames=9))(out.read_bytes(), str(out)).clips[0].frames
    assert frames.shape == (9, 32, 32, 3)

    png = tmp_path / "clip.png"
    res = CliRunner().invoke(main, ["decode", root, "--video-id", doc["video_id"], "--png", "--out", str(png)])
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "clip 0:" in res.output and "PSNR" in res.output


def test_decode_refuses_what_it_cannot_decode_in_one_line(dataset, tmp_path, tiny_checkpoint) -> None:
    root, video, _ = dataset
    out = str(tmp_path / "x.mp4")
    res = CliRunner().invoke(main, ["decode", root, "--video-id", "nope.mp4", "--out", out])
    assert res.exit_code == 2 and "holds no clips of 'nope.mp4'" in res.output
    res = CliRunner().invoke(main, ["decode", root, "--video-id", video.name, "--clip", "7", "--out", out])
    assert res.exit_code == 2 and "not 7" in res.output
    res = CliRunner().invoke(main, ["decode", root, "--video-id", video.name, "--checkpoint", tiny_checkpoint,
                                    "--out", out])
    assert res.exit_code == 2 and "were written by tokenizer" in res.output
    assert not Path(out).exists()
