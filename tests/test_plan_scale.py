"""Planning out of core, at small sizes with tiny runs and row groups, so that every path that a
10M-video corpus takes (many sorted runs, many ranges, shards across row groups, growth windows)
runs here: the result must equal the in-memory definition."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pipeline.plan.files as plan_files
import pipeline.plan.spill as spill_mod
import pipeline.io.inputs as inputs_mod
from pipeline.plan.plan import PlanConfig, entries_fingerprint, make_plan
from pipeline.plan.store import load_plan, save_plan
from pipeline.plan.repeats import KeyRepeats
from pipeline.plan.spill import SortedSpill
from pipeline.io.dataset import DatasetDir
from pipeline.io.inputs import MISSING_VERSION, InputConfig, ListingCounts, ManifestEntry, listing_schema, video_id_of
from pipeline.io.storage import StorageConfig


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs of 256 rows, listing batches of 100, row groups of ~64 entries, merge reads of 32."""
    monkeypatch.setattr(spill_mod, "RUN_ROWS", 256)
    monkeypatch.setattr(spill_mod, "_READ_ROWS", 32)
    monkeypatch.setattr(inputs_mod, "BATCH_ROWS", 100)
    monkeypatch.setattr(plan_files, "GROUP_ROWS", 64)


def _list_file(path: Path, rows: list[tuple[str, int, str]]) -> str:
    pq.write_table(pa.table({"uri": [r[0] for r in rows], "size": [r[1] for r in rows],
                             "etag": [r[2] for r in rows]}), path, row_group_size=50)
    return str(path)


def _corpus(n: int, seed: int) -> list[tuple[str, int, str]]:
    rng = random.Random(seed)
    rows = [(f"s3://bucket/videos/{rng.randrange(10**9):09d}/{i}.mp4", rng.randrange(1, 10**6), f"{i:x}")
            for i in range(n)]
    rng.shuffle(rows)
    return rows


def _expected(rows: list[tuple[str, int, str]]) -> list[ManifestEntry]:
    last = {u: (s, e) for u, s, e in rows}  # the last row of a repeated uri wins
    return [ManifestEntry(uri=u, size=s, version=f"etag:{e}", video_id=video_id_of(u)) for u, (s, e) in sorted(last.items())]


@pytest.mark.parametrize("fanin", [64, 3])  # 3: the 16 runs are first merged in groups, twice
def test_sorted_spill_equals_a_sort_in_memory(tmp_path: Path, fanin: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spill_mod, "MAX_FANIN", fanin)
    rng = random.Random(0)
    uris = [f"u{rng.randrange(3000):05d}" for _ in range(5000)]  # many repeats, in any order
    spill = SortedSpill(str(tmp_path / "s"), pa.schema([("uri", pa.string()), ("n", pa.int64())]), run_rows=256)
    for i in range(0, len(uris), 333):
        spill.add(pa.table({"uri": uris[i : i + 333], "n": list(range(i, min(i + 333, len(uris))))}))
    merged: list[int] = []
    real_merge = SortedSpill._merge_group
    monkeypatch.setattr(SortedSpill, "_merge_group", lambda self, runs, sp: (merged.append(len(runs)),
                                                                             real_merge(self, runs, sp))[1])
    tables = list(spill.sorted_tables())
    assert spill._n_files == 16 + len([n for n in merged if n > 1])  # a run per 256 rows added (in adds of 333)
    assert merged == ([] if fanin == 64 else [3, 3, 3, 3, 3, 1, 3, 3])
    assert len(list((tmp_path / "s").iterdir())) == (16 if fanin == 64 else 2)
    assert 10 <= len(tables) <= 25 and max(t.num_rows for t in tables) < 3 * 256  # ranges of about a run
    got = [(r["uri"], r["n"]) for t in tables for r in t.to_pylist()]
    assert got == sorted({u: i for i, u in enumerate(uris)}.items())
    assert spill.rows_added == 5000 and spill.rows_out == len(set(uris))


def test_key_repeats(tmp_path: Path) -> None:
    keys = KeyRepeats(str(tmp_path))
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2**63, 10_000, dtype=np.int64).astype(np.uint64) * np.uint64(2)
    keys.add(a)
    keys.add(np.array([a[5], a[5], a[77], np.uint64(2**64 - 1)], dtype=np.uint64))
    repeated, members = keys.repeated()
    assert sorted(repeated.tolist()) == sorted([int(a[5]), int(a[77])]) and members == 5
    assert keys.n_keys == 10_004


