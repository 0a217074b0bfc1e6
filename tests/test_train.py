from __future__ import annotations

import json

import pytest
import torch

from tokenizer.checkpoint import load_tokenizer
from tokenizer.data.procedural import KINDS, heldout_clips, make_clip
from tokenizer.train.corpus import training_batch
from tokenizer.train.trainer import TrainConfig, lr_at, train

import numpy as np


def _batches(step: int):
    return training_batch(7, step, 4, 5, 32, 32)


def _cfg(**kw) -> TrainConfig:
    base = dict(steps=6, batch_size=4, frames=5, crop=32, lr=2e-3, warmup_steps=1, checkpoint_every=3,
                log_every=1, seed=3, threads=1)
    base.update(kw)
    return TrainConfig(**base)


def test_corpus_deterministic_and_heldout_differs():
    a = training_batch(0, 5, 2, 5, 32, 32)
    b = training_batch(0, 5, 2, 5, 32, 32)
    c = training_batch(0, 6, 2, 5, 32, 32)
    assert a.dtype == np.uint8 and a.shape == (2, 5, 32, 32, 3)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    for kind in KINDS:
        clip = make_clip(np.random.default_rng(0), 5, 24, 40, kind)
        assert clip.shape == (5, 24, 40, 3)
    for seed in range(40):  # every photograph, also when it is smaller than the clip
        assert make_clip(np.random.default_rng(seed), 2, 320, 480, "photo").shape == (2, 320, 480, 3)
    kinds = [k for k, _ in heldout_clips(10, 5, 32, 32)]
    assert set(kinds) == set(KINDS)


def test_few_steps_reduce_loss(tmp_path):
    cfg = _cfg(steps=25, lr=3e-3, checkpoint_every=100)
    train(cfg, tmp_path / "run", lambda s: training_batch(1, 0, 4, 5, 32, 32), progress=False)
    hist = json.loads((tmp_path / "run" / "train_state.json").read_text())["history"]
    first, last = hist[0]["loss"], hist[-1]["loss"]
    assert last < 0.7 * first, (first, last)


def test_deterministic_and_resume_equals_uninterrupted(tmp_path):
    full = train(_cfg(), tmp_path / "full", _batches, progress=False)
    again = train(_cfg(), tmp_path / "again", _batches, progress=False)
    assert full.tokenizer_id == again.tokenizer_id  # same seed -> same weights
    part = train(_cfg(), tmp_path / "part", _batches, progress=False, time_limit_s=0.0)
    assert part.steps_done == 0

    def killed_at_4(step: int):
        if step == 4:
            raise KeyboardInterrupt  # the process dies after the step-3 checkpoint
        return _batches(step)

    with pytest.raises(KeyboardInterrupt):
        train(_cfg(), tmp_path / "part", killed_at_4, progress=False)
    assert json.loads((tmp_path / "part" / "train_state.json").read_text())["step"] == 3
    resumed = train(_cfg(), tmp_path / "part", _batches, progress=False)
    assert resumed.steps_done == 6
    assert resumed.tokenizer_id == full.tokenizer_id
    other = train(_cfg(seed=4), tmp_path / "other", _batches, progress=False)
    assert other.tokenizer_id != full.tokenizer_id
    loaded = load_tokenizer(tmp_path / "full" / "tokenizer.safetensors", expect_preset="tiny")
    assert loaded.info["step"] == 6


def test_resume_with_different_settings_refused(tmp_path):
    train(_cfg(steps=1), tmp_path / "run", _batches, progress=False)
    with pytest.raises(ValueError, match=r"lr: 0.002 -> 0.001.*seed: 3 -> 5"):
        train(_cfg(steps=2, lr=1e-3, seed=5), tmp_path / "run", _batches, progress=False)


def test_schedule_and_validation():
    cfg = _cfg(steps=100, warmup_steps=10, lr=1.0, min_lr_ratio=0.1)
    assert lr_at(cfg, 0) == pytest.approx(0.1)
    assert lr_at(cfg, 10) == pytest.approx(1.0)
    assert lr_at(cfg, 100) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="frames must be 1 \\+ 4k, got 8"):
        _cfg(frames=8)
    with pytest.raises(ValueError, match="unknown TrainConfig keys"):
        TrainConfig.from_dict({"stepz": 3})
    torch.set_num_threads(2)


def test_resume_on_another_device_and_from_a_run_without_device_fields(tmp_path):
    def killed_at_4(step: int):
        if step == 4:
            raise KeyboardInterrupt  # dies after the step-3 checkpoint
        return _batches(step)

    with pytest.raises(KeyboardInterrupt):
        train(_cfg(device="cpu"), tmp_path / "run", killed_at_4, progress=False)
    state = tmp_path / "run" / "train_state.json"
    doc = json.loads(state.read_text())
    assert doc["config"]["device"] == "cpu" and doc["config"]["autocast"] is True
    for key in ("device", "autocast"):  # a run saved before these fields existed
        del doc["config"][key]
    state.write_text(json.dumps(doc))
    resumed = train(_cfg(device="auto", autocast=False), tmp_path / "run", _batches, progress=False)
    assert resumed.steps_done == 6
    whole = train(_cfg(), tmp_path / "whole", _batches, progress=False)
    assert resumed.tokenizer_id == whole.tokenizer_id  # the same CPU either way: resume stays exact


def test_cli_train_and_eval_refuse_an_unusable_device(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from jobs.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    runner = CliRunner()
    res = runner.invoke(main, ["train", "--out", str(tmp_path / "run"), "--steps", "1", "--device", "cuda"])
    assert res.exit_code == 2 and "device 'cuda' asks for CUDA" in res.output
    assert not (tmp_path / "run").exists()
    res = runner.invoke(main, ["eval", "procedural", "--device", "npu", "--num-procedural", "1"])
    assert res.exit_code == 2 and "device must be auto, cpu, cuda or cuda:N, got 'npu'" in res.output


def test_prefetched_batches_train_the_same_model(tmp_path):
    from tokenizer.train.prefetch import BatchPrefetcher

    seen: list[int] = []

    def fn(step: int):
        seen.append(step)
        return _batches(step)

    with BatchPrefetcher(fn, workers=2, last=5, depth=3) as pf:
        for step in (2, 3, 4):  # a resumed run starts anywhere
            assert np.array_equal(pf.get(step), _batches(step))
    assert sorted(seen) == [2, 3, 4]  # read-ahead stops at `last`
    assert np.array_equal(BatchPrefetcher(_batches, workers=0, last=9).get(7), _batches(7))
    with pytest.raises(ValueError, match="workers must be >= 0, got -1"):
        BatchPrefetcher(_batches, workers=-1, last=9)
    inline = train(_cfg(), tmp_path / "inline", _batches, progress=False)
    ahead = train(_cfg(), tmp_path / "ahead", _batches, progress=False, data_workers=3)
    assert ahead.tokenizer_id == inline.tokenizer_id

    def broken(step: int):
        if step == 2:
            raise OSError("bucket went away")
        return _batches(step)

    with pytest.raises(OSError, match="bucket went away"):
        train(_cfg(), tmp_path / "broken", broken, progress=False, data_workers=2)
    assert not (tmp_path / "broken" / "train_state.json").exists()  # failed before its first checkpoint
