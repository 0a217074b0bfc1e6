from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.io.inputs import (
    InputConfig,
    ManifestEntry,
    list_inputs,
    normalize_uri,
    video_id_of,
)
from pipeline.plan.plan import Plan, PlanConfig, make_plan, plan_from_entries
from pipeline.plan.store import load_plan, save_plan
from pipeline.io.dataset import DatasetDir
from pipeline.io.storage import StorageConfig, filesystem
from schemas.layout import commit_path, part_stem, shard_of, token_part_path


def _touch(root: Path, names: list[str]) -> None:
    for i, n in enumerate(names):
        p = root / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x" * (i + 1))


def test_local_prefix_filters_sorts_and_ids(video_dir: Path) -> None:
    _touch(video_dir, ["b.mp4", "a/c.MOV", "a/deep/d.webm", "notes.txt", ".hidden.mp4", "a/._e.mp4", "f.Mp4"])
    entries = list_inputs(InputConfig(uri=str(video_dir)))
    names = [Path(e.uri).relative_to(video_dir).as_posix() for e in entries]
    assert names == ["a/c.MOV", "a/deep/d.webm", "b.mp4", "f.Mp4"]
    for e in entries:
        assert e.uri == str(Path(e.uri).resolve())  # absolute, normalized
        assert len(e.video_id) == 16 and e.video_id == video_id_of(e.uri)
        assert e.version.startswith("mtime:") and e.size > 0
    only_webm = list_inputs(InputConfig(uri=f"file://{video_dir}", extensions=("WEBM",)))
    assert [Path(e.uri).name for e in only_webm] == ["d.webm"]


def test_listing_is_stable_and_order_independent(video_dir: Path) -> None:
    _touch(video_dir, [f"v{i:03d}.mp4" for i in range(23)])
    src = InputConfig(uri=str(video_dir))
    cfg = PlanConfig(videos_per_shard=5)
    p1 = make_plan(src, cfg)
    p2 = make_plan(InputConfig(uri=str(video_dir) + "//"), cfg)
    assert p1.fingerprint == p2.fingerprint
    shuffled = list(p1.entries)
    random.Random(3).shuffle(shuffled)
    p3 = plan_from_entries(shuffled + shuffled[:4], src, cfg)  # order and duplicates do not matter
    assert p3 == p1
    shards = p1.shards()
    assert [len(s.entries) for s in shards] == [5, 5, 5, 5, 3]
    assert [s.part_name for s in shards] == [f"part-{i:06d}" for i in range(5)]
    assert [e for s in shards for e in s.entries] == list(p1.entries)
    assert shards[1].fingerprint == p3.shard(1).fingerprint != shards[2].fingerprint


def test_fingerprint_tracks_content_and_resume_check(video_dir: Path) -> None:
    _touch(video_dir, ["a.mp4", "b.mp4", "c.mp4"])
    cfg = PlanConfig(videos_per_shard=2)
    old = make_plan(InputConfig(uri=str(video_dir)), cfg)
    (video_dir / "b.mp4").write_bytes(b"changed, longer content")
    new = make_plan(InputConfig(uri=str(video_dir)), cfg)
    assert new.fingerprint != old.fingerprint
    with pytest.raises(ValueError, match=r"1 changed.*b\.mp4"):
        new.check_same_as(old)
    (video_dir / "d.mp4").write_bytes(b"new")
    with pytest.raises(ValueError, match=r"1 added"):
        make_plan(InputConfig(uri=str(video_dir)), cfg).check_same_as(new)
    with pytest.raises(ValueError, match="videos_per_shard differs: existing plan 2, new 3"):
        make_plan(InputConfig(uri=str(video_dir)), PlanConfig(3)).check_same_as(new)
    new.check_same_as(Plan.from_dict(new.to_dict(), folder=new.folder))


