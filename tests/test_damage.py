"""Damage to a finished dataset is caught by `validate` (naming the file) and by the loader before it
yields a row of the damaged part: every part's size and SHA-256 are in its commit and the manifest."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from test_schemas import META, make_clips

from pipeline.io.dataset import DatasetDir, DatasetNotReadyError
from pipeline.io.writer import WriterConfig, token_table_bytes, write_manifest, write_shard
from pipeline.loader import LoaderConfig, TokenDataset
from schemas.layout import manifest_path, token_part_path
from schemas.tokens import table_to_clips
from schemas.validate import validate_dataset


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clean") / "ds"
    for shard in range(2):
        write_shard(DatasetDir(str(root)), shard, make_clips(3, 2, seed=shard, first_video=3 * shard), [], META)
    write_manifest(DatasetDir(str(root)), {})
    return root


def _rewrite_rows(path: Path, change: Callable[[list], None]) -> None:
    """Decode the part, change its clips, encode it again the way the writer does."""
    import pyarrow.parquet as pq

    from schemas.tokens import clips_to_table

    clips = table_to_clips(pq.read_table(path))
    change(clips)
    data, _ = token_table_bytes(clips_to_table(clips, META), WriterConfig())
    path.write_bytes(data)


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * 0.3)] ^= 0xFF
    path.write_bytes(bytes(data))


def _id_plus_one(path: Path) -> None:
    def change(clips: list) -> None:
        clips[0].tokens[0] = (int(clips[0].tokens[0]) + 1) % 64000
    _rewrite_rows(path, change)


def _move_mask_bit(path: Path) -> None:
    import dataclasses

    def change(clips: list) -> None:  # same popcount: one kept position moves to a dropped one
        c = clips[0]
        bits = np.unpackbits(np.frombuffer(c.mask, np.uint8), bitorder="little")
        kept, dropped = np.flatnonzero(bits[: np.prod(c.grid)]), np.flatnonzero(bits[: np.prod(c.grid)] == 0)
        if dropped.size == 0:
            pytest.skip("the first clip keeps every token")
        bits[kept[0]], bits[dropped[0]] = 0, 1
        clips[0] = dataclasses.replace(c, mask=np.packbits(bits, bitorder="little").tobytes())
    _rewrite_rows(path, change)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def _swap(path: Path) -> None:  # another shard's (valid) part in this one's place
    shutil.copyfile(path.parent / "part-000000.parquet", path)


DAMAGE = {"byte flip": _flip_byte, "id + 1": _id_plus_one, "moved mask bit": _move_mask_bit,
          "truncated part": _truncate, "swapped part": _swap}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damage_is_caught_by_validate_and_loader(clean: Path, tmp_path: Path, damage: str) -> None:
    root = tmp_path / "ds"
    shutil.copytree(clean, root)
    part = Path(token_part_path(str(root), 1))
    DAMAGE[damage](part)
    report = validate_dataset(DatasetDir(str(root)))
    assert not report.ok
    assert {v.file for v in report.violations} == {str(part)}, [str(v) for v in report.violations]
    assert any(v.field in ("checksum", "size") for v in report.violations)
    quick = validate_dataset(DatasetDir(str(root)), checksums=False)  # no hashing: sizes and rows only
    assert quick.rows_checked >= 0
    ds = TokenDataset(str(root), LoaderConfig(mode="clips", shuffle=False))
    seen = []
    with pytest.raises(ValueError, match=f"{part}.*damaged or replaced"):
        for row in ds:
            seen.append(row["video_id"])
    assert all(v in {c.video_id for c in make_clips(3, 2, seed=0)} for v in seen)  # only shard 0's rows came out
    unchecked = TokenDataset(str(root), LoaderConfig(mode="clips", shuffle=False, verify_checksums=False))
    assert unchecked.config.verify_checksums is False


def test_clean_dataset_passes_and_loads(clean: Path) -> None:
    assert validate_dataset(DatasetDir(str(clean))).ok
    assert len(list(TokenDataset(str(clean), LoaderConfig(mode="clips", shuffle=False)))) == 12


def test_missing_manifest(clean: Path, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    shutil.copytree(clean, root)
    Path(manifest_path(str(root))).unlink()
    (v,) = validate_dataset(DatasetDir(str(root))).violations
    assert v.field == "manifest" and v.file == manifest_path(str(root))
    with pytest.raises(DatasetNotReadyError, match="no manifest"):
        TokenDataset(str(root))


def test_a_part_that_does_not_decode_is_a_violation_not_a_crash(clean: Path, tmp_path: Path) -> None:
    # a flipped byte inside compressed pages: `validate` once died with "ZSTD decompression failed"
    root = tmp_path / "ds"
    shutil.copytree(clean, root)
    part = Path(token_part_path(str(root), 0))
    data = bytearray(part.read_bytes())
    for offset in range(4, len(data) // 2, 7):
        data[offset] ^= 0x5A
    part.write_bytes(bytes(data))
    report = validate_dataset(DatasetDir(str(root)), checksums=False)
    assert not report.ok and all(v.file == str(part) for v in report.violations)
