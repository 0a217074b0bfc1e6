"""`infotok tune-beta`: choose InfoTok's beta (arXiv 2512.16975) for a corpus from a
storage / sequence-length budget (--target-rate, --target-bpp16) or a quality floor
(--target-psnr), on a deterministic sample, and write a report (JSON + PNG).

Also the `--beta auto` plumbing of `infotok tokenize`: the BETA parameter type, the tuning
options and the request they make.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import click

logger = logging.getLogger(__name__)

DEFAULT_PSNR_CLIPS = 8  # decoded clips for the PSNR curve of a rate / BPP16 target


class BetaParam(click.ParamType):
    """A beta in (0, 1], or 'auto'."""

    name = "BETA|auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float | str:
        if isinstance(value, float) or value == "auto":
            return value
        try:
            beta = float(value)
        except (TypeError, ValueError):
            self.fail(f"expected a number in (0, 1] or 'auto', got {value!r}", param, ctx)
        if not (math.isfinite(beta) and 0 < beta <= 1):
            self.fail(f"beta must be in (0, 1] (or 'auto'), got {value!r}", param, ctx)
        return beta


def target_options(f, sample_flags: tuple[str, ...] = ("--tune-sample",)):  # noqa: ANN001, ANN201 - click plumbing
    """--target-rate / --target-bpp16 / --target-psnr and the sample options (tune-beta and tokenize)."""
    opts = [
        click.option("--target-rate", type=float, default=None,
                     help="Mean kept fraction of the token grid to stay within (a budget in [1/16, 1])."),
        click.option("--target-bpp16", type=float, default=None, help="BPP16 budget (16 x bits per pixel)."),
        click.option("--target-psnr", type=float, default=None, help="Mean PSNR floor in dB."),
        click.option(*sample_flags, "tune_sample", type=int, default=160, show_default=True,
                     help="Clips in the tuning sample (160 keeps the mean rate's 95% CI near +-0.02; "
                          "bench_tune.py: +-0.031 at 64)."),
        click.option("--tune-seed", type=int, default=0, show_default=True, help="Seed of the tuning sample."),
        click.option("--tune-clips-per-video", type=int, default=1, show_default=True,
                     help="Clips drawn per sampled video."),
        click.option("--psnr-clips", type=int, default=None,
                     help=f"Sample clips decoded for PSNR (default: {DEFAULT_PSNR_CLIPS} for a rate / BPP16 "
                          "target, all for a PSNR target)."),
        click.option("--mean-info", "mean_info", type=click.Choice(["dataset", "checkpoint"]),
                     default="dataset", show_default=True,
                     help="E[I]: recalibrated on the sample, or the checkpoint's."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _target(o: dict[str, Any]) -> tuple[str, float] | None:
    given = [(k, o.get(f"target_{k}")) for k in ("rate", "bpp16", "psnr") if o.get(f"target_{k}") is not None]
    if len(given) > 1:
        raise click.UsageError(f"give one target, got {', '.join('--target-' + k for k, _ in given)}")
    return given[0] if given else None


def tune_configs(kind: str, o: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(SampleConfig, TuneConfig fields) from the options."""
    from pipeline.tuning.corpus import SampleConfig

    psnr_clips = o.get("psnr_clips")
    if psnr_clips is None and kind != "psnr":
        psnr_clips = DEFAULT_PSNR_CLIPS
    try:
        sample = SampleConfig(clips=o["tune_sample"], clips_per_video=o["tune_clips_per_video"], seed=o["tune_seed"])
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    return sample, {"psnr_clips": psnr_clips, "mean_info": o["mean_info"]}


def tuning_request(o: dict[str, Any]) -> Any:
    """The TuneRequest of `tokenize --beta auto ...`, None for a fixed beta; UsageError if inconsistent."""
    from pipeline.tuning.auto_beta import TuneRequest

    target, report = _target(o), o.get("tuning")
    if o["beta"] != "auto":
        if target is not None or report is not None:
            raise click.UsageError("--target-rate / --target-bpp16 / --target-psnr / --tuning need --beta auto")
        return None
    if (target is None) == (report is None):
        raise click.UsageError("--beta auto needs one of --target-rate, --target-bpp16, --target-psnr or --tuning REPORT")
    if report is not None:
        return TuneRequest(report_uri=report)
    sample, tune = tune_configs(target[0], o)
    return TuneRequest(target_kind=target[0], target_value=float(target[1]), sample=sample, tune=tune)


def _tune_beta_target_options(f):  # noqa: ANN001, ANN201 - click decorator plumbing
    return target_options(f, ("--sample", "--tune-sample"))