def test_plan_round_trip_and_tamper_detection(video_dir: Path, tmp_path: Path) -> None:
    _touch(video_dir, ["x.mp4", "y.mkv", "z.avi"])
    plan = make_plan(InputConfig(uri=str(video_dir), extensions=(".mp4", ".mkv")), PlanConfig(1))
    out = tmp_path / "out"
    ds = DatasetDir(str(out))
    save_plan(ds, plan)
    loaded = load_plan(ds)
    assert loaded == plan and loaded.shards() == plan.shards() and loaded.folder != plan.folder
    assert load_plan(ds, entries=False).n_shards == 2
    d = json.loads((out / "plan.json").read_text())
    assert d["n_shards"] == 2 and d["source"]["extensions"] == [".mp4", ".mkv"] and "entries" not in d
    [gen] = d["generations"]
    assert (out / "plan" / gen["file"]).is_file()
    d["generations"][0]["fingerprint"] = "0" * 64
    with pytest.raises(ValueError, match="fingerprint .* does not match"):
        Plan.from_dict(d)
    d = json.loads((out / "plan.json").read_text())
    d["extra"] = 1
    with pytest.raises(ValueError, match="extra"):
        Plan.from_dict(d)
    (out / "plan.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_plan(ds)
    save_plan(ds, plan)
    table = pq.read_table(out / "plan" / gen["file"])  # an entry edited in the output's copy
    pq.write_table(table.set_column(1, "size", pa.array([7, 7], pa.int64())), out / "plan" / gen["file"])
    with pytest.raises(ValueError, match="does not match plan.json"):
        load_plan(ds)


def test_s3_prefix_and_plan_on_s3(s3_endpoint: str, s3_bucket: str) -> None:
    storage = StorageConfig(endpoint_url=s3_endpoint)
    fs, _ = filesystem(f"s3://{s3_bucket}", storage)
    for key in ["raw/2/b.mp4", "raw/1/a.MKV", "raw/readme.md", "raw/1/c.mp4", "other/z.mp4"]:
        fs.pipe(f"{s3_bucket}/{key}", key.encode())
    plan = make_plan(InputConfig(uri=f"s3://{s3_bucket}/raw/"), PlanConfig(2), storage)
    assert [e.uri for e in plan.entries] == [f"s3://{s3_bucket}/raw/{k}" for k in ("1/a.MKV", "1/c.mp4", "2/b.mp4")]
    assert all(e.version.startswith("etag:") and '"' not in e.version for e in plan.entries)
    assert [e.size for e in plan.entries] == [len("raw/1/a.MKV"), len("raw/1/c.mp4"), len("raw/2/b.mp4")]
    ds = DatasetDir(f"s3://{s3_bucket}/out", storage)
    save_plan(ds, plan)
    text = fs.cat(f"{s3_bucket}/out/plan.json").decode()
    assert "testing" not in text  # the secret key set by the fixture never reaches the plan
    assert load_plan(ds) == plan and load_plan(ds).entries == plan.entries
    # an s3a:// spelling without the trailing slash lists the same corpus
    again = make_plan(InputConfig(uri=f"s3a://{s3_bucket}/raw"), PlanConfig(2), storage)
    assert again.fingerprint == plan.fingerprint


def _write_list(path: Path, fmt: str, uris: list[str]) -> None:
    if fmt == "txt":
        path.write_text("# corpus\n" + "\n".join(uris) + "\n\n")
    elif fmt == "csv":
        path.write_text("id,uri\n" + "".join(f"{i},{u}\n" for i, u in enumerate(uris)))
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps({"uri": u, "n": i}) + "\n" for i, u in enumerate(uris)))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"uri": uris}), path)


