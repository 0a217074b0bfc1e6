"""The LM probe (`infotok lm-probe`): mask code lengths, the split by video, that the probe learns,
the bits-per-pixel identity, and the command's output and exit statuses, on small synthetic
datasets written with the project's writer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from jobs.cli import main
from pipeline.io.dataset import DatasetDir
from pipeline.io.writer import write_manifest, write_shard
from pipeline.lm.read import read_corpus
from schemas.mask import kept_positions, pack_mask
from schemas.tokens import ClipTokens, TokenFileMeta
from tokenizer.lm.corpus import heldout_rows, split_by_video
from tokenizer.lm.mask_bits import mask_bits, mask_bits_array
from tokenizer.lm.model import ProbeModelConfig
from tokenizer.lm.probe import ProbeConfig, run_probe

META = TokenFileMeta(tokenizer_id="test-tok", beta=0.5, expected_info=1.0, router="gain")
GRID = (2, 4, 4)  # 5 frames of 32x32 pixels
SMALL = ProbeModelConfig(d_model=64, n_layers=2, n_heads=4)


def structured_clips(n_videos: int, clips_per_video: int = 2, seed: int = 0) -> list[ClipTokens]:
    """Clips whose ids are strongly predictable: one code per clip, its least significant digit
    replaced by the cell's w; a random keep mask of 8..32 cells."""
    rng = np.random.default_rng(seed)
    cells = math.prod(GRID)
    out = []
    for v in range(n_videos):
        for c in range(clips_per_video):
            keep = np.zeros(cells, dtype=bool)
            keep[rng.choice(cells, int(rng.integers(8, cells + 1)), replace=False)] = True
            keep = keep.reshape(GRID)
            base = int(rng.integers(0, 64000)) // 8 * 8
            ids = (base + kept_positions(pack_mask(keep), GRID)[:, 2]).astype(np.uint16)
            out.append(ClipTokens(video_id=f"video-{v:03d}", source_uri=f"mem://video-{v:03d}.mp4", clip_index=c,
                                  frame_start=5 * c, frame_count=5, fps=10.0, height=32, width=32, grid=GRID,
                                  tokens=ids, mask=pack_mask(keep), rate=float(keep.mean()), info=1.0, beta=0.5))
    return out


def write_dataset(root: Path, clips: list[ClipTokens]) -> str:
    ds = DatasetDir(str(root))
    half = len(clips) // 2
    write_shard(ds, 0, clips[:half], [], META)
    write_shard(ds, 1, clips[half:], [], META)
    write_manifest(ds, {})
    return str(root)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_dataset(tmp_path_factory.mktemp("lm") / "ds", structured_clips(40))


def test_mask_bits_are_the_combinatorial_bound() -> None:
    assert mask_bits(10, 3) == pytest.approx(math.log2(11) + math.log2(120))
    assert mask_bits(1280, 1280) == pytest.approx(math.log2(1281))  # every cell kept: only the count
    assert mask_bits(1280, 640) == pytest.approx(math.log2(1281) + math.log2(math.comb(1280, 640)))
    n, k = np.array([32, 32, 1280, 7]), np.array([0, 17, 300, 7])
    assert mask_bits_array(n, k) == pytest.approx([mask_bits(a, b) for a, b in zip(n.tolist(), k.tolist())])
    with pytest.raises(ValueError, match="k=5"):
        mask_bits(4, 5)


def test_read_corpus_positions_and_sample(dataset: str) -> None:
    read = read_corpus(DatasetDir(dataset))
    c = read.corpus
    assert (read.dataset_clips, read.sampled, c.n_clips) == (80, False, 80)
    rows = pq.read_table(Path(dataset) / "tokens" / "part-000000.parquet").to_pylist()
    for r, row in enumerate(rows[:5]):
        a, b = c.offsets[r], c.offsets[r + 1]
        assert c.tokens[a:b].tolist() == list(row["tokens"])
        assert np.array_equal(c.positions[a:b], kept_positions(row["mask"], GRID))
    assert c.pixels.tolist() == [5 * 32 * 32] * 80
    sample = read_corpus(DatasetDir(dataset), max_clips=30)
    again = read_corpus(DatasetDir(dataset), max_clips=30)
    assert sample.sampled and sample.corpus.n_clips == 30
    assert np.array_equal(sample.corpus.tokens, again.corpus.tokens)


def test_split_holds_whole_videos_out_deterministically(dataset: str) -> None:
    corpus = read_corpus(DatasetDir(dataset)).corpus
    train, held = split_by_video(corpus, 0.25)
    assert not set(train.video_ids.tolist()) & set(held.video_ids.tolist())
    assert train.n_clips + held.n_clips == corpus.n_clips and train.n_tokens + held.n_tokens == corpus.n_tokens
    assert 0 < held.n_videos < corpus.n_videos
    # a function of video_id alone: reversed rows, the same held-out videos
    flags = heldout_rows(corpus.video_ids, 0.25)
    assert np.array_equal(heldout_rows(corpus.video_ids[::-1], 0.25), flags[::-1])
    with pytest.raises(ValueError, match="holds none of them out"):
        split_by_video(corpus.subset(np.array([0, 1])), 1e-9)


