"""`infotok demo`: the whole product on its embedded defaults, on one machine.

Generates sample videos of clearly different complexity, runs the real tokenize job on them
(local Ray, the shipped checkpoint, a Parquet token dataset), then reads the dataset back,
rebuilds every clip from its stored tokens and keep-mask, and writes reconstructions (mp4 and
a side-by-side PNG) with a table of clip, tokens and PSNR.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path

import click
import numpy as np

from jobs.options import (
    BETA_HELP,
    check_fit_option,
    clip_frames_option,
    fit_router_option,
    json_option,
    parse_resolution,
    resolution_option,
    router_option,
)
from tokenizer.adaptive.routers.registry import DEFAULT_BETA

logger = logging.getLogger(__name__)


@click.command("demo")
@click.option("--out", "out_dir", default="infotok-demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--checkpoint", default=None, help="Tokenizer checkpoint (default: the shipped one).")
@resolution_option("128", "--size")
@clip_frames_option(17, "--frames")
@click.option("--beta", default=DEFAULT_BETA, show_default=True, type=float,
              help=f"InfoTok compression knob: {BETA_HELP}")
@router_option()
@fit_router_option()
@json_option
def demo(out_dir: str, checkpoint: str | None, resolution: str, clip_frames: int, beta: float, router: str,
         fit_router: int | None, as_json: bool) -> None:
    """Tokenize generated sample videos into a dataset with the Ray pipeline, then rebuild them from it."""
    import torch

    from jobs.samples import write_samples
    from pipeline.decode.step import DecodeConfig, DecodeStep
    from pipeline.decode.failures import VideoFailure
    from pipeline.job.job import ExecConfig, JobConfig
    from pipeline.plan.plan import PlanConfig
    from pipeline.exec.ray_exec import run_job
    from pipeline.tokenize.step import TokenizeConfig
    from pipeline.decode.compare_png import comparison_png
    from pipeline.decode.video_write import write_video
    from pipeline.io.inputs import normalize_uri
    from pipeline.io.reader import DatasetReader
    from schemas.validate import validate_dataset
    from pipeline.job.prepare import PreflightError, preflight
    from pipeline.job.router_fit import resolve_router_fit
    from tokenizer.checkpoint import DEFAULT_CHECKPOINT, CheckpointError, read_header
    from tokenizer.detokenize import Detokenizer
    from tokenizer.eval.metrics import psnr, ssim
    from tokenizer.video import frames_to_tensor, tensor_to_frames

    out = Path(out_dir)
    check_fit_option(fit_router, router)
    height, width = parse_resolution(resolution)
    frames = clip_frames
    try:  # every setting is checked before anything is written or started
        decode = DecodeConfig(resolution=(height, width), clip_frames=frames)
        job = JobConfig(input=str(out / "videos"), output=str(out / "dataset"), decode=decode,
                        tokenize=TokenizeConfig(checkpoint=checkpoint, beta=beta, router=router),
                        plan=PlanConfig(videos_per_shard=2), execution=ExecConfig(decode_cpus=0.5))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        read_header(checkpoint or DEFAULT_CHECKPOINT)
    except CheckpointError as exc:
        raise click.BadParameter(str(exc), param_hint="--checkpoint") from None
    videos = write_samples(out / "videos", height=height, width=width, frames=2 * frames)
    try:
        plan = preflight(job)
    except PreflightError as exc:
        raise click.ClickException(str(exc)) from None
    say = (lambda text: None) if as_json else (lambda text: click.echo(text, err=True))
    try:  # the demo's corpus is small: a default fit it cannot make is a warning, and the demo goes on
        job = resolve_router_fit(job, fit_router, overwrite=True)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    fit = job.tokenize.fit
    if fit is not None:
        say(f"fitted the {router} router on {fit.sample_clips} clips of the sample videos")
    say(f"tokenizing {len(videos)} sample videos into {job.output} with Ray (a local cluster starts first) ...")
    result = run_job(job, overwrite=True, progress=not as_json, plan=plan)
    say("rebuilding every clip from the tokens and masks the dataset stores ...")
    dataset = DatasetReader(job.output)
    report = validate_dataset(dataset)
    if not report.ok:
        raise click.ClickException(f"the demo dataset failed validation: {report.violations[0]}")

    rows_by_uri: dict[str, list[dict]] = defaultdict(list)
    for part in dataset.parts:
        for row in dataset.read_part(part.shard).to_pylist():
            rows_by_uri[row["source_uri"]].append(row)
    detok = Detokenizer.from_checkpoint(checkpoint)
    tok = detok.loaded
    step = DecodeStep(decode)
    table = []
    for path in videos:
        decoded = step(path.read_bytes(), str(path))
        if isinstance(decoded, VideoFailure):
            raise click.ClickException(f"sample video failed to decode: {decoded.message}")
        rows = sorted(rows_by_uri[normalize_uri(str(path))], key=lambda r: r["clip_index"])
        if not rows:
            raise click.ClickException(f"the dataset {job.output} holds no clips of {path}")
        # rebuild each clip from what the dataset stores: ids + packed mask
        recon_clips = detok.decode_rows(rows, dataset.manifest.tokenizer_id)
        original = torch.cat([frames_to_tensor(c.frames) for c in decoded.clips])
        recon = torch.cat(recon_clips)
        n_tokens = sum(r["n_tokens"] for r in rows)
        n_positions = sum(r["grid_t"] * r["grid_h"] * r["grid_w"] for r in rows)
        recon_frames = np.concatenate(list(tensor_to_frames(recon)))
        orig_frames = np.concatenate([c.frames for c in decoded.clips])
        clip_psnr = float(psnr(recon, original).mean())
        caption = f"{path.stem}: {n_tokens} tokens ({n_tokens / n_positions:.0%} kept), PSNR {clip_psnr:.2f} dB"
        table.append({
            "clip": path.stem,
            "clips": len(rows),
            "tokens": int(n_tokens),
            "kept": n_tokens / n_positions,
            "info": float(np.mean([r["info"] for r in rows])),
            "psnr": clip_psnr,
            "ssim": float(ssim(recon, original).mean()),
            "reconstruction": str(write_video(out / "reconstructions" / path.name, recon_frames,
                                              fps=decoded.source.fps)),
            "compare_png": str(comparison_png([("original", orig_frames), ("reconstruction", recon_frames)],
                                              out / "compare" / f"{path.stem}.png",
                                              caption)),
        })
    if as_json:
        click.echo(json.dumps({"tokenizer_id": tok.tokenizer_id, "adaptive": tok.is_adaptive,
                               "beta": beta if tok.is_adaptive else None,
                               "router": router if tok.is_adaptive else None, "dataset": job.output,
                               "fit": None if fit is None else {"describe": fit.corpus_fit().describe(),
                                                                "clips": fit.sample_clips},
                               "dataset_clips": result.clips, "dataset_tokens": result.tokens,
                               "videos": table}, indent=1))
        return
    basis = f" with its per-corpus fit ({fit.sample_clips} clips)" if fit is not None else ""
    mode = f"InfoTok, {router} router, beta {beta:g}{basis}" if tok.is_adaptive else "fixed rate"
    click.echo(f"tokenizer {tok.tokenizer_id} ({mode}); dataset {job.output} ({result.clips} clips, "
               f"{result.tokens} tokens); reconstructions in {out}/compare and {out}/reconstructions")
    click.echo(f"{'clip':<18} {'clips':>5} {'tokens':>7} {'kept':>6} {'signal':>7} {'PSNR dB':>8} {'SSIM':>6}")
    for r in table:
        click.echo(f"{r['clip']:<18} {r['clips']:>5} {r['tokens']:>7} {r['kept']:>6.1%} {r['info']:>7.4f} "
                   f"{r['psnr']:>8.2f} {r['ssim']:>6.3f}")
