"""`infotok decode DATASET --video-id ID [--clip N] --out clip.mp4 [--png]`: one video's clips, rebuilt
from the tokens and masks the dataset stores, written as a video (or a PNG of frames), with the PSNR
against the source video when the source is reachable (decoded the way the job decoded it)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click

from jobs.options import json_option, storage_from, storage_options

logger = logging.getLogger(__name__)


def _rows_of(reader: Any, video: str) -> tuple[list[dict[str, Any]], str]:
    """The dataset's rows of one video (video_id, source URI or file name), by clip index, and its video_id."""
    import pyarrow.compute as pc

    rows: list[dict[str, Any]] = []
    for part in reader.parts:
        # the id columns first; the whole part (already verified) only where the video is
        ids = reader.read_part(part.shard, ["video_id", "source_uri"])
        hit = pc.or_(pc.or_(pc.equal(ids["video_id"], video), pc.equal(ids["source_uri"], video)),
                     pc.ends_with(ids["source_uri"], "/" + video))
        if pc.any(hit).as_py():
            rows.extend(reader.read_part(part.shard, verify=False).filter(hit).to_pylist())
    ids = sorted({r["video_id"] for r in rows})
    if len(ids) > 1:
        raise click.BadParameter(f"{video!r} names {len(ids)} videos ({', '.join(ids[:4])}): give a video_id",
                                 param_hint="--video-id")
    return sorted(rows, key=lambda r: r["clip_index"]), (ids[0] if ids else "")


@click.command("decode")
@click.argument("dataset")
@click.option("--video-id", "video", required=True,
              help="The video: its video_id (see `infotok inspect --json`), its source URI or its file name.")
@click.option("--clip", "clip_index", type=int, default=None, help="Only this clip index (default: every clip, in order).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Video to write (.mp4, .mkv, ...); with --png, a PNG of frames.")
@click.option("--png", is_flag=True, help="Write a PNG of frames (source above decoded when the source is reachable).")
@click.option("--checkpoint", default=None, help="Tokenizer checkpoint (default: the shipped one); must be the "
                                                "one that wrote the dataset.")
@click.option("--no-source", is_flag=True, help="Do not read the source video (no PSNR).")
@click.option("--base", default=None, metavar="KIND:ENCODER,DECODER",
              help="Where a checkpoint trained on an external base (cosmos) finds its files [default: $INFOTOK_BASE, "
                   "else the paths it records]; their SHA-256 must match the checkpoint's.")
@json_option
@storage_options
def decode_cmd(dataset: str, video: str, clip_index: int | None, out_path: str, png: bool, checkpoint: str | None,
               no_source: bool, as_json: bool, base: str | None, **o: Any) -> None:
    """Decode one video's tokens from DATASET back to frames and write them to --out."""
    import numpy as np
    import torch

    from pipeline.decode.failures import VideoFailure
    from pipeline.decode.source import fetch_and_decode
    from pipeline.decode.step import DecodeConfig, DecodeStep
    from pipeline.decode.compare_png import comparison_png
    from pipeline.decode.video_write import write_video
    from pipeline.io.dataset import DatasetNotReadyError
    from pipeline.io.reader import DatasetReader
    from tokenizer.detokenize import Detokenizer, TokenizerMismatchError, to_frames
    from tokenizer.eval.metrics import psnr
    from tokenizer.video import frames_to_tensor

    storage = storage_from(o)
    reader = DatasetReader(dataset, storage)
    try:
        manifest = reader.manifest
    except DatasetNotReadyError as exc:
        raise click.ClickException(str(exc)) from None
    rows, video_id = _rows_of(reader, video)
    if not rows:
        raise click.BadParameter(f"dataset {dataset} holds no clips of {video!r}", param_hint="--video-id")
    if clip_index is not None:
        have = [r["clip_index"] for r in rows]
        rows = [r for r in rows if r["clip_index"] == clip_index]
        if not rows:
            raise click.BadParameter(f"video {video_id} has clips {have}, not {clip_index}", param_hint="--clip")
    from tokenizer.checkpoint import CheckpointError

    try:
        detok = Detokenizer.from_checkpoint(checkpoint, base=base)
    except CheckpointError as exc:  # e.g. an external base file missing or changed: one line naming it
        raise click.ClickException(str(exc)) from None
    try:
        videos = detok.decode_rows(rows, manifest.tokenizer_id)
    except TokenizerMismatchError as exc:
        raise click.BadParameter(str(exc), param_hint="--checkpoint") from None
    recon = np.concatenate([to_frames(v) for v in videos])  # (T_total, H, W, 3) uint8

    source_psnr: list[float | None] = [None] * len(rows)
    source_frames: np.ndarray | None = None
    why_no_source = "--no-source" if no_source else None
    if not no_source:
        params = manifest.params.get("decode")
        decoded = fetch_and_decode(rows[0]["source_uri"], storage, DecodeStep(DecodeConfig.from_dict(params))) \
            if params else None
        if decoded is None:
            why_no_source = "the dataset does not record its decode settings"
        elif isinstance(decoded, VideoFailure):
            why_no_source = decoded.message
        else:
            by_index = {c.clip_index: c for c in decoded.clips}
            clips = [by_index.get(r["clip_index"]) for r in rows]
            if any(c is None for c in clips):
                why_no_source = f"the source no longer yields clips {[r['clip_index'] for r in rows]}"
            else:
                for i, (clip, v) in enumerate(zip(clips, videos)):
                    source_psnr[i] = float(psnr(v, frames_to_tensor(clip.frames).to(v.dtype)).mean())
                source_frames = np.concatenate([c.frames for c in clips])
    fps = float(rows[0]["fps"]) or 24.0
    out = Path(out_path)
    if png:
        shown = [("source", source_frames)] if source_frames is not None else []
        comparison_png([*shown, ("decoded", recon)], out, f"{video_id} clips {[r['clip_index'] for r in rows]}",
                       n_frames=8)
    else:
        write_video(out, recon, fps=fps)
    result = {
        "video_id": video_id, "source_uri": rows[0]["source_uri"], "out": str(out),
        "tokenizer_id": manifest.tokenizer_id,
        "clips": [{"clip_index": r["clip_index"], "n_tokens": r["n_tokens"], "rate": r["rate"], "psnr": p}
                  for r, p in zip(rows, source_psnr)],
        "psnr": float(np.mean(source_psnr)) if source_frames is not None else None,
        "no_psnr_because": why_no_source,
    }
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"wrote {out} ({len(recon)} frames of {len(rows)} clips of {video_id}, {rows[0]['source_uri']})")
    for c in result["clips"]:
        p = f"PSNR {c['psnr']:.2f} dB" if c["psnr"] is not None else "no PSNR"
        click.echo(f"  clip {c['clip_index']}: {c['n_tokens']} tokens (rate {c['rate']:.3f}), {p}")
    if why_no_source:
        click.echo(f"no PSNR against the source: {why_no_source}")
