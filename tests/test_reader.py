"""`DatasetReader`, the one reader of a finished dataset: parts come out only as their commits
recorded them, and every command that reads a dataset (inspect, lm-probe, the loader) refuses a
tampered part with one line naming the file."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from test_schemas import META, make_clips

from jobs.cli import main
from pipeline.io.dataset import DatasetDir, DatasetNotReadyError
from pipeline.io.reader import DatasetReader, PartIntegrityError
from pipeline.io.writer import write_manifest, write_shard
from pipeline.lm.read import read_corpus
from schemas.errors import ErrorRow
from schemas.layout import error_part_path, manifest_path, token_part_path
from schemas.tokens import TokenFileMeta, table_to_clips


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reader") / "ds"
    errs = [ErrorRow("a", "decode", "permanent", "E", "m")]
    for shard in range(2):
        write_shard(DatasetDir(str(root)), shard, make_clips(3, 2, seed=shard, first_video=3 * shard),
                    errs if shard == 0 else [], META)
    write_manifest(DatasetDir(str(root)), {})
    return root


def _copy(clean: Path, tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    shutil.copytree(clean, root)
    return root


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))


def test_reads_what_was_written(clean: Path) -> None:
    reader = DatasetReader(str(clean))
    assert [p.shard for p in reader.parts] == [0, 1]
    for shard in (0, 1):
        want = pq.read_table(token_part_path(str(clean), shard))
        got = reader.read_part(shard)
        assert got.equals(want)
        assert [c.video_id for c in table_to_clips(got)] == [c.video_id for c in table_to_clips(want)]
        assert reader.read_part(shard, ["n_tokens"]).column_names == ["n_tokens"]
        assert reader.open_part(shard).read().equals(want)
    assert reader.read_errors(0, ["kind"]).column("kind").to_pylist() == ["permanent"]
    assert reader.read_errors(1).num_rows == 0
    again = pickle.loads(pickle.dumps(reader))  # loader workers receive it
    assert again.manifest == reader.manifest and again.read_part(1).equals(reader.read_part(1))


def test_refuses_a_dataset_without_manifest(clean: Path, tmp_path: Path) -> None:
    root = _copy(clean, tmp_path)
    Path(manifest_path(str(root))).unlink()
    with pytest.raises(DatasetNotReadyError, match="no manifest"):
        DatasetReader(str(root)).read_part(0)


@pytest.mark.parametrize("damage", ["byte flip", "truncated", "swapped"])
def test_tampered_part_is_refused_naming_the_file(clean: Path, tmp_path: Path, damage: str) -> None:
    root = _copy(clean, tmp_path)
    part = Path(token_part_path(str(root), 1))
    if damage == "byte flip":
        _flip_byte(part)
    elif damage == "truncated":
        part.write_bytes(part.read_bytes()[:-50])
    else:
        shutil.copyfile(token_part_path(str(root), 0), part)
    reader = DatasetReader(str(root))
    reader.read_part(0)  # the other part is fine
    for read in (lambda: reader.read_part(1), lambda: reader.open_part(1), lambda: reader.part_bytes(1)):
        with pytest.raises(PartIntegrityError, match=f"{part}.*damaged or replaced"):
            read()
    if damage == "swapped":  # a valid Parquet file: only the checksum tells
        assert reader.read_part(1, verify=False).equals(reader.read_part(0))


def test_tampered_error_part_is_refused(clean: Path, tmp_path: Path) -> None:
    root = _copy(clean, tmp_path)
    part = Path(error_part_path(str(root), 0))
    _flip_byte(part)
    with pytest.raises(PartIntegrityError, match=f"{part}.*damaged or replaced"):
        DatasetReader(str(root)).read_errors(0)


def test_part_of_another_tokenizer_is_refused(clean: Path, tmp_path: Path) -> None:
    # a part rewritten (and re-committed) by another tokenizer under a manifest that names this one
    root = _copy(clean, tmp_path)
    other = tmp_path / "other"
    write_shard(DatasetDir(str(other)), 1, make_clips(3, 2, seed=1, first_video=3), [],
                TokenFileMeta(tokenizer_id="another-tok", beta=1.0, expected_info=0.1))
    shutil.copyfile(token_part_path(str(other), 1), token_part_path(str(root), 1))
    reader = DatasetReader(str(root))
    with pytest.raises(PartIntegrityError, match="tokenizer_id b'another-tok', the manifest says 'test-tok'"):
        reader.read_part(1, verify=False)


def test_lm_read_and_inspect_refuse_a_tampered_part(clean: Path, tmp_path: Path) -> None:
    root = _copy(clean, tmp_path)
    part = Path(token_part_path(str(root), 1))
    _flip_byte(part)
    with pytest.raises(PartIntegrityError, match=f"{part}.*damaged or replaced"):
        read_corpus(DatasetDir(str(root)))
    for args in (["inspect", str(root)], ["lm-probe", str(root), "--steps", "1", "--device", "cpu"]):
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 1, res.output
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and str(part) in lines[0] and "damaged or replaced" in lines[0], res.output
        assert res.exception is None or isinstance(res.exception, SystemExit)