@click.command("tune-beta")
@click.argument("input_uri", metavar="INPUT")
@_tune_beta_target_options
@click.option("--checkpoint", default=None, help="Adaptive tokenizer checkpoint (default: the shipped one).")
@click.option("--resolution", default="256", show_default=True, help="Working size: N or HxW (as tokenize).")
@click.option("--clip-frames", default=17, show_default=True, type=int, help="Frames per clip (1 + 4k).")
@click.option("--clip-stride", default=None, type=int, help="Frames between clip starts (default: clip length).")
@click.option("--fps", default=None, type=float, help="Resample to this frame rate (default: keep).")
@click.option("--resize-mode", default="crop", show_default=True, type=click.Choice(["crop", "pad"]))
@click.option("--decoder", default="decord", show_default=True, type=click.Choice(["decord", "pyav"]))
@click.option("--extensions", default=None, help="Comma-separated video extensions when listing a prefix.")
@click.option("--grid", "grid_size", default=10, show_default=True, type=int, help="Betas in the reported curve.")
@click.option("--batch-size", default=8, show_default=True, type=int, help="Clips per model call.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--report", "report_dir", default=None, help="Folder (or s3:// prefix) for tuning.json and tuning.png.")
@click.option("--endpoint-url", default=None, help="S3-compatible endpoint URL.")
@click.option("--profile", default=None, help="AWS profile for s3://.")
@click.option("--anon", is_flag=True, help="Anonymous access to public buckets.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def tune_beta(input_uri: str, checkpoint: str | None, resolution: str, clip_frames: int, clip_stride: int | None,
              fps: float | None, resize_mode: str, decoder: str, extensions: str | None, grid_size: int,
              batch_size: int, device: str, report_dir: str | None, endpoint_url: str | None, profile: str | None,
              anon: bool, as_json: bool, **o: Any) -> None:
    """Choose beta for the videos under INPUT (folder, s3:// prefix or list file).

    Decode options must match the later `infotok tokenize` run (pass the report to it with
    `--beta auto --tuning DIR/tuning.json`, or let `tokenize --beta auto --target-...` tune)."""
    from jobs.tokenize_cmd import build_job
    from pipeline.io.inputs import InputConfig
    from pipeline.tuning.corpus import report_paths, run_tuning, write_report
    from tokenizer.tuning.budget import TuneConfig, TuningTarget

    target = _target(o)
    if target is None:
        raise click.UsageError("give one of --target-rate, --target-bpp16 or --target-psnr")
    job = build_job(input_uri, report_dir or ".", beta=1.0, checkpoint=checkpoint, resolution=resolution,
                    clip_frames=clip_frames, clip_stride=clip_stride, max_clips=None, fps=fps,
                    resize_mode=resize_mode, short_policy="pad", decoder=decoder, shard_size=64,
                    batch_size=batch_size, workers=None, device=device, extensions=extensions,
                    endpoint_url=endpoint_url, profile=profile, anon=anon)
    sample, tune = tune_configs(target[0], o)
    try:
        cfg = TuneConfig(grid_size=grid_size, batch_size=batch_size, **tune)
        source = InputConfig(uri=input_uri, **({"extensions": job.extensions} if job.extensions else {}))
        report = run_tuning(source, job.decode, job.storage, checkpoint, device, TuningTarget(*target), sample, cfg)
    except ValueError as exc:  # TargetOutOfReach names the reachable range
        raise click.ClickException(str(exc)) from None
    if report_dir:
        json_uri, png_uri = report_paths(report_dir.rstrip("/"))
        write_report(report, json_uri, png_uri, job.storage)
    if as_json:
        click.echo(report.to_json())
        return
    r = report.result
    click.echo(f"beta {r.beta:.6f} with E[I] {r.mean_info:.6g} ({r.mean_info_source}) on {r.n_clips} clips: "
               f"mean rate {r.rate:.4f} (95% CI {r.rate_ci[0]:.4f}..{r.rate_ci[1]:.4f}), BPP16 {r.bpp16:.4f}"
               + (f", PSNR {r.psnr:.2f} dB on {r.psnr_clips} clips" if r.psnr is not None else ""))
    click.echo(f"reachable with beta in (0, 1]: rate {r.reachable_rate[0]:.4f}..{r.reachable_rate[1]:.4f}, "
               f"BPP16 {r.reachable_bpp16[0]:.4f}..{r.reachable_bpp16[1]:.4f}")
    if report_dir:
        click.echo(f"report: {report_paths(report_dir.rstrip('/'))[0]}")
