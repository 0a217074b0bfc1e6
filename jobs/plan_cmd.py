"""`infotok plan INPUT OUTPUT`: list and plan a corpus without decoding anything.

What a user runs first on a new bucket, and the step every `tokenize` runs first: it lists INPUT
(out of core: bounded memory however many videos), cuts the shards, and prints what it found.
A fresh OUTPUT gets the plan (plan.json + plan/), which a later `tokenize` with the same INPUT and
--shard-size takes up; an OUTPUT that already holds a plan is only compared with the listing
(what a rerun of `tokenize` would add, report as removed or changed): nothing there is written.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import click

from jobs.options import json_option, storage_from, storage_options

logger = logging.getLogger(__name__)


@click.command("plan")
@click.argument("input_uri", metavar="INPUT")
@click.argument("output", metavar="OUTPUT")
@click.option("--shard-size", default=64, show_default=True, type=int, help="Videos per shard.")
@click.option("--extensions", default=None, help="Comma-separated video extensions when listing a prefix.")
@storage_options
@json_option
def plan_cmd(input_uri: str, output: str, shard_size: int, extensions: str | None, as_json: bool, **o: Any) -> None:
    """List INPUT (folder, s3:// prefix or list file) and plan it into shards at OUTPUT, decoding nothing."""
    from pipeline.plan.plan import PlanConfig, make_plan
    from pipeline.plan.store import load_plan, save_plan
    from pipeline.plan.summary import human_bytes, summarize
    from pipeline.job.prepare import PreflightError, check_output_is_ours
    from pipeline.io.dataset import DatasetDir
    from pipeline.io.inputs import DEFAULT_EXTENSIONS, InputConfig, ListingCounts, canonical_input
    from schemas.layout import PLAN_FILE

    storage = storage_from(o)
    try:
        config = PlanConfig(videos_per_shard=shard_size)
        exts = tuple(e.strip() for e in extensions.split(",")) if extensions else DEFAULT_EXTENSIONS
        source = InputConfig(uri=canonical_input(input_uri), extensions=exts)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    ds = DatasetDir(output.rstrip("/"), storage)
    t0 = time.perf_counter()
    try:
        if ds.fs.isfile(ds.path()):
            raise click.ClickException(f"output {output!r} is a file, not a folder or prefix")
        check_output_is_ours(ds)
        counts = ListingCounts()
        plan = make_plan(source, config, storage, counts)
    except PreflightError as exc:
        raise click.ClickException(str(exc)) from None
    except FileNotFoundError as exc:
        raise click.ClickException(f"input {input_uri!r} not found ({exc})") from None
    if not plan.n_videos:
        raise click.ClickException(f"no videos under input {input_uri!r}")
    summary = summarize(plan, counts)
    growth = None
    if ds.exists(PLAN_FILE):
        old = load_plan(ds)
        if old.source.uri != source.uri:
            raise click.ClickException(f"{output} holds the plan of another input ({old.source.uri!r}, not "
                                       f"{source.uri!r}); choose another OUTPUT")
        try:
            growth = old.grow(plan)[1]
        except ValueError as exc:
            raise click.ClickException(f"{output}: {exc}") from None
    else:
        save_plan(ds, plan)
    seconds = time.perf_counter() - t0
    if as_json:
        out = {**summary.to_dict(), "output": ds.root, "written": growth is None, "seconds": round(seconds, 3)}
        if growth is not None:
            out.update(added=growth.added, removed=growth.removed, changed=growth.changed)
        click.echo(json.dumps(out))
        return
    s = summary
    click.echo(f"{input_uri}: {s.videos:,} videos, {human_bytes(s.bytes)}, in {s.shards:,} shards of <= "
               f"{s.videos_per_shard} ({seconds:.1f}s)")
    click.echo("  extensions: " + ", ".join(f"{k} {v:,}" for k, v in s.extensions.items()))
    click.echo(f"  listed twice: {s.listed_twice:,} (dropped); same size and etag as another video: "
               f"{s.shared_content:,}; missing: {s.missing:,}; other objects skipped: {s.skipped:,}")
    if growth is None:
        click.echo(f"  plan written to {ds.uri(PLAN_FILE)} (fingerprint {s.fingerprint[:12]}); "
                   f"`infotok tokenize {input_uri} {output}` runs it")
    else:
        click.echo(f"  {output} already holds a plan: the listing has {growth.added:,} new videos (a tokenize rerun "
                   f"puts them in a new generation), {growth.removed:,} removed, {growth.changed:,} changed; "
                   "nothing written")
