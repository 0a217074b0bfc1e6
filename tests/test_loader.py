"""TokenDataset / TokenDataLoader: work split, exact resume, shuffling, packing invariants."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from test_schemas import META, make_clips

from pipeline.io.dataset import DatasetDir, DatasetNotReadyError
from pipeline.loader.dataset import LoaderConfig, TokenDataset
from pipeline.loader.dataloader import TokenDataLoader
from pipeline.io.storage import StorageConfig
from pipeline.io.writer import WriterConfig, write_manifest, write_shard
from schemas.mask import kept_positions
from schemas.tokens import BOS_ID, EOS_ID, PAD_ID


def _build(root: str, storage: StorageConfig = StorageConfig(), shards: int = 4) -> dict[tuple[str, int], tuple]:
    """Small dataset: shards of 3-5 videos x 3 clips, several row groups per part."""
    truth = {}
    first = 0
    for s in range(shards):
        n_videos = 3 + s % 3
        clips = make_clips(n_videos, 3, seed=s, first_video=first)
        first += n_videos
        write_shard(DatasetDir(root, storage), s, clips, [], META, WriterConfig(row_group_tokens=150))
        for c in clips:
            truth[(c.video_id, c.clip_index)] = (c.tokens, kept_positions(c.mask, c.grid))
    write_manifest(DatasetDir(root, storage), {})
    return truth


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    root = str(tmp_path_factory.mktemp("ds"))
    return root, _build(root)


def _keys(batches: list[dict]) -> list[tuple[str, int]]:
    return [(v, int(c)) for b in batches for v, c in zip(b["video_id"], b["clip_index"])]


def _run(root: str, cfg: LoaderConfig, batch: int, workers: int = 0, rank: int = 0, world: int = 1,
         state: dict | None = None, limit: int | None = None) -> tuple[list[dict], dict]:
    ds = TokenDataset(root, cfg, rank=rank, world_size=world, num_workers=workers)
    dl = TokenDataLoader(ds, batch_size=batch)
    if state is not None:
        dl.load_state_dict(json.loads(json.dumps(state)))
    out = []
    for b in dl:
        out.append(b)
        if limit is not None and len(out) == limit:
            break
    return out, dl.state_dict()


def test_clips_carry_tokens_and_their_positions(dataset: tuple[str, dict]) -> None:
    root, truth = dataset
    ds = TokenDataset(root, LoaderConfig(mode="clips", shuffle=False))
    seen = 0
    for s in ds:
        toks, pos = truth[(s["video_id"], s["clip_index"])]
        assert torch.equal(s["tokens"], torch.from_numpy(toks.astype(np.int64)))
        assert torch.equal(s["positions"], torch.from_numpy(pos.astype(np.int16)))
        seen += 1
    assert seen == len(truth)


def _content(b: dict, i: int, mode: str) -> tuple:
    """One sample of a batch, by content (tokens or the whole sequence)."""
    key = "input_ids" if mode == "packed" else "tokens"
    return tuple(b[key][i].tolist())


def _real(batches: list[dict], mode: str) -> list[tuple[int, tuple]]:
    """(sample_index, content) of every sample that is not a padding repeat."""
    return [(int(b["sample_index"][i]), _content(b, i, mode)) for b in batches
            for i in range(len(b["sample_index"])) if not bool(b["padding"][i])]


@pytest.mark.parametrize("mode", ["clips", "packed"])
@pytest.mark.parametrize("world,workers,remainder", [(2, 2, "pad"), (3, 0, "pad"), (3, 2, "drop")])
def test_ranks_yield_equal_batches_and_cover_every_sample_once(dataset: tuple[str, dict], mode: str, world: int,
                                                               workers: int, remainder: str) -> None:
    root, truth = dataset
    cfg = LoaderConfig(mode=mode, seq_len=64, seed=3, remainder=remainder)
    whole = _real(_run(root, cfg, batch=4)[0], mode)
    assert sorted(i for i, _ in whole) == list(range(len(whole)))
    if mode == "clips":
        assert len(whole) == len(truth)
    else:
        ids = torch.tensor([t for _, seq in whole for t in seq])
        assert Counter(ids[ids < BOS_ID].tolist()) == Counter(int(x) for t, _ in truth.values() for x in t)
    per_rank, seen = [], []
    for rank in range(world):
        ds = TokenDataset(root, cfg, rank=rank, world_size=world, num_workers=workers)
        dl = TokenDataLoader(ds, batch_size=4)
        expected = len(dl)
        batches = list(dl)
        assert len(batches) == expected
        per_rank.append(len(batches))
        seen += _real(batches, mode)
        assert sum(len(b["sample_index"]) for b in batches) == (
            -(-len(whole) // world) if remainder == "pad" else len(whole) // world)
    assert len(set(per_rank)) == 1, f"batches per rank {per_rank}"
    # the same samples as one process reads, by number and by content, none twice
    assert len(seen) == len(set(i for i, _ in seen))
    if remainder == "pad":
        assert sorted(seen) == sorted(whole)
    else:
        assert set(seen) <= set(whole) and len(seen) == len(whole) // world * world


@pytest.mark.parametrize("mode", ["clips", "packed"])
@pytest.mark.parametrize("before,after", [((2, 2, 3), (1, 0, 3)), ((1, 0, 2), (2, 1, 5)), ((1, 2, 3), (1, 1, 3)),
                                          ((3, 0, 2), (2, 2, 2))])
def test_resume_at_another_world_size_workers_or_batch_size(dataset: tuple[str, dict], mode: str,
                                                            before: tuple[int, int, int],
                                                            after: tuple[int, int, int]) -> None:
    """(world_size, num_workers, batch_size) change between save and resume: nothing repeats, nothing is lost."""
    root, _ = dataset
    cfg = LoaderConfig(mode=mode, seq_len=48, seed=7, window_row_groups=2)
    whole = _real(_run(root, cfg, batch=4)[0], mode)
    world, workers, batch = before
    k = 2  # batches every rank consumed before the save (ranks step together under DDP)
    head, states = [], []
    for rank in range(world):
        out, state = _run(root, cfg, batch=batch, workers=workers, rank=rank, world=world, limit=k)
        head += _real(out, mode)
        states.append(json.dumps(state, sort_keys=True))
    assert len(set(states)) == 1, "every rank saves the same state"
    assert json.loads(states[0])["dataset"]["epoch"] == 0 and 0 < len(head) < len(whole)
    world, workers, batch = after
    tail, per_rank = [], []
    for rank in range(world):
        out, end = _run(root, cfg, batch=batch, workers=workers, rank=rank, world=world, state=json.loads(states[0]))
        tail += _real(out, mode)
        per_rank.append(len(out))
        assert end["dataset"]["epoch"] == 1 and end["dataset"]["consumed"] == []
    assert len(set(per_rank)) == 1
    got = head + tail
    assert len(got) == len(set(i for i, _ in got)), "a sample was repeated"
    assert sorted(got) == sorted(whole), "a sample was lost"


def test_sequence_counts_match_packing() -> None:
    """count_sequences predicts, from lengths only, how many sequences pack() makes."""
    from pipeline.loader.pack import WindowStream, count_sequences, pack

    rng = np.random.default_rng(0)
    for _ in range(300):
        elen = rng.integers(3, 40, size=int(rng.integers(1, 12)))
        seq_len = int(rng.integers(3, 30))
        starts = np.concatenate([[0], np.cumsum(elen)])
        n = int(starts[-1])
        clip = np.repeat(np.arange(len(elen), dtype=np.int32), elen)
        pid = (np.arange(n) - np.repeat(starts[:-1], elen)).astype(np.int32)
        s = WindowStream(np.zeros(n, np.int64), None, pid, clip, starts)
        for policy in ("concat", "whole"):
            made = sum(1 for _ in pack(iter([(0, s)]), (0, 0, 0), seq_len, policy, (1, 0, 0), positions=False))
            assert count_sequences(elen, seq_len, policy) == made, (elen.tolist(), seq_len, policy)


@pytest.mark.parametrize("mode,workers", [("clips", 0), ("clips", 2), ("packed", 2), ("packed", 0)])
def test_resume_after_k_batches_is_exact(dataset: tuple[str, dict], mode: str, workers: int) -> None:
    root, _ = dataset
    cfg = LoaderConfig(mode=mode, seq_len=48, seed=11, window_row_groups=2)

    def flat(bs: list[dict]) -> list:
        key = "input_ids" if mode == "packed" else "tokens"
        return [[t.tolist() for t in b[key]] for b in bs]

    full, _ = _run(root, cfg, batch=3, workers=workers)
    full2, _ = _run(root, cfg, batch=3, workers=workers, state=_run(root, cfg, 3, workers, limit=len(full))[1])
    assert len(full) >= 4
    for k in sorted({1, 2, len(full) // 2, len(full) - 1}):
        head, state = _run(root, cfg, batch=3, workers=workers, limit=k)
        tail, _ = _run(root, cfg, batch=3, workers=workers, state=state)
        assert flat(head + tail) == flat(full), f"resume after {k} batches"
    # A state taken after the last batch starts the next epoch, which is a different shuffle.
    assert flat(full2) != flat(full) and len(full2) == len(full)


def test_shuffle_differs_across_epochs_and_repeats_for_a_seed(dataset: tuple[str, dict]) -> None:
    root, _ = dataset

    def epochs(seed: int) -> list[list]:
        ds = TokenDataset(root, LoaderConfig(mode="clips", seed=seed))
        return [[(s["video_id"], s["clip_index"]) for s in ds] for _ in range(2)]

    a, b, c = epochs(1), epochs(1), epochs(2)
    assert a == b
    assert a[0] != a[1] and sorted(a[0]) == sorted(a[1])
    assert a[0] != c[0]


@pytest.mark.parametrize("policy", ["concat", "whole"])
def test_packing_keeps_positions_with_tokens(dataset: tuple[str, dict], policy: str) -> None:
    root, truth = dataset
    by_tokens = {tuple(t.tolist()): p for t, p in truth.values()}
    seq_len = 40  # shorter than some clips: those must be cut, with positions following
    ds = TokenDataset(root, LoaderConfig(mode="packed", seq_len=seq_len, pack_policy=policy, seed=5))
    seqs = list(ds)
    ids = torch.cat([s["input_ids"] for s in seqs])
    pos = torch.cat([s["grid_positions"] for s in seqs])
    pid = torch.cat([s["position_ids"] for s in seqs])
    keep = ids != PAD_ID
    ids, pos, pid = ids[keep], pos[keep], pid[keep]
    starts = torch.nonzero(ids == BOS_ID).flatten().tolist() + [len(ids)]
    assert len(starts) - 1 == len(truth)
    for a, b in zip(starts[:-1], starts[1:]):
        assert ids[b - 1] == EOS_ID and torch.equal(pid[a:b], torch.arange(b - a, dtype=torch.int32))
        toks = tuple(ids[a + 1 : b - 1].tolist())
        assert np.array_equal(pos[a + 1 : b - 1].numpy(), by_tokens[toks])
    for s in seqs:
        doc, p = s["document_ids"], s["position_ids"]
        real = doc >= 0
        assert torch.equal(real, s["input_ids"] != PAD_ID)
        # document ids count clip starts within the sequence
        assert torch.equal(doc[real], torch.cumsum((p[real] == 0).int(), 0) - int(p[0] == 0))
        if policy == "whole":  # only clips longer than a sequence are cut
            if p[0] != 0:
                assert doc.max() == 0 or int(p[real][doc[real] == 0][-1]) + 1 > 0
            n_docs = int(doc.max()) + 1
            for d in range(n_docs):
                sel = p[doc == d]
                clip_len = None
                if sel[0] == 0 and s["input_ids"][doc == d][-1] != EOS_ID:
                    clip_len = len(sel)
                    assert clip_len == seq_len, "a clip that fits was split"


def test_refuses_foreign_state(dataset: tuple[str, dict], tmp_path: Path) -> None:
    root, _ = dataset
    cfg = LoaderConfig(mode="clips", seed=1)
    _, state = _run(root, cfg, batch=2, limit=1)
    with pytest.raises(ValueError, match="'seed' is 1, this loader has 2"):
        TokenDataset(root, LoaderConfig(mode="clips", seed=2)).load_state_dict(state["dataset"])
    with pytest.raises(ValueError, match="'mode' is 'clips', this loader has 'packed'"):
        TokenDataset(root, LoaderConfig(mode="packed", seed=1)).load_state_dict(state["dataset"])
    with pytest.raises(ValueError, match="format is 'infotok.loader_state/1'"):
        TokenDataset(root, cfg).load_state_dict({**state["dataset"], "format": "infotok.loader_state/1"})
    TokenDataset(root, cfg, rank=1, world_size=2).load_state_dict(state["dataset"])  # another world size is fine
    other = str(tmp_path / "other")
    _build(other, shards=1)
    with pytest.raises(ValueError, match="'dataset'.*different dataset"):
        TokenDataset(other, cfg).load_state_dict(state["dataset"])


def test_refuses_dataset_without_manifest(tmp_path: Path) -> None:
    write_shard(DatasetDir(str(tmp_path)), 0, make_clips(1, 1), [], META)
    with pytest.raises(DatasetNotReadyError, match="no manifest"):
        TokenDataset(str(tmp_path))


def test_reads_from_s3(s3_endpoint: str, s3_bucket: str) -> None:
    storage = StorageConfig(endpoint_url=s3_endpoint)
    root = f"s3://{s3_bucket}/ds"
    truth = _build(root, storage, shards=2)
    got = {(s["video_id"], s["clip_index"]): s["tokens"] for s in TokenDataset(root, LoaderConfig(mode="clips"), storage)}
    assert set(got) == set(truth)
    for k, t in got.items():
        assert t.tolist() == truth[k][0].tolist()


@pytest.mark.parametrize("block", [1, 7, 1 << 18])
def test_positions_decoded_in_blocks_match_the_masks(dataset: tuple[str, dict], monkeypatch: pytest.MonkeyPatch,
                                                     block: int) -> None:
    """Positions are decoded in blocks of rows (loader_pack._DECODE_BLOCK): any block size gives the same."""
    root, truth = dataset
    monkeypatch.setattr("pipeline.loader.pack._DECODE_BLOCK", block)
    for s in TokenDataset(root, LoaderConfig(mode="clips", seed=2)):
        assert np.array_equal(s["positions"].numpy(), truth[(s["video_id"], s["clip_index"])][1])
    by_tokens = {tuple(t.tolist()): p for t, p in truth.values()}
    seqs = list(TokenDataset(root, LoaderConfig(mode="packed", seq_len=23, seed=2, window_row_groups=1)))
    ids = torch.cat([s["input_ids"] for s in seqs])
    pos = torch.cat([s["grid_positions"] for s in seqs])
    assert torch.equal(pos[ids >= BOS_ID], torch.full((int((ids >= BOS_ID).sum()), 3), -1, dtype=torch.int16))
    starts = torch.nonzero(ids == BOS_ID).flatten().tolist()
    ends = torch.nonzero(ids == EOS_ID).flatten().tolist()
    assert len(starts) == len(ends) == len(truth)
    for a, b in zip(starts, ends):
        assert np.array_equal(pos[a + 1 : b].numpy(), by_tokens[tuple(ids[a + 1 : b].tolist())])


@pytest.mark.parametrize("policy", ["concat", "whole"])
def test_without_grid_positions_the_rest_is_unchanged(dataset: tuple[str, dict], policy: str) -> None:
    root, _ = dataset
    cfg = LoaderConfig(mode="packed", seq_len=31, pack_policy=policy, seed=4, window_row_groups=2)
    full = list(TokenDataset(root, cfg))
    lean = list(TokenDataset(root, dataclasses.replace(cfg, grid_positions=False)))
    assert len(full) == len(lean)
    for f, s in zip(full, lean):
        assert set(f) - set(s) == {"grid_positions"}
        assert all(torch.equal(f[k], s[k]) if isinstance(s[k], torch.Tensor) else f[k] == s[k] for k in s)


def test_refuses_mask_bits_past_the_grid(tmp_path: Path) -> None:
    clip = make_clips(1, 1, seed=3)[0]
    clip = dataclasses.replace(clip, grid=(1, 1, 3), frame_count=1, height=8, width=24,
                               tokens=np.array([1, 2], np.uint16), mask=bytes([0b1001]), rate=2 / 3)  # bit 3 > 2
    write_shard(DatasetDir(str(tmp_path)), 0, [clip], [], META)
    write_manifest(DatasetDir(str(tmp_path)), {})
    with pytest.raises(ValueError, match=r"row 0: mask has set bits past its t\*h\*w grid \(1, 1, 3\)"):
        list(TokenDataset(str(tmp_path), LoaderConfig(mode="clips")))
