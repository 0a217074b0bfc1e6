"""The options the `infotok` commands share, spelled and explained once, and the one place they
become config dataclasses (`build_job`, `storage_from`, `parse_resolution`, `tuning_request`).

Every command that reads storage takes `--endpoint-url / --profile / --anon`; every command
that runs the model takes `--device`; every command that sets budgets takes `--router`; sizes
are `--resolution N|HxW` and `--clip-frames`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from tokenizer.adaptive.routers.registry import (
    DEFAULT_BETA,
    DEFAULT_FIT_CLIPS,
    DEFAULT_ROUTER,
    DEFAULT_TUNED_ROUTER,
    get_router,
    router_names,
)

if TYPE_CHECKING:
    from pipeline.job.job import JobConfig
    from pipeline.io.storage import StorageConfig
    from pipeline.job.auto_beta import TuneRequest
    from pipeline.tuning.sample import SampleConfig

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

DEFAULT_PSNR_CLIPS = 8  # decoded clips for the PSNR curve of a rate / BPP16 target
DEVICE_HELP = "auto (the first GPU if any), cpu, cuda or cuda:N."
BETA_HELP = ("the mean kept fraction of tokens, in (0, 1]: with a per-corpus fit (--fit-router), on this corpus's "
             "sample; without one, on the checkpoint's calibration clips. 1 keeps nearly everything.")
FIT_HELP = ("Fit the router on N clips of INPUT before tokenizing (gain2, fitted: routers that fit per corpus), so "
            "that beta is the mean kept fraction on this corpus; 0: no fit. Default: "
            f"{DEFAULT_FIT_CLIPS} for such a router on a new dataset (none if the corpus is too small); on a rerun, "
            "what the dataset records.")


def apply(opts: list[Decorator]) -> Decorator:
    """One decorator made of several click options (listed in help order)."""
    def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
        for opt in reversed(opts):
            f = opt(f)
        return f
    return wrap


# ---- storage, device, output -----------------------------------------------------------------

storage_options = apply([
    click.option("--endpoint-url", default=None, help="S3-compatible endpoint URL (MinIO, moto, R2, ...)."),
    click.option("--profile", default=None, help="AWS profile for s3:// (credentials never leave it)."),
    click.option("--anon", is_flag=True, help="Anonymous access to public buckets."),
])


def storage_from(o: dict[str, Any]) -> StorageConfig:
    """StorageConfig of the storage options (pops them from o)."""
    from pipeline.io.storage import StorageConfig

    return StorageConfig(endpoint_url=o.pop("endpoint_url", None), profile=o.pop("profile", None),
                         anon=bool(o.pop("anon", False)))


def device_option(default: str = "auto") -> Decorator:
    return click.option("--device", default=default, show_default=True, help=DEVICE_HELP)


json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


# ---- sizes -----------------------------------------------------------------------------------

def resolution_option(default: str, *aliases: str) -> Decorator:
    return click.option("--resolution", *aliases, default=default, show_default=True,
                        help="Working size: N or HxW (multiples of 8).")


def clip_frames_option(default: int, *aliases: str) -> Decorator:
    return click.option("--clip-frames", *aliases, default=default, show_default=True, type=int,
                        help="Frames per clip (1 + 4k).")


def parse_resolution(text: str | int) -> tuple[int, int]:
    """(height, width) of 'N' or 'HxW'; BadParameter unless both are positive multiples of 8."""
    parts = str(text).lower().split("x")
    try:
        if len(parts) > 2:
            raise ValueError(text)
        hw = (int(parts[0]), int(parts[-1]))
    except ValueError:
        raise click.BadParameter(f"expected N or HxW, got {text!r}", param_hint="--resolution") from None
    if hw[0] <= 0 or hw[1] <= 0 or hw[0] % 8 or hw[1] % 8:
        raise click.BadParameter(f"height and width must be positive multiples of 8, got {hw[0]}x{hw[1]}",
                                 param_hint="--resolution")
    return hw


def router_option(default: str | None = DEFAULT_ROUTER, help_text: str | None = None) -> Decorator:
    """--router elbo|gain|gain2|latent|fitted: which router sets each clip's budget."""
    return click.option(
        "--router", default=default, show_default=default is not None, type=click.Choice(router_names()),
        help=help_text or "Which router sets each clip's budget: elbo (the paper's rule, by error level), gain "
                          "(by the measured slope of the clip's quality curve), gain2 (by the clip's quality curve "
                          "measured with several probes), latent (the slope predicted from the encoder's output, no "
                          "decoder pass) or fitted (gain2's rule on a curve predicted by a per-corpus fit, one pass).")


def fit_router_option() -> Decorator:
    """--fit-router N: fit a router that fits per corpus on N clips of the input (0: none)."""
    return click.option("--fit-router", "fit_router", default=None, type=click.IntRange(min=0), metavar="N",
                        help=FIT_HELP)