def test_list_file_plan_out_of_core_equals_the_definition(tmp_path: Path, small_chunks: None,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    rows = _corpus(2000, 1)
    rows += [(u, s + 1, e + "b") for u, s, e in rows[:40]]  # listed twice: the later row wins
    counts = ListingCounts()
    k = 7
    runs: list[int] = []
    real_flush = SortedSpill._flush
    monkeypatch.setattr(SortedSpill, "_flush", lambda self: (runs.append(self._buffered), real_flush(self)))
    plan = make_plan(InputConfig(uri=_list_file(tmp_path / "list.parquet", rows)), PlanConfig(k), counts=counts)
    assert [n for n in runs if n] == [300] * 6 + [240]  # 2040 rows in sorted runs of >= 256 (batches of 100)
    want = _expected(rows)
    assert plan.entries == tuple(want)
    assert (counts.rows, counts.stat_requests, plan.n_videos) == (2040, 0, 2000)  # no HEAD: size and etag given
    assert plan.fingerprint == entries_fingerprint(want)  # streamed hash == the in-memory definition
    assert plan.n_shards == -(-2000 // k)
    for shard in (0, 1, 8, 9, 10, plan.n_shards - 1):  # row groups hold 63 = 9 shards: cross them
        assert plan.shard(shard).entries == tuple(want[shard * k : (shard + 1) * k])
    pf = pq.ParquetFile(plan.path(plan.generations[0]))
    assert pf.metadata.num_row_groups > 10 and pf.metadata.row_group(0).num_rows == 63
    assert pf.read(columns=["shard"]).column("shard").to_pylist() == [i // k for i in range(2000)]


def test_growth_out_of_core(tmp_path: Path, small_chunks: None) -> None:
    base = _corpus(900, 2)
    k = 4
    old = make_plan(InputConfig(uri=_list_file(tmp_path / "a.parquet", base)), PlanConfig(k))
    ds = DatasetDir(str(tmp_path / "out"))
    save_plan(ds, old)
    old_file = old.generations[0].file
    # the bucket grows by 300, loses 5 (spread over the range), and 3 change
    ordered = sorted(base)
    gone = {ordered[i][0] for i in (0, 200, 450, 700, 899)}
    changed = {ordered[i][0] for i in (10, 500, 898)}
    grown = [(u, s + 1 if u in changed else s, e) for u, s, e in base if u not in gone] + _corpus(300, 3)
    listed = make_plan(InputConfig(uri=_list_file(tmp_path / "b.parquet", grown)), PlanConfig(k))
    kept, growth, redo = load_plan(ds).grow(listed, "keep")
    assert (growth.added, growth.removed, growth.changed, redo) == (300, 5, 3, set())
    assert [len(r) for r in kept.generation_shards()] == [225, 75] and kept.generation_shards()[1].start == 225
    assert kept.entries[:900] == old.entries  # the first generation untouched
    assert [e.uri for e in kept.entries[900:]] == sorted(u for u, _, _ in _corpus(300, 3))
    assert kept.shard(225).entries == kept.entries[900:904]

    redone, growth, redo = load_plan(ds).grow(listed, "retokenize")
    assert (growth.added, growth.removed, growth.changed) == (300, 5, 3)
    old_index = {e.uri: i for i, e in enumerate(old.entries)}
    assert redo == {old_index[u] // k for u in gone | changed}
    first = {e.uri: e for e in redone.entries[:900]}
    assert all(first[u].version == MISSING_VERSION and first[u].size == -1 for u in gone)
    assert all(first[u].size == old.entries[old_index[u]].size + 1 for u in changed)
    assert redone.generations[0].file != old_file
    save_plan(ds, redone)
    files = sorted(p.name for p in (tmp_path / "out" / "plan").iterdir())
    assert files == sorted(g.file for g in redone.generations)  # the superseded generation file is gone
    again, growth, redo = load_plan(ds).grow(listed, "retokenize")
    assert growth.empty and redo == set() and again == redone


def test_version_2_plan_is_read(tmp_path: Path) -> None:
    entries = [ManifestEntry(uri=f"/v/{n}.mp4", size=i, version="mtime:1", video_id=video_id_of(f"/v/{n}.mp4"))
               for i, n in enumerate(["a", "c", "b", "d"])]
    gen0, gen1 = sorted(entries[:2], key=lambda e: e.uri), sorted(entries[2:], key=lambda e: e.uri)
    d = {"version": 2, "source": InputConfig(uri="/v").to_dict(), "config": {"videos_per_shard": 1},
         "fingerprint": entries_fingerprint(entries), "n_videos": 4, "n_shards": 4,
         "generations": [{"first_entry": 0, "n_videos": 2, "first_shard": 0, "n_shards": 2},
                         {"first_entry": 2, "n_videos": 2, "first_shard": 2, "n_shards": 2}],
         "entries": [e.to_dict() for e in gen0 + gen1]}
    (tmp_path / "plan.json").write_text(json.dumps(d))
    plan = load_plan(DatasetDir(str(tmp_path)))
    assert plan.entries == tuple(gen0 + gen1) and plan.generation_shards() == [range(0, 2), range(2, 4)]
    d["entries"][0]["size"] = 99
    (tmp_path / "plan.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match="does not match its entries"):
        load_plan(DatasetDir(str(tmp_path)))


def test_listing_schema_and_text_lists_stream(tmp_path: Path, small_chunks: None) -> None:
    lst = tmp_path / "l.csv"
    lst.write_text("uri,size,etag\n" + "".join(f"s3://b/{i:04d}.mp4,{i},e{i}\n" for i in range(250)))
    tables = list(inputs_mod.iter_listing(InputConfig(uri=str(lst))))
    assert [t.num_rows for t in tables] == [100, 100, 50] and all(t.schema == listing_schema() for t in tables)


def test_tuning_sample_candidates_stream_and_ignore_listing_order(tmp_path: Path, small_chunks: None) -> None:
    from pipeline.tuning.sample import _candidates, draw

    rows = _corpus(500, 4)
    a = _list_file(tmp_path / "a.parquet", rows)
    b = _list_file(tmp_path / "b.parquet", list(reversed(rows)) + rows[:30])  # other order, 30 repeats
    got_a, draws_a, n_a = _candidates(InputConfig(uri=a), StorageConfig(), 7, 12)
    got_b, draws_b, n_b = _candidates(InputConfig(uri=b), StorageConfig(), 7, 12)
    want = sorted((draw(7, u), u) for u, _, _ in rows)[:12]
    assert [e.uri for e in got_a] == [u for _, u in want] == [e.uri for e in got_b]
    assert draws_a == [d for d, _ in want] == draws_b and (n_a, n_b) == (500, 530)
    other = _candidates(InputConfig(uri=a), StorageConfig(), 8, 12)[0]
    assert [e.uri for e in other] != [e.uri for e in got_a]  # another seed, another sample
