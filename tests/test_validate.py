"""validate: a clean dataset passes; each deliberate break is reported with file, row, field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from test_schemas import META, make_clip

from schemas.layout import commit_path, error_part_path, manifest_path, token_part_path
from pipeline.io.dataset import DatasetDir
from pipeline.io.writer import write_manifest, write_shard
from schemas.errors import ErrorRow
from schemas.validate import validate_dataset


def _dataset(root: str) -> None:
    rng = np.random.default_rng(0)
    for shard in range(3):
        clips = [make_clip(rng, 10 * shard + v, 0, grid=(2, 3, 5)) for v in range(10)]
        errors = [ErrorRow("s3://src/x.mp4", "decode", "permanent", "E", "bad")] if shard == 0 else []
        write_shard(DatasetDir(root), shard, clips, errors, META)
    write_manifest(DatasetDir(root), {"test": True})


def _rewrite(path: str, edit: dict[str, list]) -> None:
    t = pq.read_table(path)
    for name, values in edit.items():
        i = t.schema.get_field_index(name)
        t = t.set_column(i, t.schema.field(i), pa.array(values, t.schema.field(i).type))
    pq.write_table(t, path)


def test_clean_dataset_passes(tmp_path: Path) -> None:
    _dataset(str(tmp_path))
    report = validate_dataset(DatasetDir(str(tmp_path)))
    assert report.ok, [str(v) for v in report.violations]
    assert report.rows_checked == 30


def test_shard_of_zero_clips_passes(tmp_path: Path) -> None:
    # every video of a shard failed: its token part holds no rows (validate once refused such datasets)
    root = str(tmp_path)
    rng = np.random.default_rng(0)
    write_shard(DatasetDir(root), 0, [make_clip(rng, 0, 0, grid=(2, 3, 5))], [], META)
    write_shard(DatasetDir(root), 1, [], [ErrorRow("/v/bad.mp4", "decode", "permanent", "E", "bad")], META)
    write_manifest(DatasetDir(root), {})
    report = validate_dataset(DatasetDir(root))
    assert report.ok, [str(v) for v in report.violations]
    assert report.rows_checked == 1


def test_missing_manifest_is_reported(tmp_path: Path) -> None:
    _dataset(str(tmp_path))
    Path(manifest_path(str(tmp_path))).unlink()
    (v,) = validate_dataset(DatasetDir(str(tmp_path))).violations
    assert v.field == "manifest" and "missing" in v.message


def test_every_violation_is_found(tmp_path: Path) -> None:
    root = str(tmp_path)
    _dataset(root)
    p0 = token_part_path(root, 0)
    d = pq.read_table(p0).to_pydict()
    d["n_tokens"][0] += 1  # row 0: n_tokens != len(tokens)
    m = bytearray(d["mask"][1])  # row 1: one more kept bit than tokens
    clear = next(i for i in range(15) if not (m[i // 8] >> (i % 8)) & 1)
    m[clear // 8] |= 1 << (clear % 8)
    d["mask"][1] = bytes(m)
    d["tokens"][2] = [64500] + d["tokens"][2][1:]  # row 2: id outside the codebook
    d["grid_h"][3] = 4  # row 3: grid no longer fits the mask (and the pixel height)
    d["video_id"][5], d["clip_index"][5] = d["video_id"][4], d["clip_index"][4]  # row 5 duplicates row 4
    d["frame_count"][6] = 6  # row 6: not 1 + 4k
    m = bytearray(d["mask"][7])  # row 7: a padding bit set, popcount kept equal
    first = next(i for i in range(15) if (m[i // 8] >> (i % 8)) & 1)
    m[first // 8] &= ~(1 << (first % 8)) & 0xFF
    m[3] |= 0x80  # bits 30..: cell 31 is past the 30-cell grid
    d["mask"][7] = bytes(m)
    d["rate"][8] = 0.01  # row 8: rate does not match n_tokens
    _rewrite(p0, {k: d[k] for k in ("n_tokens", "mask", "tokens", "grid_h", "video_id", "clip_index",
                                     "frame_count", "rate")})
    # shard 1: written by another tokenizer; its error part is gone
    t1 = pq.read_table(token_part_path(root, 1))
    meta = dict(t1.schema.metadata)
    meta[b"infotok.tokenizer_id"] = b"other-tok"
    pq.write_table(t1.replace_schema_metadata(meta), token_part_path(root, 1))
    Path(error_part_path(root, 1)).unlink()
    # shard 2: commit marker disagrees; a stray part not in the manifest; manifest total off
    c = json.loads(Path(commit_path(root, 2)).read_text())
    c["n_tokens"] += 5
    Path(commit_path(root, 2)).write_text(json.dumps(c))
    Path(token_part_path(root, 9)).write_bytes(Path(token_part_path(root, 2)).read_bytes())
    mf = json.loads(Path(manifest_path(root)).read_text())
    mf["n_clips"] += 1
    Path(manifest_path(root)).write_text(json.dumps(mf))
    # errors of shard 0: an unknown kind
    _rewrite(error_part_path(root, 0), {"kind": ["maybe"]})

    report = validate_dataset(DatasetDir(root))
    found = {(Path(v.file).name, v.row, v.field) for v in report.violations}
    expected = {
        ("part-000000.parquet", 0, "n_tokens"),
        ("part-000000.parquet", 1, "mask"),
        ("part-000000.parquet", 2, "tokens"),
        ("part-000000.parquet", 3, "mask"),
        ("part-000000.parquet", 3, "grid_h"),
        ("part-000000.parquet", 5, "clip_index"),
        ("part-000000.parquet", 6, "grid_t"),
        ("part-000000.parquet", 7, "mask"),
        ("part-000000.parquet", 8, "rate"),
        ("part-000000.parquet", 0, "kind"),
        ("part-000001.parquet", None, "infotok.tokenizer_id"),
        ("part-000001.parquet", None, "file"),
        ("part-000002.json", None, "commit"),
        ("part-000009.parquet", None, "file"),
        ("dataset.json", None, "n_clips"),
    }
    assert expected <= found, sorted(expected - found)
    pad = [v for v in report.violations if v.row == 7]
    assert any("padding" in v.message for v in pad)
    dup = next(v for v in report.violations if v.field == "clip_index")
    assert "first at" in dup.message and "row 4" in dup.message
    # Nothing is reported on clean rows of the broken file.
    assert not [v for v in report.violations if Path(v.file).name == "part-000000.parquet" and v.row == 9]