def check_fit_option(fit_clips: int | None, router: str) -> int | None:
    """--fit-router as given (None: not given), checked against the router; UsageError naming it."""
    from tokenizer.adaptive.curve_fit import MIN_FIT_CLIPS

    r = get_router(router)
    if fit_clips and not r.fits_corpus:
        raise click.UsageError(f"--fit-router {fit_clips}: the {router} router takes no per-corpus fit; use "
                               "--router gain2 or --router fitted, or drop --fit-router")
    if fit_clips == 0 and r.needs_fit:
        raise click.UsageError(f"the {router} router needs a per-corpus fit: give --fit-router N (N >= "
                               f"{MIN_FIT_CLIPS}; {DEFAULT_FIT_CLIPS} when not given), not 0")
    if fit_clips is not None and 0 < fit_clips < MIN_FIT_CLIPS:
        raise click.UsageError(f"--fit-router must be 0 (no fit) or at least {MIN_FIT_CLIPS} clips, got {fit_clips}")
    return fit_clips


# ---- beta and its tuning ---------------------------------------------------------------------

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


def target_options(sample_flags: tuple[str, ...] = ("--tune-sample",)) -> Decorator:
    """--target-rate / --target-bpp16 / --target-psnr and the sample options (tune-beta and tokenize)."""
    return apply([
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
    ])


def target_of(o: dict[str, Any]) -> tuple[str, float] | None:
    """The one --target-* given, as (kind, value); None when none is; UsageError for several."""
    given = [(k, o.get(f"target_{k}")) for k in ("rate", "bpp16", "psnr") if o.get(f"target_{k}") is not None]
    if len(given) > 1:
        raise click.UsageError(f"give one target, got {', '.join('--target-' + k for k, _ in given)}")
    return given[0] if given else None


def tune_configs(kind: str, o: dict[str, Any], router: str | None = None) -> tuple[SampleConfig, dict[str, Any]]:
    """(SampleConfig, TuneConfig fields) from the options (a router whose budgets come from curves is
    tuned on its fit of the sample: every sample clip's curve is measured, none decoded apart)."""
    from pipeline.tuning.sample import SampleConfig

    psnr_clips = o.get("psnr_clips")
    if psnr_clips is None and kind != "psnr":
        psnr_clips = DEFAULT_PSNR_CLIPS
    try:
        sample = SampleConfig(clips=o["tune_sample"], clips_per_video=o["tune_clips_per_video"], seed=o["tune_seed"])
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if router is not None and get_router(router).budgets_from_curves:
        from tokenizer.tuning.budget import FIT_MEAN_INFO

        return sample, {"psnr_clips": None, "mean_info": FIT_MEAN_INFO}
    return sample, {"psnr_clips": psnr_clips, "mean_info": o["mean_info"]}


def tuning_request(o: dict[str, Any]) -> TuneRequest | None:
    """The TuneRequest of `tokenize --beta auto ...`, None for a fixed beta; UsageError if inconsistent."""
    from pipeline.job.auto_beta import TuneRequest

    target, report = target_of(o), o.get("tuning")
    if o["beta"] != "auto":
        if target is not None or report is not None:
            raise click.UsageError("--target-rate / --target-bpp16 / --target-psnr / --tuning need --beta auto")
        return None
    if (target is None) == (report is None):
        raise click.UsageError("--beta auto needs one of --target-rate, --target-bpp16, --target-psnr or --tuning REPORT")
    router = job_router(o)
    fit_clips, on_fit = o.get("fit_router"), get_router(router).budgets_from_curves
    if on_fit and fit_clips == 0:  # its beta is tuned on, and means, a rate on a per-corpus fit
        raise click.UsageError(f"--beta auto with the {router} router tunes beta on its per-corpus fit: give "
                               f"--fit-router N (default {DEFAULT_FIT_CLIPS}), not 0")
    if target is not None and on_fit:
        return TuneRequest(target_kind=target[0], target_value=float(target[1]),
                           fit_clips=fit_clips or DEFAULT_FIT_CLIPS)
    if report is not None:
        return TuneRequest(report_uri=report)
    sample, tune = tune_configs(target[0], o)
    return TuneRequest(target_kind=target[0], target_value=float(target[1]), sample=sample, tune=tune)


# ---- the tokenize job ------------------------------------------------------------------------

