"""`infotok tokenize` and `infotok status`: run / inspect the tokenize job."""

from __future__ import annotations

import json
import logging

import click

from jobs.tune_beta_cmd import BetaParam, target_options, tuning_request

logger = logging.getLogger(__name__)


def job_options(f):  # noqa: ANN001, ANN201 - click decorator plumbing
    """Options shared by `tokenize` and `submit` (they build the same JobConfig)."""
    opts = [
        click.option("--beta", default=1.0, show_default=True, type=BetaParam(),
                     help="Compression knob in (0, 1], or 'auto': tune it first (needs a --target-* or --tuning)."),
        click.option("--tuning", default=None, help="With --beta auto: take beta and E[I] from this tune-beta report."),
        click.option("--checkpoint", default=None, help="Tokenizer checkpoint (default: the shipped one)."),
        click.option("--resolution", default="256", show_default=True, help="Working size: N or HxW (multiples of 8)."),
        click.option("--clip-frames", default=17, show_default=True, type=int, help="Frames per clip (1 + 4k)."),
        click.option("--clip-stride", default=None, type=int, help="Frames between clip starts (default: clip length)."),
        click.option("--max-clips", default=None, type=int, help="Clips per video at most."),
        click.option("--fps", default=None, type=float, help="Resample to this frame rate (default: keep)."),
        click.option("--resize-mode", default="crop", show_default=True, type=click.Choice(["crop", "pad"])),
        click.option("--short-policy", default="pad", show_default=True, type=click.Choice(["pad", "error"]),
                     help="Videos shorter than one clip: pad with the last frame, or record an error."),
        click.option("--decoder", default="decord", show_default=True, type=click.Choice(["decord", "pyav"])),
        click.option("--shard-size", default=64, show_default=True, type=int, help="Videos per shard."),
        click.option("--batch-size", default=8, show_default=True, type=int, help="Clips per model call."),
        click.option("--workers", default=None, type=int, help="Tokenize actors (default: one per GPU, or 1)."),
        click.option("--decode-timeout", default=300.0, show_default=True, type=float,
                     help="Seconds before a hung decode is cancelled (then retried once, then recorded)."),
        click.option("--decode-overlap", default="auto", show_default=True,
                     type=click.Choice(["auto", "overlap", "alternate"]),
                     help="Decode while the model runs (overlap), or between its batches (alternate); auto: "
                          "overlap when the model is on a GPU."),
        click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda."),
        click.option("--extensions", default=None, help="Comma-separated video extensions when listing a prefix."),
        click.option("--endpoint-url", default=None, help="S3-compatible endpoint URL."),
        click.option("--profile", default=None, help="AWS profile for s3:// (credentials never leave it)."),
        click.option("--anon", is_flag=True, help="Anonymous access to public buckets."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return target_options(f)


def build_job(input_uri: str, output: str, **o) -> "JobConfig":  # noqa: ANN003, F821 - click options
    from pipeline.decode.step import DecodeConfig
    from pipeline.exec.job import ExecConfig, JobConfig
    from pipeline.exec.plan import PlanConfig
    from pipeline.io.storage import StorageConfig
    from pipeline.exec.tokenize_step import TokenizeConfig

    tuning_request(o)  # validates --beta auto against the --target-* / --tuning options
    res = o["resolution"].lower().split("x")
    try:
        hw = (int(res[0]), int(res[-1]))
    except ValueError:
        raise click.BadParameter(f"expected N or HxW, got {o['resolution']!r}", param_hint="--resolution") from None
    if hw[0] % 8 or hw[1] % 8:
        raise click.BadParameter(f"height and width must be multiples of 8, got {hw[0]}x{hw[1]}",
                                 param_hint="--resolution")
    try:
        return JobConfig(
            input=input_uri,
            output=output.rstrip("/"),
            decode=DecodeConfig(fps=o["fps"], resolution=hw, resize_mode=o["resize_mode"],
                                clip_frames=o["clip_frames"], clip_stride=o["clip_stride"],
                                max_clips=o["max_clips"], decoder=o["decoder"], short_policy=o["short_policy"]),
            tokenize=TokenizeConfig(checkpoint=o["checkpoint"], beta=1.0 if o["beta"] == "auto" else o["beta"],
                                    device=o["device"], batch_size=o["batch_size"]),
            plan=PlanConfig(videos_per_shard=o["shard_size"]),
            storage=StorageConfig(endpoint_url=o["endpoint_url"], profile=o["profile"], anon=o["anon"]),
            execution=ExecConfig(num_workers=o["workers"], decode_timeout_s=o.get("decode_timeout", 300.0),
                                 decode_overlap=o.get("decode_overlap", "auto")),
            extensions=tuple(e.strip() for e in o["extensions"].split(",")) if o["extensions"] else None,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


@click.command("tokenize")
@click.argument("input_uri", metavar="INPUT")
@click.argument("output", metavar="OUTPUT")
@job_options
@click.option("--address", default=None, help="Ray cluster to join (default: start Ray in-process).")
@click.option("--overwrite", is_flag=True, help="Delete an existing dataset at OUTPUT and start over.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def tokenize(input_uri: str, output: str, address: str | None, overwrite: bool, as_json: bool, **o) -> None:  # noqa: ANN003
    """Tokenize the videos under INPUT (folder, s3:// prefix or list file) into a dataset at OUTPUT.

    Rerunning the same command resumes: committed shards are skipped, the rest redone."""
    from pipeline.exec.prepare import OutputMismatchError
    from pipeline.exec.ray_exec import run_job

    job = build_job(input_uri, output, **o)
    request = tuning_request(o)
    if request is not None:  # --beta auto: tune now, or re-use the tuning recorded in OUTPUT/job.json
        from pipeline.tuning.auto_beta import resolve_auto_beta

        try:
            job = resolve_auto_beta(job, request, overwrite=overwrite)
        except ValueError as exc:  # a changed request (OutputMismatchError), a target out of reach, a bad report
            raise click.ClickException(str(exc)) from None
    try:
        result = run_job(job, address=address, overwrite=overwrite, progress=not as_json)
    except OutputMismatchError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(result.__dict__))
        return
    click.echo(f"{result.output}: {result.n_shards} shards ({result.shards_skipped} already done), "
               f"{result.clips} clips, {result.tokens} tokens, {result.errors} errors in {result.seconds:.1f}s "
               f"(tokenizer {result.tokenizer_id})")


@click.command("status")
@click.argument("output", metavar="OUTPUT")
@click.option("--endpoint-url", default=None, help="S3-compatible endpoint URL.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def status(output: str, endpoint_url: str | None, as_json: bool) -> None:
    """Shards done / total, clips, tokens and errors of a (possibly unfinished) dataset."""
    from pipeline.exec.status import dataset_status
    from pipeline.io.storage import StorageConfig

    st = dataset_status(output.rstrip("/"), StorageConfig(endpoint_url=endpoint_url))
    if as_json:
        click.echo(json.dumps(st, indent=1))
        return
    total = st["n_shards"] if st["n_shards"] is not None else "?"
    click.echo(f"{output}: {st['shards_done']}/{total} shards committed, {st['clips']} clips, "
               f"{st['tokens']} tokens, {st['errors']} errors; "
               f"{'finished (dataset.json present)' if st['finished'] else 'not finished'}")
    for kind, n in sorted(st["errors_by_kind"].items()):
        click.echo(f"  errors {kind}: {n}")
