"""`infotok tune-beta`: choose InfoTok's beta (arXiv 2512.16975) for a corpus from a
storage / sequence-length budget (--target-rate, --target-bpp16) or a quality floor
(--target-psnr), on a deterministic sample, and write a report (JSON + PNG).
"""

from __future__ import annotations

import logging
from typing import Any

import click

from jobs.options import (
    build_job,
    clip_frames_option,
    device_option,
    json_option,
    resolution_option,
    router_option,
    storage_options,
    target_of,
    target_options,
    tune_configs,
)

from tokenizer.adaptive.routers.registry import DEFAULT_TUNED_ROUTER

logger = logging.getLogger(__name__)

SMALL_SAMPLE = 30  # clips; fewer give a wide confidence interval of the corpus mean rate


@click.command("tune-beta")
@click.argument("input_uri", metavar="INPUT")
@target_options(("--sample", "--tune-sample"))
@click.option("--checkpoint", default=None, help="Adaptive tokenizer checkpoint (default: the shipped one).")
@resolution_option("256")
@clip_frames_option(17)
@click.option("--clip-stride", default=None, type=int, help="Frames between clip starts (default: clip length).")
@click.option("--fps", default=None, type=float, help="Resample to this frame rate (default: keep).")
@click.option("--resize-mode", default="crop", show_default=True, type=click.Choice(["crop", "pad"]))
@click.option("--decoder", default="decord", show_default=True, type=click.Choice(["decord", "pyav"]))
@click.option("--extensions", default=None, help="Comma-separated video extensions when listing a prefix.")
@click.option("--grid", "grid_size", default=10, show_default=True, type=int, help="Betas in the reported curve.")
@click.option("--batch-size", default=8, show_default=True, type=int, help="Clips per model call.")
@device_option()
@router_option(DEFAULT_TUNED_ROUTER)
@click.option("--report", "report_dir", default=None, help="Folder (or s3:// prefix) for tuning.json and tuning.png.")
@storage_options
@json_option
def tune_beta(input_uri: str, checkpoint: str | None, resolution: str, clip_frames: int, clip_stride: int | None,
              fps: float | None, resize_mode: str, decoder: str, extensions: str | None, grid_size: int,
              batch_size: int, device: str, report_dir: str | None, endpoint_url: str | None, profile: str | None,
              anon: bool, as_json: bool, router: str, **o: Any) -> None:
    """Choose beta for the videos under INPUT (folder, s3:// prefix or list file).

    Decode options must match the later `infotok tokenize` run (pass the report to it with
    `--beta auto --tuning DIR/tuning.json`, or let `tokenize --beta auto --target-...` tune)."""
    from pipeline.tuning.report import report_paths, run_tuning, write_report
    from tokenizer.adaptive.routers.registry import get_router
    from tokenizer.tuning.budget import FIT_MEAN_INFO, TuneConfig, TuningTarget

    target = target_of(o)
    if target is None:
        raise click.UsageError("give one of --target-rate, --target-bpp16 or --target-psnr")
    job = build_job(input_uri, report_dir or ".", beta=1.0, checkpoint=checkpoint, resolution=resolution,
                    clip_frames=clip_frames, clip_stride=clip_stride, max_clips=None, fps=fps,
                    resize_mode=resize_mode, short_policy="pad", decoder=decoder, shard_size=64,
                    batch_size=batch_size, workers=None, device=device, extensions=extensions,
                    endpoint_url=endpoint_url, profile=profile, anon=anon, router=router)
    sample, tune = tune_configs(target[0], o, router)
    try:
        cfg = TuneConfig(grid_size=grid_size, batch_size=batch_size, router=router, **tune)
        report = run_tuning(job.source, job.decode, job.storage, checkpoint, device, TuningTarget(*target), sample, cfg)
    except ValueError as exc:  # TargetOutOfReach names the reachable range
        raise click.ClickException(str(exc)) from None
    if report_dir:
        json_uri, png_uri = report_paths(report_dir.rstrip("/"))
        write_report(report, json_uri, png_uri, job.storage)
    if as_json:
        click.echo(report.to_json())
        return
    r = report.result
    sig = get_router(router).signal_name
    on_fit = r.mean_info_source == FIT_MEAN_INFO
    basis = (f"on the {router} router's fit of the sample" if on_fit else
             f"with {sig} {r.mean_info:.6g} ({r.mean_info_source}, {router} router)")
    psnr = ("" if r.psnr is None else f", PSNR {r.psnr:.2f} dB " + (
        f"(read off {r.psnr_clips} clips' measured curves)" if on_fit else f"on {r.psnr_clips} clips"))
    click.echo(f"beta {r.beta:.6f} {basis} on {r.n_clips} clips: mean rate {r.rate:.4f} (95% CI {r.rate_ci[0]:.4f}.."
               f"{r.rate_ci[1]:.4f}), BPP16 {r.bpp16:.4f}{psnr}")
    click.echo(f"reachable with beta in (0, 1]: rate {r.reachable_rate[0]:.4f}..{r.reachable_rate[1]:.4f}, "
               f"BPP16 {r.reachable_bpp16[0]:.4f}..{r.reachable_bpp16[1]:.4f}")
    if r.n_clips < SMALL_SAMPLE:
        click.echo(f"warning: the sample has only {r.n_clips} clips; the corpus mean rate may lie anywhere in "
                   f"{r.rate_ci[0]:.4f}..{r.rate_ci[1]:.4f} (95% CI)", err=True)
    # beta only means this budget together with this E[signal]: apply both, never beta alone
    ckpt = f"{r.checkpoint_mean_info:.6g}" if r.checkpoint_mean_info is not None else "?"
    target_flag = {"rate": "--target-rate", "bpp16": "--target-bpp16", "psnr": "--target-psnr"}[r.target.kind]
    if report_dir:
        click.echo(f"apply it: infotok tokenize {input_uri} OUTPUT --router {router} --beta auto --tuning "
                   f"{report_paths(report_dir.rstrip('/'))[0]} (same decode options)")
    else:
        again = "fits and tunes again on the job's --fit-router sample" if on_fit else "tunes again on the same sample"
        click.echo(f"apply it: infotok tokenize {input_uri} OUTPUT --router {router} --beta auto {target_flag} "
                   f"{r.target.value:g} ({again}), or rerun with --report DIR and pass --tuning DIR/tuning.json")
    if r.mean_info_source == "dataset":
        click.echo(f"(--beta {r.beta:.6f} alone would use the checkpoint's {sig} {ckpt}, not {r.mean_info:.6g}, "
                   "and miss the target)")
