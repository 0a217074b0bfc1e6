"""The shipped default checkpoint and the README's demo command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tokenizer.checkpoint import DEFAULT_CHECKPOINT, load_tokenizer
from tokenizer.train.corpus import heldout_clips
from tokenizer.eval.reconstruct import round_trip

# Measured on these held-out procedural clips (10 clips, 128x128, 17 frames, seed 1234) when the
# shipped checkpoint was made: 20.96 dB (README "Default checkpoint"). The floor leaves 1 dB.
PSNR_FLOOR_DB = 19.9
# The shipped InfoTok layer through tokenize -> detokenize at beta 0.5 on the same 10 clips:
# 18.78 dB at a mean kept rate of 0.47 when it was shipped (19.54 dB on all 20 clips, README).
# The floor leaves 1 dB.
ADAPTIVE_FLOOR_DB = 17.8


def test_shipped_checkpoint_loads_and_is_small():
    assert DEFAULT_CHECKPOINT.exists(), DEFAULT_CHECKPOINT
    assert DEFAULT_CHECKPOINT.stat().st_size < 10 * 2**20
    tok = load_tokenizer()
    assert tok.tokenizer_id.startswith("tiny-")
    assert tok.info.get("step", 0) > 0  # trained, not an initialisation


def test_shipped_checkpoint_reconstructs_heldout_clips_above_floor():
    tok = load_tokenizer()
    clips = [c for _, c in heldout_clips(10, 17, 128, 128)]
    results = round_trip(tok.model, clips)
    mean_psnr = float(np.mean([r.psnr for r in results]))
    assert mean_psnr >= PSNR_FLOOR_DB, mean_psnr


def test_shipped_infotok_layer_at_half_beta_above_floor():
    import torch

    from tokenizer.eval.metrics import psnr
    from tokenizer.video import frames_to_tensor

    model = load_tokenizer().adaptive
    assert model is not None, "the shipped checkpoint must carry the InfoTok layer"
    x = frames_to_tensor(np.stack([c for _, c in heldout_clips(10, 17, 128, 128)]))
    with torch.no_grad():
        tokens = model.eval().tokenize(x, 0.5)
        y = model.detokenize(tokens)
    rates = [t.rate for t in tokens]
    assert 0.3 < float(np.mean(rates)) < 0.6 and max(rates) - min(rates) > 0.3, rates  # budgets differ per clip
    assert float(psnr(y.clamp(-1, 1), x).mean()) >= ADAPTIVE_FLOOR_DB


@pytest.mark.timeout(600)
def test_demo_command_end_to_end(tmp_path):
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run([sys.executable, "-m", "jobs.cli", "demo", "--out", str(tmp_path / "demo"), "--json"],
                          env=env, capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert len(doc["videos"]) == 5 and doc["dataset_clips"] == 10
    for v in doc["videos"]:
        assert (tmp_path / "demo" / "compare" / f"{v['clip']}.png").exists()
        assert (tmp_path / "demo" / "reconstructions" / f"{v['clip']}.mp4").stat().st_size > 0
        assert v["psnr"] > 10
    # simple content reconstructs better than noise
    by = {v["clip"]: v for v in doc["videos"]}
    assert by["0_static_scene"]["psnr"] > by["4_evolving_noise"]["psnr"]