def test_probe_learns_and_bits_add_up(dataset: str) -> None:
    corpus = read_corpus(DatasetDir(dataset)).corpus
    train, held = split_by_video(corpus, 0.25)
    res = run_probe(train, held, ProbeConfig(steps=120, batch_size=16, lr=3e-3, eval_every=60, seed=0, device="cpu",
                                             model=SMALL))
    assert res.bits_per_token_init > 15.0  # untrained: about uniform
    # a clip is one code plus its cells' w: after the first token, nearly free
    assert res.bits_per_token < 0.6 * res.uniform_bits and res.bits_per_token < res.bits_per_token_init - 5
    assert [p.step for p in res.curve] == [0, 60, 120]
    expected_mask = mask_bits_array(held.cells, held.kept)
    assert res.mask_bits_per_clip == pytest.approx(float(expected_mask.mean()))
    pixels = held.n_clips * 5 * 32 * 32
    assert res.heldout_pixels == pixels
    total = res.bits_per_token * held.n_tokens + expected_mask.sum()
    assert res.bits_per_pixel == pytest.approx(total / pixels)
    assert res.bits_per_pixel == pytest.approx(res.bpp_tokens + res.bpp_mask)


def test_cli_json_plot_and_exit_statuses(dataset: str, tmp_path: Path) -> None:
    png = tmp_path / "curve.png"
    args = ["lm-probe", dataset, "--steps", "4", "--d-model", "32", "--heldout-fraction", "0.25", "--device", "cpu"]
    res = CliRunner().invoke(main, args + ["--json", "--plot", str(png)])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    for key in ("bits_per_token", "mask_bits_per_clip", "bits_per_pixel", "heldout_videos", "train_videos",
                "uniform_bits", "curve", "mask_coding"):
        assert key in out
    assert out["dataset_clips"] == 80 and not out["sampled"] and png.stat().st_size > 0
    human = CliRunner().invoke(main, args + ["--max-clips", "40"])
    assert human.exit_code == 0 and "per pixel" in human.output and "sample of 40 of 80" in human.output
    bad = CliRunner().invoke(main, ["lm-probe", dataset, "--steps", "0"])
    assert bad.exit_code == 2 and "--steps" in bad.output
    bad = CliRunner().invoke(main, ["lm-probe", dataset, "--device", "gpu"])
    assert bad.exit_code == 2 and "'gpu'" in bad.output
    missing = CliRunner().invoke(main, ["lm-probe", str(tmp_path / "nothing")])
    assert missing.exit_code == 1
    assert missing.output.startswith("Error:") and len(missing.output.strip().splitlines()) == 1
    assert "no manifest" in missing.output


def test_cli_refuses_a_dataset_too_small_to_split(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "one", structured_clips(1, clips_per_video=4))
    res = CliRunner().invoke(main, ["lm-probe", root, "--steps", "2", "--device", "cpu"])
    assert res.exit_code == 1 and res.output.startswith("Error:") and "1 video(s)" in res.output
    assert "heldout fraction 0.2" in res.output


def _corpus(id_ranges: list[tuple[int, int]], clips_per_video: int = 3, seed: int = 0) -> "ClipCorpus":
    """One video per id range, its clips full (2, 4, 4) grids of ids drawn from that range."""
    from tokenizer.lm.corpus import ClipCorpus

    rng = np.random.default_rng(seed)
    grid, cells = (2, 4, 4), 32
    pos = np.argwhere(np.ones(grid, dtype=bool)).astype(np.int16)
    n = len(id_ranges) * clips_per_video
    tokens = np.concatenate([rng.integers(lo, hi, cells) for lo, hi in id_ranges for _ in range(clips_per_video)])
    return ClipCorpus(tokens=tokens.astype(np.int64), positions=np.tile(pos, (n, 1)),
                      offsets=np.arange(n + 1, dtype=np.int64) * cells, grids=np.tile(np.array(grid), (n, 1)),
                      pixels=np.full(n, 5 * 32 * 32, dtype=np.int64),
                      video_ids=np.array([f"v{i}" for i in range(len(id_ranges)) for _ in range(clips_per_video)],
                                         dtype=object))


def test_probe_stops_when_validation_worsens_and_says_the_figure_is_not_the_datasets() -> None:
    # every video draws its ids from its own range: what the training videos teach only hurts on the others
    train = _corpus([(i * 500, i * 500 + 40) for i in range(6)])
    held = _corpus([(40000, 40040)])
    cfg = ProbeConfig(steps=400, batch_size=8, lr=3e-3, eval_every=20, patience=2, seed=0, device="cpu", model=SMALL)
    res = run_probe(train, held, cfg)
    assert res.validation_videos >= 1 and res.train_videos == 6
    assert res.steps_run < 400  # stopped early
    assert res.steps_run - res.best_step == 2 * 20  # after `patience` evaluations without a better validation figure
    best = next(p for p in res.curve if p.step == res.best_step)
    assert res.bits_per_token == best.heldout_bits  # the best validation step's model is the one reported
    vals = [p.val_bits for p in res.curve]
    assert best.val_bits == min(vals)
    assert res.beats_baselines == (res.bits_per_token < min(res.unigram_bits, res.uniform_bits))
    text = " ".join(res.warnings)
    assert "1 video(s) / 3 clip(s): too few" in text
    if res.best_step == 0:  # nothing learnt that carried to the validation videos: said plainly
        assert "never improved on its validation videos" in text
    if not res.beats_baselines:
        assert "does not beat the" in text


def test_probe_without_room_for_validation_trains_all_steps_and_says_so() -> None:
    train = _corpus([(0, 40), (500, 540)])
    held = _corpus([(0, 40), (500, 540), (1000, 1040)], seed=1)
    res = run_probe(train, held, ProbeConfig(steps=30, batch_size=8, eval_every=10, seed=0, device="cpu",
                                             model=SMALL))
    assert res.validation_videos == 0 and res.steps_run == 30 and res.best_step == 30
    assert any("no validation split" in w for w in res.warnings)
