"""Token schema, mask packing, manifest round trips; `make_clips` is shared by other tests."""

from __future__ import annotations

import numpy as np
import pytest

from schemas.errors import ErrorRow, errors_to_table
from schemas.manifest import DatasetManifest, ShardCommit
from schemas.mask import kept_positions, mask_nbytes, pack_mask, padding_is_clear, popcount, unpack_mask
from schemas.tokens import (
    BOS_ID,
    CODEBOOK_SIZE,
    EOS_ID,
    PAD_ID,
    PLAIN_COLUMNS,
    TOKEN_FIELDS,
    TOKEN_SCHEMA,
    ClipTokens,
    TokenFileMeta,
    clips_to_table,
    table_to_clips,
)

META = TokenFileMeta(tokenizer_id="test-tok", beta=1.0, expected_info=0.1)


def make_clip(rng: np.random.Generator, video: int, clip: int, grid: tuple[int, int, int] | None = None) -> ClipTokens:
    """A random but valid clip: odd grids (not multiples of 8 bits) included on purpose."""
    grid = grid or (int(rng.integers(1, 4)), int(rng.integers(1, 6)), int(rng.integers(1, 7)))
    n = grid[0] * grid[1] * grid[2]
    k = int(rng.integers(1, n + 1))
    keep = np.zeros(n, bool)
    keep[rng.choice(n, k, replace=False)] = True
    keep = keep.reshape(grid)
    frames = 1 + 4 * (grid[0] - 1)
    return ClipTokens(
        video_id=f"v{video:05d}", source_uri=f"s3://src/v{video:05d}.mp4", clip_index=clip,
        frame_start=clip * frames, frame_count=frames, fps=24.0, height=8 * grid[1], width=8 * grid[2],
        grid=grid, tokens=rng.integers(0, CODEBOOK_SIZE, k).astype(np.uint16), mask=pack_mask(keep),
        rate=k / n, info=float(rng.random()), beta=1.0, source_duration_s=12.5, source_fps=30.0,
        source_height=720, source_width=1280,
    )


def make_clips(n_videos: int, clips_per_video: int, seed: int = 0, first_video: int = 0) -> list[ClipTokens]:
    rng = np.random.default_rng(seed)
    return [make_clip(rng, v, c) for v in range(first_video, first_video + n_videos) for c in range(clips_per_video)]


def test_special_ids_outside_codebook() -> None:
    assert CODEBOOK_SIZE == 64000
    assert min(BOS_ID, EOS_ID, PAD_ID) >= CODEBOOK_SIZE and len({BOS_ID, EOS_ID, PAD_ID}) == 3


