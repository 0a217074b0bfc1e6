"""`infotok demo`: the whole product on its embedded defaults, on one machine.

Generates sample videos, tokenizes them with the shipped checkpoint, reconstructs them
(mp4 + side-by-side PNG) and prints a table of clip, tokens and PSNR.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click
import numpy as np

logger = logging.getLogger(__name__)


def side_by_side(original: np.ndarray, reconstruction: np.ndarray, path: Path, n_frames: int = 4) -> Path:
    """PNG with original frames on the top row and reconstructed frames below."""
    from PIL import Image

    idx = np.linspace(0, len(original) - 1, n_frames).round().astype(int)
    top = np.concatenate([original[i] for i in idx], axis=1)
    bottom = np.concatenate([reconstruction[i] for i in idx], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([top, bottom], axis=0)).save(path)
    return path


@click.command("demo")
@click.option("--out", "out_dir", default="infotok-demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--checkpoint", default=None, help="Tokenizer checkpoint (default: the shipped one).")
@click.option("--size", default=128, show_default=True, type=int, help="Sample video size (square, multiple of 8).")
@click.option("--frames", default=17, show_default=True, type=int, help="Frames per clip (1 + 4k).")
@click.option("--beta", default=0.5, show_default=True, type=float,
              help="InfoTok compression knob in (0, 1] (adaptive checkpoints only).")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
def demo(out_dir: str, checkpoint: str | None, size: int, frames: int, beta: float, as_json: bool) -> None:
    """Tokenize and reconstruct generated sample videos with the shipped tokenizer."""
    from tqdm import tqdm

    from pipeline.decode import DecodeConfig, DecodeStep
    from pipeline.failures import VideoFailure
    from pipeline.video_write import write_video
    from tokenizer.checkpoint import load_tokenizer
    from tokenizer.reconstruct import adaptive_round_trip, round_trip

    from jobs.samples import write_samples

    out = Path(out_dir)
    tok = load_tokenizer(checkpoint)
    videos = write_samples(out / "videos", size=size, frames=2 * frames)
    step = DecodeStep(DecodeConfig(resolution=(size, size), clip_frames=frames))
    rows = []
    for path in tqdm(videos, desc="demo", unit="video", disable=as_json):
        decoded = step(path.read_bytes(), str(path))
        if isinstance(decoded, VideoFailure):
            raise click.ClickException(f"sample video failed to decode: {decoded.message}")
        clips = [c.frames for c in decoded.clips]
        if tok.adaptive is not None:  # InfoTok: each clip gets its own token budget
            try:
                results = adaptive_round_trip(tok.adaptive, clips, beta)
            except ValueError as exc:
                raise click.ClickException(str(exc)) from exc
            n_tokens = sum(r.tokens.n_tokens for r in results)
            n_positions = sum(r.tokens.n_positions for r in results)
            info = float(np.mean([r.tokens.info for r in results]))
        else:
            results = round_trip(tok.model, clips)
            n_tokens = n_positions = sum(r.indices.size for r in results)
            info = float("nan")
        recon = np.concatenate([r.reconstruction for r in results])
        original = np.concatenate(clips)
        rec_path = write_video(out / "reconstructions" / path.name, recon, fps=decoded.source.fps)
        png = side_by_side(original, recon, out / "compare" / f"{path.stem}.png")
        rows.append({
            "clip": path.stem,
            "clips": len(clips),
            "tokens": int(n_tokens),
            "positions": int(n_positions),
            "kept": n_tokens / n_positions,
            "info": info,
            "psnr": float(np.mean([r.psnr for r in results])),
            "ssim": float(np.mean([r.ssim for r in results])),
            "reconstruction": str(rec_path),
            "compare_png": str(png),
        })
    if as_json:
        click.echo(json.dumps({"tokenizer_id": tok.tokenizer_id, "adaptive": tok.is_adaptive,
                               "beta": beta if tok.is_adaptive else None, "out": str(out), "videos": rows}, indent=1))
        return
    mode = f"InfoTok, beta {beta:g}" if tok.is_adaptive else "fixed rate"
    click.echo(f"tokenizer {tok.tokenizer_id} ({mode}); outputs in {out}/")
    click.echo(f"{'clip':<18} {'clips':>5} {'tokens':>7} {'kept':>6} {'I(x)':>7} {'PSNR dB':>8} {'SSIM':>6}")
    for r in rows:
        click.echo(f"{r['clip']:<18} {r['clips']:>5} {r['tokens']:>7} {r['kept']:>6.1%} {r['info']:>7.4f} "
                   f"{r['psnr']:>8.2f} {r['ssim']:>6.3f}")
