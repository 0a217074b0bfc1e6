"""`infotok tokenize` and `infotok status`: run / inspect the tokenize job."""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import click

from jobs.options import build_job, job_options, json_option, storage_from, storage_options, tuning_request

logger = logging.getLogger(__name__)


@click.command("tokenize")
@click.argument("input_uri", metavar="INPUT")
@click.argument("output", metavar="OUTPUT")
@job_options
@click.option("--address", default=None, help="Ray cluster to join (default: start Ray in-process).")
@click.option("--overwrite", is_flag=True, help="Delete an existing dataset at OUTPUT and start over.")
@click.option("--force-unlock", is_flag=True,
              help="Take OUTPUT over from a job that holds its lease but is gone (a killed driver's lease "
                   "also expires by itself after 2 minutes).")
@click.option("--retry-errors", is_flag=True,
              help="Also redo committed shards whose error rows are transient (datasets from older versions).")
@json_option
def tokenize(input_uri: str, output: str, address: str | None, overwrite: bool, force_unlock: bool,
             retry_errors: bool, as_json: bool, **o) -> None:  # noqa: ANN003
    """Tokenize the videos under INPUT (folder, s3:// prefix or list file) into a dataset at OUTPUT.

    Rerunning the same command resumes: committed shards are skipped, the rest redone."""
    from pipeline.job.prepare import OutputMismatchError, PreflightError, preflight, recorded_tokenize, resume_beta
    from pipeline.exec.ray_exec import JobIncompleteError, run_job
    from pipeline.io.lease import LeaseHeldError, LeaseLostError
    from tokenizer.adaptive.routers.registry import DEFAULT_BETA

    job = build_job(input_uri, output, **o)
    recorded = None if overwrite else recorded_tokenize(job)
    if recorded is not None:  # a rerun: what it does not name is as the dataset was made, whatever today's default
        router = str(recorded.get("router", "elbo"))  # "elbo": from before routers were recorded
        if not o.get("router") and router != job.tokenize.router:
            job = dataclasses.replace(job, tokenize=dataclasses.replace(job.tokenize, router=router))
            click.echo(f"{output}: resuming with the {router} router it was made with (--router to choose)", err=True)
        if o.get("beta") is None:
            try:
                job = resume_beta(job, recorded)
            except ValueError as exc:  # a recorded tuning of another router than the one named
                raise click.ClickException(f"{output}: {exc}; rerun with the settings it was made with, or pass "
                                           "--overwrite to start over") from None
            if job.tokenize.beta != DEFAULT_BETA:
                click.echo(f"{output}: resuming with beta {job.tokenize.beta:g} it was made with (--beta to choose)",
                           err=True)
    request = tuning_request(o)
    try:
        plan = preflight(job, need_mean=request is None)  # checkpoint, input, output, storage: before Ray
    except PreflightError as exc:
        raise click.ClickException(str(exc)) from None
    if request is not None:  # --beta auto: tune now, or re-use the tuning recorded in OUTPUT/job.json
        from pipeline.job.auto_beta import resolve_auto_beta

        try:
            job = resolve_auto_beta(job, request, overwrite=overwrite)
        except ValueError as exc:  # a changed request (OutputMismatchError), a target out of reach, a bad report
            raise click.ClickException(str(exc)) from None
    from pipeline.job.router_fit import resolve_router_fit

    try:  # a router that fits per corpus: fit now, or re-use the fit recorded in OUTPUT/job.json
        job = resolve_router_fit(job, o.get("fit_router"), overwrite=overwrite)
    except ValueError as exc:  # another fit than the dataset's (OutputMismatchError), a corpus too small for it
        raise click.ClickException(str(exc)) from None
    if not as_json:
        click.echo(f"{input_uri}: {plan.n_videos} videos in {plan.n_shards} shards; starting Ray "
                   f"({address or 'a local cluster'}) ...", err=True)
    try:
        result = run_job(job, address=address, overwrite=overwrite, progress=not as_json, plan=plan,
                         retry_errors=retry_errors, force_unlock=force_unlock)
    except (OutputMismatchError, JobIncompleteError, LeaseHeldError, LeaseLostError) as exc:
        raise click.ClickException(str(exc)) from None
    fit = job.tokenize.fit
    if as_json:
        click.echo(json.dumps(dict(result.__dict__, fit=None if fit is None else {
            "describe": fit.corpus_fit().describe(), "clips": fit.sample_clips, "requested": fit.clips,
            "videos": fit.sample_videos})))
        return
    from tokenizer.adaptive.routers.registry import get_router

    basis = get_router(result.router).budget_basis(result.expected_info, fit.sample_clips if fit else None)
    source = ("" if fit is not None else ", tuned" if job.tokenize.tuning is not None else
              ", given" if job.tokenize.expected_info is not None else ", the checkpoint's")
    click.echo(f"{result.output}: {result.n_shards} shards ({result.shards_skipped} already done), "
               f"{result.clips} clips, {result.tokens} tokens, {result.errors} errors in {result.seconds:.1f}s "
               f"(tokenizer {result.tokenizer_id}, {result.router} router, beta {result.beta:g} with {basis}{source})")


@click.command("status")
@click.argument("output", metavar="OUTPUT")
@storage_options
@json_option
def status(output: str, as_json: bool, **o: Any) -> None:
    """Shards done / total, clips, tokens and errors of a (possibly unfinished) dataset."""
    from pipeline.job.status import dataset_status
    from pipeline.io.dataset import DatasetDir

    try:
        st = dataset_status(DatasetDir(output.rstrip("/"), storage_from(o)))
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(st, indent=1))
        return
    total = st["shards"] if st["shards"] is not None else "?"
    click.echo(f"{output}: {st['shards_done']}/{total} shards committed, {st['clips']} clips, "
               f"{st['tokens']} tokens, {st['errors']} errors; "
               f"{'finished (dataset.json covers every shard)' if st['finished'] else 'not finished'}")
    if st["errors"]:
        kinds = ", ".join(f"{k} {v}" for k, v in st["errors_by_kind"].items())
        stages = ", ".join(f"{k} {v}" for k, v in st["errors_by_stage"].items())
        click.echo(f"  errors by kind: {kinds}; by stage: {stages}")
