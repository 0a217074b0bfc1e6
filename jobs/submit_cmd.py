"""`infotok submit`: run the tokenize job on a Ray cluster through the Ray Jobs API.

The job's runtime_env carries this project's packages (and a local checkpoint file, if one
is given), so the cluster needs only the Python dependencies. Credentials are never put
in the job: cluster nodes use their own (instance role, environment, profile).
"""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
from pathlib import Path

import click

from jobs.options import build_job, job_options

_PACKAGES = ("tokenizer", "pipeline", "jobs", "schemas")


def job_argv(input_uri: str, output: str, options: dict, checkpoint_arg: str | None) -> list[str]:  # noqa: ANN401
    """The `infotok tokenize` command line the cluster runs (same options as given here)."""
    argv = [input_uri, output]
    for key, value in sorted(options.items()):
        flag = "--" + key.replace("_", "-")
        if key == "checkpoint":
            value = checkpoint_arg
        if value is None or value is False:
            continue
        argv += [flag] if value is True else [flag, str(value)]
    return argv


@click.command("submit")
@click.argument("input_uri", metavar="INPUT")
@click.argument("output", metavar="OUTPUT")
@job_options
@click.option("--address", required=True, help="Ray dashboard address, e.g. http://HEAD:8265.")
@click.option("--overwrite", is_flag=True, help="Delete an existing dataset at OUTPUT and start over.")
@click.option("--follow", is_flag=True, help="Stream the job's logs until it ends; exit non-zero if it failed.")
@click.option("--json", "as_json", is_flag=True, help="Print the job id (and final status) as JSON.")
def submit(input_uri: str, output: str, address: str, overwrite: bool, follow: bool, as_json: bool, **o) -> None:  # noqa: ANN003
    """Submit `infotok tokenize INPUT OUTPUT ...` to the Ray cluster at --address."""
    from pipeline.exec.submit import JobSubmitter

    build_job(input_uri, output, **o)  # validate here, before anything reaches the cluster
    import tokenizer

    root = Path(tokenizer.__file__).resolve().parent.parent
    py_modules = [str(root / p) for p in _PACKAGES]
    checkpoint_arg = o.get("checkpoint")
    working_dir = None
    if checkpoint_arg and "://" not in checkpoint_arg:
        ckpt = Path(checkpoint_arg)
        if not ckpt.is_file():
            raise click.BadParameter(f"{ckpt} is not a file", param_hint="--checkpoint")
        working_dir = tempfile.mkdtemp(prefix="infotok-submit-")
        (Path(working_dir) / ckpt.name).write_bytes(ckpt.read_bytes())
        checkpoint_arg = ckpt.name  # relative to the job's working directory
    argv = job_argv(input_uri, output, dict(o, overwrite=overwrite), checkpoint_arg)
    entrypoint = shlex.join(["python", "-m", "jobs.cli", "-v", "tokenize", *argv])
    runtime_env: dict = {"py_modules": py_modules, "env_vars": {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}}
    if working_dir:
        runtime_env["working_dir"] = working_dir
    client = JobSubmitter(address)
    job_id = client.submit(entrypoint, runtime_env, {"infotok_output": output, "infotok_input": input_uri})
    if not follow:
        click.echo(json.dumps({"job_id": job_id}) if as_json else f"submitted job {job_id}")
        return
    if not as_json:
        click.echo(f"submitted job {job_id}; following its logs")

    def show(logs: str) -> None:
        sys.stdout.write(logs)
        sys.stdout.flush()

    status = client.follow(job_id, None if as_json else show)
    if as_json:
        click.echo(json.dumps({"job_id": job_id, "status": status}))
    else:
        click.echo(f"job {job_id} {status}")
    if status != "SUCCEEDED":
        sys.exit(1)