@pytest.mark.parametrize("fmt", ["txt", "csv", "jsonl", "parquet"])
def test_list_files(video_dir: Path, tmp_path: Path, fmt: str) -> None:
    _touch(video_dir, ["b.mp4", "a.mp4", "c.bin"])
    uris = [str(video_dir / "b.mp4"), f"file://{video_dir}/a.mp4", str(video_dir / "c.bin"), str(video_dir / "b.mp4"),
            str(video_dir / "missing.mp4")]
    lst = tmp_path / f"list.{fmt}"
    _write_list(lst, fmt, uris)
    entries = list_inputs(InputConfig(uri=str(lst)))
    assert [Path(e.uri).name for e in entries] == ["a.mp4", "b.mp4", "c.bin", "missing.mp4"]  # no ext filter on lists
    missing = entries[-1]
    assert (missing.size, missing.version) == (-1, "missing")
    assert entries[0] == list_inputs(InputConfig(uri=str(video_dir), extensions=(".mp4",)))[0]


def test_list_file_on_s3_and_errors(s3_endpoint: str, s3_bucket: str, tmp_path: Path) -> None:
    storage = StorageConfig(endpoint_url=s3_endpoint)
    fs, _ = filesystem(f"s3://{s3_bucket}", storage)
    fs.pipe(f"{s3_bucket}/v/one.mp4", b"1")
    fs.pipe(f"{s3_bucket}/v/two.mp4", b"22")
    fs.pipe(f"{s3_bucket}/lists/l.jsonl", b'{"path": "s3://%s/v/two.mp4"}\n{"path": "s3://%s/v/one.mp4"}\n' % (
        s3_bucket.encode(), s3_bucket.encode()))
    entries = list_inputs(InputConfig(uri=f"s3://{s3_bucket}/lists/l.jsonl", uri_column="path"), storage)
    assert [(Path(e.uri).name, e.size) for e in entries] == [("one.mp4", 1), ("two.mp4", 2)]
    with pytest.raises(ValueError, match=r"line 1 has no key 'uri'"):
        list_inputs(InputConfig(uri=f"s3://{s3_bucket}/lists/l.jsonl"), storage)
    bad = tmp_path / "l.csv"
    bad.write_text("path\nx.mp4\n")
    with pytest.raises(ValueError, match=r"no column 'uri'.*\['path'\]"):
        list_inputs(InputConfig(uri=str(bad)))


