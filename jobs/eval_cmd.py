"""`infotok eval`: reconstruction quality (PSNR, SSIM) of a tokenizer over a corpus."""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict

import click

logger = logging.getLogger(__name__)


@click.command("eval")
@click.argument("input_uri", metavar="INPUT")
@click.option("--checkpoint", default=None, help="Tokenizer checkpoint (default: the shipped one).")
@click.option("--resolution", default=128, show_default=True, type=int, help="Square working size (multiple of 8).")
@click.option("--clip-frames", default=17, show_default=True, type=int, help="Frames per clip (1 + 4k).")
@click.option("--max-videos", default=None, type=int, help="Evaluate the first N videos only.")
@click.option("--max-clips", default=4, show_default=True, type=int, help="Clips per video at most.")
@click.option("--num-procedural", default=20, show_default=True, type=int, help="Clips when INPUT is 'procedural'.")
@click.option("--batch-size", default=4, show_default=True, type=int)
@click.option("--endpoint-url", default=None, help="S3 endpoint for s3:// inputs.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
def eval_cmd(input_uri: str, checkpoint: str | None, resolution: int, clip_frames: int, max_videos: int | None,
             max_clips: int, num_procedural: int, batch_size: int, endpoint_url: str | None, as_json: bool) -> None:
    """PSNR / SSIM of reconstructions over INPUT: a folder, s3:// prefix, list file, or 'procedural'
    (held-out procedural clips whose photographs are never used in training)."""
    from tqdm import tqdm

    from tokenizer.checkpoint import load_tokenizer
    from tokenizer.reconstruct import round_trip

    if resolution % 8:
        raise click.BadParameter(f"must be a multiple of 8, got {resolution}", param_hint="--resolution")
    tok = load_tokenizer(checkpoint)
    groups: list[tuple[str, list]] = []  # (source, clips)
    failures: list[dict] = []
    if input_uri == "procedural":
        from tokenizer.corpus import heldout_clips

        by_kind: dict[str, list] = defaultdict(list)
        for kind, clip in heldout_clips(num_procedural, clip_frames, resolution, resolution):
            by_kind[f"procedural:{kind}"].append(clip)
        groups = sorted(by_kind.items())
    else:
        from pipeline.clip_source import SourcedClip, iter_clips
        from pipeline.decode import DecodeConfig
        from pipeline.storage import StorageConfig

        decode = DecodeConfig(resolution=(resolution, resolution), clip_frames=clip_frames, max_clips=max_clips)
        by_uri: dict[str, list] = defaultdict(list)
        for item in iter_clips(input_uri, decode, StorageConfig(endpoint_url=endpoint_url), max_videos):
            if isinstance(item, SourcedClip):
                by_uri[item.uri].append(item.clip.frames)
            else:
                failures.append(item.to_dict())
        groups = list(by_uri.items())
    if not groups:
        raise click.ClickException(f"no clips to evaluate in {input_uri} ({len(failures)} videos failed)")
    rows, all_p, all_s, n_clips = [], [], [], 0
    t0 = time.perf_counter()
    for source, clips in tqdm(groups, desc="eval", unit="video", disable=as_json):
        results = round_trip(tok.model, clips, batch_size)
        p = [r.psnr for r in results]
        s = [r.ssim for r in results]
        all_p += p
        all_s += s
        n_clips += len(clips)
        rows.append({"source": source, "clips": len(clips), "psnr": sum(p) / len(p), "ssim": sum(s) / len(s)})
    elapsed = time.perf_counter() - t0
    summary = {
        "tokenizer_id": tok.tokenizer_id,
        "input": input_uri,
        "resolution": resolution,
        "clip_frames": clip_frames,
        "clips": n_clips,
        "psnr": sum(all_p) / len(all_p),
        "ssim": sum(all_s) / len(all_s),
        "clips_per_s": n_clips / elapsed,
        "per_source": rows,
        "failures": failures,
    }
    if as_json:
        click.echo(json.dumps(summary, indent=1))
        return
    width = max(len(r["source"]) for r in rows)
    click.echo(f"{'source':<{width}}  clips   PSNR dB   SSIM")
    for r in rows:
        click.echo(f"{r['source']:<{width}}  {r['clips']:>5}  {r['psnr']:8.2f}  {r['ssim']:.3f}")
    click.echo(f"{'mean':<{width}}  {n_clips:>5}  {summary['psnr']:8.2f}  {summary['ssim']:.3f}   "
               f"({summary['clips_per_s']:.2f} clips/s, tokenizer {tok.tokenizer_id})")
    for f in failures:
        click.echo(f"failed: {f['message']}")