job_options = apply([
    click.option("--beta", default=None, type=BetaParam(),
                 help=f"Compression knob: {BETA_HELP} Default {DEFAULT_BETA:g} for a new dataset, the recorded beta on "
                      "a rerun. 'auto': tune it first (needs a --target-* or --tuning; gain2 and fitted tune it on their "
                      "per-corpus fit, with no pass besides the fit's)."),
    click.option("--tuning", default=None, help="With --beta auto: take beta and E[I] from this tune-beta report."),
    click.option("--checkpoint", default=None, help="Tokenizer checkpoint (default: the shipped one)."),
    resolution_option("256"),
    clip_frames_option(17),
    click.option("--clip-stride", default=None, type=int, help="Frames between clip starts (default: clip length)."),
    click.option("--max-clips", default=None, type=int, help="Clips per video at most."),
    click.option("--fps", default=None, type=float, help="Resample to this frame rate (default: keep)."),
    click.option("--resize-mode", default="crop", show_default=True, type=click.Choice(["crop", "pad"])),
    click.option("--short-policy", default="pad", show_default=True, type=click.Choice(["pad", "error"]),
                 help="Videos shorter than one clip: pad with the last frame, or record an error."),
    click.option("--decoder", default="decord", show_default=True, type=click.Choice(["decord", "pyav"])),
    click.option("--shard-size", default=64, show_default=True, type=int, help="Videos per shard."),
    click.option("--batch-size", default=8, show_default=True, type=int, help="Clips per model call."),
    click.option("--workers", default=None, type=int,
                 help="Tokenize actors (default: sized from the cluster: one per GPU, or one per CPU node)."),
    click.option("--gpus-per-worker", default=1.0, type=float, show_default=True,
                 help="Share of a GPU per actor (0.5: two actors per GPU, for small models)."),
    click.option("--cores-per-cpu-worker", default=0, type=int,
                 help="On CPU-only nodes, one actor per this many cores (default 0: one per node)."),
    click.option("--on-change", default="keep", show_default=True, type=click.Choice(["keep", "retokenize"]),
                 help="A rerun over videos removed or changed since they were tokenized: keep their rows, or "
                      "redo their shards. New videos always go to a new generation."),
    click.option("--decode-timeout", default=300.0, show_default=True, type=float,
                 help="Seconds before a hung decode is cancelled (then retried once, then recorded)."),
    click.option("--decode-overlap", default="auto", show_default=True,
                 type=click.Choice(["auto", "overlap", "alternate"]),
                 help="Decode while the model runs (overlap), or between its batches (alternate); auto: "
                      "overlap when the model is on a GPU."),
    device_option(),
    router_option(None, f"Which router sets each clip's budget: elbo, gain, gain2, latent or fitted (docs/"
                        f"routers.md); default {DEFAULT_ROUTER}, or {DEFAULT_TUNED_ROUTER} with --beta auto; on a "
                        "rerun, the recorded one."),
    fit_router_option(),
    click.option("--extensions", default=None, help="Comma-separated video extensions when listing a prefix."),
    storage_options,
    target_options(),
])


def job_router(o: dict[str, Any]) -> str:
    """The job's router: --router, else the default (DEFAULT_TUNED_ROUTER when beta is tuned)."""
    return o.get("router") or (DEFAULT_TUNED_ROUTER if o.get("beta") == "auto" else DEFAULT_ROUTER)


def build_job(input_uri: str, output: str, **o: Any) -> JobConfig:
    """The JobConfig of the job options (as `tokenize` and `submit` take them); UsageError naming
    the option and value for anything invalid."""
    from pipeline.decode.step import DecodeConfig
    from pipeline.job.job import ExecConfig, JobConfig
    from pipeline.plan.plan import PlanConfig
    from pipeline.tokenize.step import TokenizeConfig

    tuning_request(o)  # validates --beta auto against the --target-* / --tuning options
    check_fit_option(o.get("fit_router"), job_router(o))
    hw = parse_resolution(o["resolution"])
    try:
        return JobConfig(
            input=input_uri,
            output=output.rstrip("/"),
            decode=DecodeConfig(fps=o["fps"], resolution=hw, resize_mode=o["resize_mode"],
                                clip_frames=o["clip_frames"], clip_stride=o["clip_stride"],
                                max_clips=o["max_clips"], decoder=o["decoder"], short_policy=o["short_policy"]),
            tokenize=TokenizeConfig(checkpoint=o["checkpoint"],
                                    beta=DEFAULT_BETA if o["beta"] in (None, "auto") else o["beta"],
                                    router=job_router(o), device=o["device"],
                                    batch_size=o["batch_size"]),
            plan=PlanConfig(videos_per_shard=o["shard_size"]),
            storage=storage_from(dict(o)),
            execution=ExecConfig(num_workers=o["workers"], gpus_per_worker=o.get("gpus_per_worker", 1.0),
                                 cores_per_cpu_worker=o.get("cores_per_cpu_worker", 0),
                                 on_change=o.get("on_change", "keep"),
                                 decode_timeout_s=o.get("decode_timeout", 300.0),
                                 decode_overlap=o.get("decode_overlap", "auto")),
            extensions=tuple(e.strip() for e in o["extensions"].split(",")) if o["extensions"] else None,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
