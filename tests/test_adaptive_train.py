from __future__ import annotations

import json

import pytest
import torch

from tokenizer.adaptive.modules import ADAPTIVE_PRESETS
from tokenizer.adaptive.model import AdaptiveTokenizer
from tokenizer.checkpoint import CheckpointError, load_tokenizer, read_header, save_tokenizer
from tokenizer.config import PRESETS
from tokenizer.train.corpus import training_batch
from tokenizer.nn.model import VideoTokenizer
from tokenizer.train.trainer import AdaptiveStageConfig, TrainConfig, train
from tokenizer.train.adaptive_stage import sample_betas


@pytest.fixture()
def base_ckpt(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "base.safetensors"
    save_tokenizer(VideoTokenizer(PRESETS["tiny"]), path)
    return path


def _batches(step: int):
    return training_batch(5, step, 3, 5, 32, 32)


def _cfg(init, betas=(1.0, 0.75, 0.5, 0.25), **kw) -> TrainConfig:
    base = dict(adaptive=AdaptiveStageConfig(betas=betas, info_ema=0.5), init=str(init), steps=4, batch_size=3,
                frames=5, crop=32, lr=2e-3, warmup_steps=1, checkpoint_every=2, log_every=1, seed=3, threads=1)
    base.update(kw)
    return TrainConfig(**base)


def test_adaptive_checkpoint_round_trip_and_compat(base_ckpt, tmp_path):
    fixed = load_tokenizer(base_ckpt)
    assert not fixed.is_adaptive and read_header(base_ckpt)["format_version"] == "1"
    model = AdaptiveTokenizer(fixed.model, ADAPTIVE_PRESETS["tiny"])
    with torch.no_grad():
        model.decompressor.net.out.weight.normal_(0, 0.01)
    model.set_mean_info(0.1234567890123, 42)
    path = tmp_path / "adaptive.safetensors"
    tid = save_tokenizer(model, path, info={"k": 1}, dtype=torch.float16)
    assert tid.startswith("tiny-adaptive-") and read_header(path)["format_version"] == "2"
    loaded = load_tokenizer(path, expect_preset="tiny")
    assert loaded.is_adaptive and loaded.tokenizer_id == tid and loaded.model is loaded.adaptive.base
    assert loaded.adaptive.config == ADAPTIVE_PRESETS["tiny"]
    assert float(loaded.adaptive.mean_info) == 0.1234567890123  # E[I] is never cast to half
    assert int(loaded.adaptive.info_count) == 42
    w = loaded.adaptive.decompressor.net.out.weight
    assert torch.equal(w, model.decompressor.net.out.weight.half().float())
    assert save_tokenizer(loaded.adaptive, tmp_path / "again.safetensors", info={"k": 1}, dtype=torch.float16) == tid


def test_stage2_trains_deterministically_and_resumes(base_ckpt, tmp_path):
    full = train(_cfg(base_ckpt), tmp_path / "full", _batches, progress=False)
    loaded = load_tokenizer(full.weights)
    assert loaded.is_adaptive and full.tokenizer_id.startswith("tiny-adaptive-")
    base = load_tokenizer(base_ckpt).model
    for k, v in base.state_dict().items():  # the base stays frozen
        assert torch.equal(v, loaded.model.state_dict()[k]), k
    assert not torch.equal(loaded.adaptive.decompressor.net.out.weight, torch.zeros_like(
        loaded.adaptive.decompressor.net.out.weight))
    hist = json.loads((tmp_path / "full" / "train_state.json").read_text())["history"]
    assert all(h["mean_info"] > 0 for h in hist)
    assert float(loaded.adaptive.mean_info) == pytest.approx(hist[-1]["mean_info"])

    def killed_at_3(step: int):
        if step == 3:
            raise KeyboardInterrupt
        return _batches(step)

    with pytest.raises(KeyboardInterrupt):
        train(_cfg(base_ckpt), tmp_path / "part", killed_at_3, progress=False)
    resumed = train(_cfg(base_ckpt), tmp_path / "part", _batches, progress=False)
    assert resumed.tokenizer_id == full.tokenizer_id
    with pytest.raises(ValueError, match="betas: \\[1.0, 0.75, 0.5, 0.25\\] -> \\[0.5\\]"):
        train(_cfg(base_ckpt, betas=(0.5,)), tmp_path / "part", _batches, progress=False)


def test_stage2_config_validation(base_ckpt):
    with pytest.raises(ValueError, match="set init"):
        TrainConfig(adaptive=AdaptiveStageConfig())
    with pytest.raises(ValueError, match="beta must be"):
        _cfg(base_ckpt, betas=(1.0, 0.0))
    with pytest.raises(ValueError, match="unknown TrainConfig keys: \\['stage'\\]"):
        TrainConfig.from_dict({"stage": "elastic"})
    cfg = TrainConfig.from_dict({"init": "x", "adaptive": {"betas": [1, 0.5]}})
    assert cfg.adaptive.betas == (1.0, 0.5) and cfg.stage == "adaptive" and TrainConfig().stage == "fixed"
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    b = sample_betas(0, 7, 64, (1.0, 0.25))
    assert torch.equal(b, sample_betas(0, 7, 64, (1.0, 0.25))) and set(b.tolist()) == {1.0, 0.25}


def test_old_run_without_stage_fields_still_resumes(tmp_path):
    # a run folder written before the adaptive fields existed must still resume
    out = tmp_path / "old"
    cfg = TrainConfig(steps=1, batch_size=2, frames=5, crop=32, warmup_steps=1, threads=1)
    train(cfg, out, lambda s: training_batch(0, s, 2, 5, 32, 32), progress=False)
    doc = json.loads((out / "train_state.json").read_text())
    doc["config"].pop("adaptive")
    (out / "train_state.json").write_text(json.dumps(doc))
    again = train(TrainConfig(steps=2, batch_size=2, frames=5, crop=32, warmup_steps=1, threads=1), out,
                  lambda s: training_batch(0, s, 2, 5, 32, 32), progress=False)
    assert again.steps_done == 2


def test_run_saved_with_flat_stage2_fields_resumes(base_ckpt, tmp_path):
    # runs saved before AdaptiveStageConfig kept stage 2's fields flat in TrainConfig
    out = tmp_path / "flat"
    def killed_at_3(step: int):
        if step == 3:
            raise RuntimeError("killed")
        return _batches(step)

    with pytest.raises(RuntimeError, match="killed"):
        train(_cfg(base_ckpt), out, killed_at_3, progress=False)
    doc = json.loads((out / "train_state.json").read_text())
    stage2 = doc["config"].pop("adaptive")
    doc["config"].update(stage="adaptive", adaptive_preset=stage2["preset"], betas=stage2["betas"],
                         info_ema=stage2["info_ema"], train_decoder=stage2["train_decoder"])
    (out / "train_state.json").write_text(json.dumps(doc))
    assert train(_cfg(base_ckpt), out, _batches, progress=False).steps_done == 4
    with pytest.raises(ValueError, match="adaptive.info_ema: 0.5 -> 0.9"):
        train(_cfg(base_ckpt, adaptive=AdaptiveStageConfig(info_ema=0.9), steps=5), out, _batches, progress=False)


def test_fixed_checkpoint_with_unknown_version_refused(base_ckpt, tmp_path):
    from safetensors.torch import load_file, save_file

    meta = dict(read_header(base_ckpt), format_version="9")
    bad = tmp_path / "v9.safetensors"
    save_file(load_file(str(base_ckpt)), str(bad), metadata=meta)
    with pytest.raises(CheckpointError, match="format_version '9'"):
        load_tokenizer(bad)
