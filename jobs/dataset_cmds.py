"""`infotok inspect DATASET` and `infotok validate DATASET`.

inspect: counts, tokens-per-clip histogram, mean rate, BPP16 (with and without the mask
bits) and errors by kind and stage. BPP16 = 16 * n_tokens * log2(codebook) / (frames *
height * width), summed over clips (pixel-weighted); the mask variant adds grid_t*grid_h*grid_w
bits per clip. It reads through `pipeline.io.reader.DatasetReader`: a part that differs from
its commit is refused, naming the file.
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from typing import Any

import click
import numpy as np

from pipeline.io.dataset import DatasetDir, DatasetNotReadyError
from pipeline.io.reader import DatasetReader
from jobs.options import json_option, storage_from, storage_options

_SUMMARY_COLUMNS = ["n_tokens", "rate", "frame_count", "height", "width", "grid_t", "grid_h", "grid_w"]


def token_bins(lo: int, hi: int, bins: int) -> np.ndarray:
    """Integer bin edges over token counts lo..hi: one bin per count when there are at most `bins`
    distinct counts (a dataset whose clips all keep the same count gets one bin), else `bins`
    bins of equal integer width."""
    width = max(1, -(-(hi - lo + 1) // bins))
    return np.arange(lo, hi + width + 1, width, dtype=np.float64)


def dataset_summary(ds: DatasetDir, bins: int = 10) -> dict[str, Any]:
    """Summary of a finished dataset (raises DatasetNotReadyError without a manifest, ValueError for
    a part that differs from its commit)."""
    reader = DatasetReader(ds)
    m = reader.manifest
    cols: dict[str, list[np.ndarray]] = {c: [] for c in _SUMMARY_COLUMNS}
    by_kind: Counter = Counter()
    by_stage: Counter = Counter()
    for p in m.parts:
        t = reader.read_part(p.shard, _SUMMARY_COLUMNS)
        for c in _SUMMARY_COLUMNS:
            cols[c].append(t.column(c).to_numpy().astype(np.float64))
        e = reader.read_errors(p.shard, ["kind", "stage"])
        by_kind.update(e.column("kind").to_pylist())
        by_stage.update(e.column("stage").to_pylist())
    a = {c: np.concatenate(v) if v else np.zeros(0) for c, v in cols.items()}
    n = a["n_tokens"]
    pixels = float((a["frame_count"] * a["height"] * a["width"]).sum())
    cells = float((a["grid_t"] * a["grid_h"] * a["grid_w"]).sum())
    bits = float(n.sum()) * math.log2(m.codebook_size)
    hist: dict[str, Any] = {"edges": [], "counts": []}
    if n.size:
        counts, edges = np.histogram(n, bins=token_bins(int(n.min()), int(n.max()), bins))
        hist = {"edges": [float(x) for x in edges], "counts": [int(x) for x in counts]}
    return {
        "root": ds.root,
        "schema_version": m.schema_version,
        "tokenizer_id": m.tokenizer_id,
        "router": m.file_meta.router,
        "beta": m.file_meta.beta,
        "expected_info": m.file_meta.expected_info,
        "fit_clips": _fit_clips(m.params),
        "created_at": m.created_at,
        "shards": m.n_shards,
        "videos": m.n_videos,
        "clips": int(n.size),
        "tokens": int(n.sum()),
        "errors": m.n_errors,
        "errors_by_kind": dict(sorted(by_kind.items())),
        "errors_by_stage": dict(sorted(by_stage.items())),
        "tokens_per_clip": {"mean": float(n.mean()) if n.size else 0.0,
                            "min": int(n.min()) if n.size else 0, "max": int(n.max()) if n.size else 0,
                            "histogram": hist},
        "mean_rate": float(a["rate"].mean()) if n.size else 0.0,
        "bpp16": 16 * bits / pixels if pixels else 0.0,
        "bpp16_with_mask": 16 * (bits + cells) / pixels if pixels else 0.0,
        "token_bytes": sum(p.token_bytes for p in m.parts),
    }


def _fit_clips(params: dict[str, Any]) -> int | None:
    """Clips of the router's per-corpus fit the dataset was made with (None: no fit)."""
    fit = (params.get("tokenize") or {}).get("fit")
    return int(fit["fit"]["clips"]) if isinstance(fit, dict) else None


@click.command("inspect")
@click.argument("dataset")
@json_option
@storage_options
def inspect_cmd(dataset: str, as_json: bool, **o: Any) -> None:
    """Counts, tokens-per-clip histogram, mean rate, BPP16 and errors of DATASET."""
    from tokenizer.adaptive.routers.registry import get_router

    try:
        s = dataset_summary(DatasetDir(dataset, storage_from(o)))
    except (DatasetNotReadyError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(s, indent=1))
        return
    click.echo(f"dataset      {s['root']}  (schema v{s['schema_version']}, tokenizer {s['tokenizer_id']})")
    basis = get_router(s["router"]).budget_basis(s["expected_info"], s["fit_clips"])
    click.echo(f"router       {s['router']}, beta {s['beta']:g}, {basis}   "
               f"created {s['created_at']}")
    click.echo(f"counts       {s['shards']} shards, {s['videos']} videos, {s['clips']} clips, {s['tokens']} tokens, "
               f"{s['errors']} errors")
    tpc = s["tokens_per_clip"]
    click.echo(f"tokens/clip  mean {tpc['mean']:.1f}  min {tpc['min']}  max {tpc['max']}")
    h = tpc["histogram"]
    peak = max(h["counts"], default=0) or 1
    for i, c in enumerate(h["counts"]):
        lo, hi = int(h["edges"][i]), int(h["edges"][i + 1]) - 1  # counts lo..hi, both included
        label = f"{lo:9d}" + (f" .. {hi:<9d}" if hi > lo else " " * 13)
        click.echo(f"  {label}  {c:8d}  {'#' * round(40 * c / peak)}")
    click.echo(f"mean rate    {s['mean_rate']:.4f}")
    click.echo(f"BPP16        {s['bpp16']:.4f}  (with mask bits {s['bpp16_with_mask']:.4f})")
    click.echo(f"on disk      {s['token_bytes']} bytes of token parts")
    kinds = ", ".join(f"{k} {v}" for k, v in s["errors_by_kind"].items()) or "none"
    stages = ", ".join(f"{k} {v}" for k, v in s["errors_by_stage"].items()) or "none"
    click.echo(f"errors       by kind: {kinds}; by stage: {stages}")


@click.command("validate")
@click.argument("dataset")
@json_option
@click.option("--max-per-check", default=20, show_default=True, help="Violations listed per file and field.")
@click.option("--quick", is_flag=True, help="Check part sizes, not their SHA-256 (no hashing).")
@storage_options
def validate_cmd(dataset: str, as_json: bool, max_per_check: int, quick: bool, **o: Any) -> None:
    """Check DATASET thoroughly; exit status 1 when any violation is found."""
    from schemas.validate import validate_dataset

    report = validate_dataset(DatasetReader(dataset, storage_from(o)), max_per_check=max_per_check,
                              checksums=not quick)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=1))
    else:
        for v in report.violations:
            click.echo(str(v))
        status = "OK" if report.ok else f"{len(report.violations)} violation(s)"
        click.echo(f"{dataset}: {status} ({report.files_checked} files, {report.rows_checked} rows checked)")
    if not report.ok:
        sys.exit(1)