@pytest.mark.parametrize("grid", [(1, 1, 1), (1, 3, 5), (2, 4, 8), (5, 32, 32)])
def test_mask_round_trip_and_bit_order(grid: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(1)
    keep = rng.random(grid) < 0.4
    blob = pack_mask(keep)
    assert len(blob) == mask_nbytes(grid)
    assert np.array_equal(unpack_mask(blob, grid), keep)
    assert popcount(blob) == keep.sum()
    assert padding_is_clear(blob, grid)
    assert np.array_equal(kept_positions(blob, grid), np.argwhere(keep))


def test_mask_bit_order_is_little_raster() -> None:
    keep = np.zeros((1, 2, 5), bool)
    keep[0, 0, 1] = True  # flat index 1 -> bit 1 of byte 0
    keep[0, 1, 4] = True  # flat index 9 -> bit 1 of byte 1
    assert pack_mask(keep) == bytes([0b10, 0b10])


def test_unpack_rejects_wrong_length() -> None:
    with pytest.raises(ValueError, match=r"grid \(2, 2, 2\)"):
        unpack_mask(b"\x00\x00", (2, 2, 2))


def test_clip_rejects_inconsistent_rows() -> None:
    good = make_clips(1, 1)[0]
    with pytest.raises(ValueError, match="tokens but mask keeps"):
        ClipTokens(**{**good.__dict__, "tokens": good.tokens[:-1]})
    with pytest.raises(ValueError, match="uint16"):
        ClipTokens(**{**good.__dict__, "tokens": good.tokens.astype(np.int32)})
    with pytest.raises(ValueError, match="needs"):
        ClipTokens(**{**good.__dict__, "mask": good.mask + b"\x00"})


def test_table_has_exact_schema_and_round_trips() -> None:
    clips = make_clips(3, 2)
    table = clips_to_table(clips, META)
    assert table.schema.equals(TOKEN_SCHEMA)  # metadata aside
    assert table.schema.metadata[b"infotok.mask_bit_order"] == b"little"
    back = table_to_clips(table)
    for a, b in zip(clips, back):
        assert np.array_equal(a.tokens, b.tokens) and a.mask == b.mask and a.grid == b.grid
        assert (a.video_id, a.clip_index, a.source_duration_s) == (b.video_id, b.clip_index, b.source_duration_s)


def test_token_row_is_stated_once() -> None:
    import dataclasses

    # every plain column is a ClipTokens attribute; grid_t/h/w are its grid, n_tokens len(tokens)
    assert {f.name for f in dataclasses.fields(ClipTokens)} == {*PLAIN_COLUMNS, "tokens", "grid"}
    assert TOKEN_SCHEMA.names == [f.name for f in TOKEN_FIELDS]
    table = clips_to_table(make_clips(2, 2), META)
    back = table_to_clips(table)
    for a, b in zip(make_clips(2, 2), back):
        for name in PLAIN_COLUMNS:
            x, y = getattr(a, name), getattr(b, name)
            assert x == y or (isinstance(x, float) and np.float32(x) == np.float32(y)), name


def test_table_rejects_ids_outside_codebook() -> None:
    clips = make_clips(1, 2)
    bad = clips[1].tokens.copy()
    bad[0] = CODEBOOK_SIZE
    clips[1] = ClipTokens(**{**clips[1].__dict__, "tokens": bad})
    with pytest.raises(ValueError, match=r"v00000#1: token id 64000 >= codebook size 64000"):
        clips_to_table(clips, META)


def test_errors_schema_checks_kind_and_stage() -> None:
    row = ErrorRow.from_exception("s3://x/a.mp4", "decode", RuntimeError("bad stream"), transient=False)
    assert row.kind == "permanent" and row.error_type == "RuntimeError"
    assert errors_to_table([row]).num_rows == 1 and errors_to_table([]).num_rows == 0
    with pytest.raises(ValueError, match="'sometimes'"):
        ErrorRow("u", "decode", "sometimes", "E", "m")


def test_manifest_json_round_trip_and_unknown_keys() -> None:
    commit = ShardCommit(0, 3, 30, 1, 2, (3,), 100, 10, 1, META)
    assert ShardCommit.from_json(commit.to_json()) == commit
    m = DatasetManifest.build([commit], "2026-01-01T00:00:00+00:00", {"beta": 1.0})
    assert DatasetManifest.from_json(m.to_json()) == m
    d = m.to_dict()
    d["n_clipz"] = 1
    with pytest.raises(ValueError, match="n_clipz"):
        DatasetManifest.from_dict(d)
    with pytest.raises(ValueError, match="tokenizer_idd"):
        TokenFileMeta.from_dict({"tokenizer_idd": "x", "beta": 1.0, "expected_info": 0.1})


def test_manifest_refuses_mixed_tokenizers() -> None:
    a = ShardCommit(0, 1, 1, 0, 1, (1,), 1, 1, 1, META)
    b = ShardCommit(1, 1, 1, 0, 1, (1,), 1, 1, 1, TokenFileMeta("other", 1.0, 0.1))
    with pytest.raises(ValueError, match="shard 1"):
        DatasetManifest.build([a, b], "now", {})

