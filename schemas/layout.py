"""Where a dataset's files live under its root (local folder or s3://bucket/prefix): part of
the data contract, so written down once, here, as pure functions of the shard id.

Names never depend on listing order or writer-made UUIDs, so a retried shard overwrites its
own files and a rerun finds the same names.

    ROOT/tokens/part-{shard:06d}.parquet   token rows
    ROOT/errors/part-{shard:06d}.parquet   error rows (written for every shard, maybe empty)
    ROOT/_commits/part-{shard:06d}.json    commit marker, written after both parts
    ROOT/dataset.json                      manifest, written last
    ROOT/job.json, ROOT/plan.json          the job's settings and its listed corpus (metadata)
    ROOT/plan/gen-{g:05d}-{fp}.parquet     the plan's entries, one file per generation
    ROOT/tuning.json, ROOT/tuning.png      the beta tuning of `--beta auto` (when tuned)
    ROOT/<part folder>/.tmp-*              a local write in progress (renamed when complete)
    ROOT/_lease.json                       the running job's hold on the dataset (pipeline.io.lease)

Shard ids are zero-padded to 6 digits and grow wider by themselves past 999,999, so every
name is unique and `shard_of` reads any of them back.
"""

from __future__ import annotations

import re

TOKENS_DIR = "tokens"
ERRORS_DIR = "errors"
COMMITS_DIR = "_commits"
MANIFEST_NAME = "dataset.json"
JOB_FILE = "job.json"
PLAN_FILE = "plan.json"
PLAN_DIR = "plan"
TUNING_REPORT = "tuning.json"
TUNING_FIGURE = "tuning.png"
TEMP_PREFIX = ".tmp-"
LEASE_FILE = "_lease.json"
ROOT_FILES: tuple[str, ...] = (MANIFEST_NAME, JOB_FILE, PLAN_FILE, TUNING_REPORT, TUNING_FIGURE, LEASE_FILE)

PART_DIGITS = 6
PART_FOLDERS: tuple[tuple[str, str], ...] = ((TOKENS_DIR, "parquet"), (ERRORS_DIR, "parquet"), (COMMITS_DIR, "json"))
_PART_RE = re.compile(r"^part-(\d{6,})\.(parquet|json)$")


def join(root: str, *parts: str) -> str:
    """Join path parts with '/', for local and object-store paths alike."""
    out = root.rstrip("/")
    for p in parts:
        out = f"{out}/{p.strip('/')}"
    return out


def part_stem(shard: int) -> str:
    """`part-000123`: the one naming rule for a shard's files."""
    if isinstance(shard, bool) or not isinstance(shard, int) or shard < 0:
        raise ValueError(f"shard id must be an int >= 0, got {shard!r}")
    return f"part-{shard:0{PART_DIGITS}d}"


def part_name(shard: int, ext: str) -> str:
    return f"{part_stem(shard)}.{ext}"


def token_part(shard: int) -> str:
    """Token part, relative to the dataset root."""
    return f"{TOKENS_DIR}/{part_name(shard, 'parquet')}"


def error_part(shard: int) -> str:
    return f"{ERRORS_DIR}/{part_name(shard, 'parquet')}"


def commit_marker(shard: int) -> str:
    return f"{COMMITS_DIR}/{part_name(shard, 'json')}"


def token_part_path(root: str, shard: int) -> str:
    return join(root, token_part(shard))


def error_part_path(root: str, shard: int) -> str:
    return join(root, error_part(shard))


def commit_path(root: str, shard: int) -> str:
    return join(root, commit_marker(shard))


def manifest_path(root: str) -> str:
    return join(root, MANIFEST_NAME)


def is_part_file(folder: str, name: str) -> bool:
    """Whether `folder/name` is a file the writer makes: a part or marker named by the layout, or the
    temp file of a write in progress. Anything else under a dataset is not the job's."""
    for sub, ext in PART_FOLDERS:
        if folder == sub:
            if name.startswith(TEMP_PREFIX):
                return True
            m = _PART_RE.search(name)
            return m is not None and name == part_name(int(m.group(1)), ext)
    return False


def shard_of(path: str) -> int:
    """Shard id from a part or marker file name; ValueError for any other name."""
    m = _PART_RE.search(path.rsplit("/", 1)[-1])
    if m is None:
        raise ValueError(f"not a part file name: {path!r}")
    return int(m.group(1))
