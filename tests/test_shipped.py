"""The shipped default checkpoint (the README's demo command: tests/test_readme.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tokenizer.checkpoint import DEFAULT_CHECKPOINT, load_tokenizer
from tokenizer.data.procedural import heldout_clips
from tokenizer.eval.reconstruct import round_trip

# Measured on these held-out procedural clips (10 clips, 128x128, 17 frames, seed 1234) when the
# shipped checkpoint was made: 20.96 dB (docs/checkpoint.md). The floor leaves 1 dB.
PSNR_FLOOR_DB = 19.9
# The shipped InfoTok layer through tokenize -> detokenize at beta 0.5 on the same 10 clips:
# 18.78 dB at a mean kept rate of 0.47 when it was shipped (19.54 dB on all 20 clips, docs/checkpoint.md).
# The floor leaves 1 dB.
ADAPTIVE_FLOOR_DB = 17.8


def test_shipped_checkpoint_loads_and_is_small():
    assert DEFAULT_CHECKPOINT.exists(), DEFAULT_CHECKPOINT
    assert DEFAULT_CHECKPOINT.stat().st_size < 10 * 2**20
    tok = load_tokenizer()
    assert tok.tokenizer_id.startswith("tiny-")
    assert tok.info.get("step", 0) > 0  # trained, not an initialisation
    # the `tiny` preset's window: attention within the 16x16-token frame it was trained on
    assert tok.adaptive is not None and tok.adaptive.config.attention_window == 16


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


def test_shipped_checkpoint_routes_with_every_router():
    import torch

    from tokenizer.adaptive.routers.registry import get_router, router_names
    from tokenizer.video import frames_to_tensor

    model = load_tokenizer().adaptive
    assert int(model.latent_head_steps) > 0  # the latent router's head is trained (docs/checkpoint.md recipe)
    x = frames_to_tensor(np.stack([c for _, c in heldout_clips(10, 17, 128, 128)]))
    for router in router_names():
        if get_router(router).needs_fit:  # routes only with a per-corpus fit (tests/test_fit_router.py)
            with pytest.raises(ValueError, match="has no per-corpus fit; give the job --fit-router N"):
                model.route(x[:1], 0.5, router=router)
            continue
        assert np.isfinite(model.mean_signal(router)) and model.mean_signal(router) > 0, router
        with torch.no_grad():
            routing = model.route(x, 0.5, router=router)
        rates = routing.rate.tolist()
        assert 0.2 < float(np.mean(rates)) < 0.8 and max(rates) - min(rates) > 0.2, (router, rates)