def test_s3_listing_fans_out_and_finds_what_a_flat_listing_finds(s3_endpoint: str, s3_bucket: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Delimiter listings split the prefix, flat listings run per sub-prefix: the same objects as
    one s3fs.find, also with objects at every level and a fan-out cut short."""
    import pipeline.io.inputs as inputs

    storage = StorageConfig(endpoint_url=s3_endpoint)
    fs, _ = filesystem(f"s3://{s3_bucket}", storage)
    keys = ["c/top.mp4", "c/notes.md"] + [f"c/{a}/{b}/v{i}.mp4" for a in "xyz" for b in "pq" for i in range(3)]
    keys += ["c/x/mid.mp4", "c/y/p/deep/er/v.mp4"]
    for k in keys:
        fs.pipe(f"{s3_bucket}/{k}", k.encode())
    flat = sorted(f"s3://{p}" for p in fs.find(f"{s3_bucket}/c") if p.endswith(".mp4"))
    calls: list[tuple[str, str]] = []
    real = inputs._s3_pages

    def counted(fs_: object, path: str, delimiter: str) -> object:
        calls.append((path, delimiter))
        return real(fs_, path, delimiter)

    monkeypatch.setattr(inputs, "_s3_pages", counted)
    monkeypatch.setattr(inputs, "_PAGE_KEYS", 2)  # many pages per listing: continuation tokens are followed
    monkeypatch.setattr(inputs, "_PAGE_QUEUE", 1)  # listing threads wait for the consumer
    for levels, want in ((3, 16), (1, 2), (2, 4)):
        monkeypatch.setattr(inputs, "_FANOUT_LEVELS", levels)
        monkeypatch.setattr(inputs, "LIST_THREADS", want)
        calls.clear()
        got = [e.uri for e in list_inputs(InputConfig(uri=f"s3://{s3_bucket}/c"), storage)]
        assert got == flat, (levels, want)
        assert len(calls) > 2, "listed in one flat call"
        if levels == 1:  # one delimiter listing of the root, then its sub-prefixes flat
            assert sorted(calls) == [(f"{s3_bucket}/c", "/")] + [(f"{s3_bucket}/c/{d}", "") for d in "xyz"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_list_file_with_size_and_etag_needs_no_head(tmp_path: Path, fmt: str) -> None:
    """Rows with size and etag are taken as listed: these files do not exist, and are not looked up."""
    names = [str(tmp_path / f"gone{i}.mp4") for i in range(3)]
    rows = [{"uri": u, "size": 100 + i, "etag": f'"e{i}"'} for i, u in enumerate(names)]
    rows.append({"uri": str(tmp_path / "plain.mp4"), "size": None, "etag": None})  # no metadata: stat'ed
    lst = tmp_path / f"list.{fmt}"
    if fmt == "csv":
        lst.write_text("uri,size,etag\n" + "".join(f"{r['uri']},{r['size'] or ''},{r['etag'] or ''}\n" for r in rows))
    elif fmt == "jsonl":
        lst.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({k: [r[k] for r in rows] for k in ("uri", "size", "etag")}), lst)
    entries = list_inputs(InputConfig(uri=str(lst)))
    assert [(Path(e.uri).name, e.size, e.version) for e in entries] == [
        ("gone0.mp4", 100, "etag:e0"), ("gone1.mp4", 101, "etag:e1"), ("gone2.mp4", 102, "etag:e2"),
        ("plain.mp4", -1, "missing")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"uri": names[0], "size": "big", "etag": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl line 1: size must be an integer, got 'big'"):
        list_inputs(InputConfig(uri=str(bad)))


def test_empty_and_missing_prefix(video_dir: Path) -> None:
    (video_dir / "doc.txt").write_text("not a video")
    with pytest.raises(ValueError, match=f"no videos found at {video_dir}"):
        list_inputs(InputConfig(uri=str(video_dir)))
    with pytest.raises(FileNotFoundError, match="nope"):
        list_inputs(InputConfig(uri=str(video_dir / "nope")))


def test_credentials_and_config_validation() -> None:
    with pytest.raises(ValueError, match="credentials") as err:
        InputConfig(uri="https://alice:hunter2@host/v.mp4")
    assert "hunter2" not in str(err.value)
    with pytest.raises(ValueError, match="signed query") as err:
        normalize_uri("https://host/v.mp4?X-Amz-Signature=abc123")
    assert "abc123" not in str(err.value)
    with pytest.raises(ValueError, match="extension"):
        InputConfig.from_dict({"uri": "/x", "extension": [".mp4"]})
    with pytest.raises(ValueError, match="kind"):
        InputConfig(uri="/x", kind="folder")
    with pytest.raises(ValueError, match="videos_per_shard must be an integer >= 1, got 0"):
        PlanConfig(0)
    with pytest.raises(ValueError, match="unknown PlanConfig keys"):
        PlanConfig.from_dict({"shard_size": 3})
    assert InputConfig.from_dict(InputConfig(uri="/x", extensions=("MP4",)).to_dict()).extensions == (".mp4",)
    assert InputConfig(uri="s3://b/list.CSV").resolved_kind == "list"


def make_plan_of_one() -> Plan:
    e = ManifestEntry(uri="/a.mp4", size=1, version="v", video_id=video_id_of("/a.mp4"))
    return plan_from_entries([e], InputConfig(uri="/"), PlanConfig())


def test_normalize_and_part_names() -> None:
    assert normalize_uri("s3a://b/x//y.mp4") == "s3://b/x//y.mp4"  # S3 keys are opaque
    assert normalize_uri("file:///tmp/a/../b.mp4") == "/tmp/b.mp4"
    assert video_id_of(normalize_uri("s3a://b/x.mp4")) == video_id_of("s3://b/x.mp4")
    # one naming rule for every file of a shard, however many shards the plan has
    assert part_stem(7) == "part-000007" and part_stem(5) == "part-000005"
    assert part_stem(1_234_567) == "part-1234567"
    for shard in (0, 5, 999_999, 1_000_000, 12_345_678):
        assert shard_of(token_part_path("s3://b/ds", shard)) == shard == shard_of(commit_path("/ds", shard))
    with pytest.raises(ValueError, match="shard id must be an int >= 0"):
        part_stem(-1)
    with pytest.raises(ValueError, match=r"\[0, 1\), got 3"):
        make_plan_of_one().shard(3)
    e = ManifestEntry(uri="/a.mp4", size=1, version="v", video_id=video_id_of("/a.mp4"))
    assert plan_from_entries([e, e], InputConfig(uri="/"), PlanConfig()).entries == (e,)
    twin = ManifestEntry(uri="/b.mp4", size=1, version="v", video_id=e.video_id)
    with pytest.raises(ValueError, match=f"video_id collision {e.video_id}: /a.mp4 and /b.mp4"):
        plan_from_entries([twin, e], InputConfig(uri="/"), PlanConfig())


def test_parallel_listing_hands_on_a_failure_and_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    """A listing thread that fails makes the consumer raise (no hang); the other threads stop."""
    import threading
    import time

    import pipeline.io.inputs as inputs

    served: list[str] = []

    def pages(fs: object, path: str, delimiter: str):  # noqa: ANN202 - a generator of fake pages
        if path == "b/bad":
            raise PermissionError("AccessDenied listing b/bad")
        for i in range(1000):
            served.append(path)
            yield [{"name": f"{path}/{i}.mp4", "size": 1, "type": "file"}], []

    monkeypatch.setattr(inputs, "_s3_pages", pages)
    monkeypatch.setattr(inputs, "_PAGE_QUEUE", 2)
    before = threading.active_count()
    with pytest.raises(PermissionError, match="AccessDenied listing b/bad"):
        for _ in inputs._parallel_pages(object(), ["b/ok1", "b/bad", "b/ok2"], ""):
            time.sleep(0.001)
    assert len(served) < 3000  # the healthy listings were not run to their end
    assert threading.active_count() <= before


def test_growth_names_new_videos_and_finds_byte_identical_copies(video_dir: Path, tmp_path: Path, caplog) -> None:
    import logging
    import shutil

    from pipeline.job.job import JobConfig
    from pipeline.job.prepare import _apply_growth
    from pipeline.plan.copies import find_copies

    _touch(video_dir, ["a.mp4", "b.mp4", "c.mp4"])  # sizes 1, 2, 3
    src, cfg = InputConfig(uri=str(video_dir)), PlanConfig(videos_per_shard=2)
    old = make_plan(src, cfg)
    shutil.copy(video_dir / "b.mp4", video_dir / "z-copy-of-b.mp4")  # same bytes, new name
    (video_dir / "y-new.mp4").write_bytes(b"y" * 3)  # the size of c.mp4, other bytes
    plan, growth, _ = old.grow(make_plan(src, cfg))
    new_shards = plan.generation_shards()[-1]
    assert growth.added == 2 and list(new_shards) == [2]
    assert find_copies(plan, new_shards) == [(str(video_dir / "z-copy-of-b.mp4"), str(video_dir / "b.mp4"))]

    out = tmp_path / "out"
    out.mkdir()
    job = JobConfig(input=str(video_dir), output=str(out))
    with caplog.at_level(logging.WARNING, logger="pipeline.job.prepare"):
        _apply_growth(DatasetDir(str(out)), job, plan, growth, set())
    text = caplog.text
    assert f"2 new videos in shards 2..2: {video_dir / 'y-new.mp4'}, {video_dir / 'z-copy-of-b.mp4'}" in text
    assert "1 of the new videos are byte-identical copies" in text and f"= {video_dir / 'b.mp4'}" in text
