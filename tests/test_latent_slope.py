"""The latent router's slope: clip descriptors, the closed-form fit, its checkpoint round trip and
checkpoints from before it (whose head predicted the slope itself)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_helpers import small_adaptive_model
from safetensors.torch import save_file

from tokenizer.adaptive.clip_descriptors import DESCRIPTOR_NAMES, clip_descriptors
from tokenizer.adaptive.latent_router import SlopeRegressor
from tokenizer.checkpoint import ADAPTIVE_PREFIX, checkpoint_state, load_tokenizer, router_problem, save_tokenizer
from tokenizer.checkpoint import tokenizer_id_of


def _video(kind: str, frames: int = 9, size: int = 32) -> torch.Tensor:
    """(1, 3, T, H, W) in [-1, 1]: a still gradient, the same gradient moving, or still noise."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    if kind == "noise":
        frame = torch.rand(3, size, size, generator=g) * 2 - 1
        return frame[:, None].expand(3, frames, size, size)[None].clone()
    shift = [0.15 * i if kind == "moving" else 0.0 for i in range(frames)]
    v = torch.stack([torch.sin(3 * (xx + s)) * torch.cos(2 * yy) for s in shift])  # (T, H, W)
    return v[None, None].expand(1, 3, frames, size, size).clone() * 0.8


def test_descriptors_measure_detail_and_motion():
    names = {n: i for i, n in enumerate(DESCRIPTOR_NAMES)}
    lat = torch.zeros(1, 3, 4, 4, 6)
    still, moving, noise = (clip_descriptors(_video(k), lat)[0] for k in ("still", "moving", "noise"))
    assert still.shape == (len(DESCRIPTOR_NAMES),) and torch.isfinite(still).all()
    # a still clip loses nothing when its first frame is held; a moving one does
    assert still[names["hold_clip"]] > 60 > moving[names["hold_clip"]]
    assert still[names["hold_4"]] > moving[names["hold_4"]] > moving[names["hold_clip"]]
    # smooth content survives block averaging; noise does not; coarser blocks lose more
    assert still[names["spatial_2"]] > noise[names["spatial_2"]] + 10
    assert still[names["spatial_2"]] > still[names["spatial_4"]] > still[names["spatial_16"]]
    # a latent without variation gives the floor of its log statistics
    assert still[names["latent_dt"]] == pytest.approx(np.log(1e-4))


def test_descriptors_of_one_frame_clips_and_small_frames_are_finite():
    d = clip_descriptors(torch.rand(2, 3, 1, 8, 8) * 2 - 1, torch.rand(2, 1, 1, 1, 6))
    assert d.shape == (2, len(DESCRIPTOR_NAMES)) and torch.isfinite(d).all()


def test_the_slope_fit_recovers_a_linear_relation_and_ignores_constant_descriptors():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 4, generator=g)
    x[:, 3] = 7.0  # never varies in the fit
    y = 2.0 + 0.5 * x[:, 0] - 0.25 * x[:, 1]
    reg = SlopeRegressor(4)
    assert not reg.fitted
    reg.fit(x, y, ridge=1e-6)
    assert reg.fitted and int(reg.count) == 200
    probe = torch.tensor([[1.0, 2.0, 0.0, 7.0], [1.0, 2.0, 0.0, -100.0], [-10.0, 0.0, 0.0, 7.0]])
    pred = reg(probe)
    assert pred[0].item() == pytest.approx(2.0, abs=1e-3)  # 2 + 0.5 - 0.5
    assert pred[1].item() == pred[0].item()  # the constant descriptor carries no weight
    assert pred[2].item() == 0.0  # a negative prediction is clamped: the clip gets the floor
    with pytest.raises(ValueError, match="features must be"):
        reg.fit(x[:, :3], y)
    with pytest.raises(ValueError, match="finite"):
        reg.fit(x.masked_fill(x > 2, float("nan")), y)


def test_a_fitted_latent_router_round_trips_in_float16_and_routes(tmp_path):
    m = small_adaptive_model()
    x = torch.rand(3, 3, 5, 16, 16) * 2 - 1
    with pytest.raises(ValueError, match="untrained"):
        m.check_router_ready("latent")
    m.latent_head_steps.fill_(1)
    with pytest.raises(ValueError, match="no slope fit on clip descriptors"):
        m.check_router_ready("latent")
    with torch.no_grad():
        desc = clip_descriptors(x, m.bounded_latent(m.base.encode(x).latent))
    m.latent_slope.fit(desc, torch.tensor([1.0, 2.0, 3.0]))
    m.set_mean_info(2.0, 3, "latent")
    path = tmp_path / "t.safetensors"
    save_tokenizer(m, path, dtype=torch.float16)
    back = load_tokenizer(path).adaptive
    for name in ("shift", "scale", "weight", "bias"):  # kept exact in a half-precision file
        assert back.latent_slope.get_buffer(name).dtype == torch.float32
        assert torch.equal(back.latent_slope.get_buffer(name), m.latent_slope.get_buffer(name))
    assert router_problem(path, "latent") is None
    # the same slopes up to the half-precision weights' change of the latent
    assert torch.allclose(back.score(x, "latent").signal, m.latent_slope(desc), atol=0.01)
    routing = back.route(x, 0.5, router="latent")
    assert routing.n_keep[2] > routing.n_keep[0]  # a higher predicted slope buys more tokens


def test_a_checkpoint_from_before_the_slope_fit_loads_and_refuses_the_latent_router(tmp_path):
    m = small_adaptive_model()
    m.latent_head_steps.fill_(100)
    state = {k: v for k, v in checkpoint_state(m).items() if not k.startswith(ADAPTIVE_PREFIX + "latent_slope.")}
    # the head's old slope branch
    state[ADAPTIVE_PREFIX + "latent_head.clip.0.weight"] = torch.zeros(32, 66)
    state[ADAPTIVE_PREFIX + "latent_head.clip.0.bias"] = torch.zeros(32)
    path = tmp_path / "new.safetensors"
    save_tokenizer(m, path)
    with __import__("safetensors").safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    meta["tokenizer_id"] = tokenizer_id_of(m.base.config, state, m.config)
    old = tmp_path / "old.safetensors"
    save_file(state, str(old), metadata=meta)
    loaded = load_tokenizer(old)
    assert loaded.tokenizer_id == meta["tokenizer_id"]  # the id still covers every tensor of the file
    assert router_problem(old, "latent") is not None and "before its slope fit" in router_problem(old, "latent")
    with pytest.raises(ValueError, match="predates them"):
        loaded.adaptive.route(torch.rand(1, 3, 5, 16, 16) * 2 - 1, 0.5, router="latent")
    assert loaded.adaptive.route(torch.rand(1, 3, 5, 16, 16) * 2 - 1, 0.5, router="gain").n_keep.numel() == 1


def test_token_detail_follows_the_tokens_pixels_and_weighs_into_the_scores():
    from tokenizer.adaptive.clip_descriptors import describe_clip

    x = torch.zeros(1, 3, 9, 16, 24)
    x[:, :, 0, :8, :8] = torch.rand(3, 8, 8) * 2 - 1  # pixel frame 0, block (0, 0): latent frame 0 only
    x[:, :, 5:9, 8:, 16:] = torch.rand(3, 4, 8, 8) * 2 - 1  # pixel frames 5..8, block (1, 2): latent frame 2
    detail = describe_clip(x, torch.zeros(1, 3, 2, 3, 6)).detail
    assert detail.shape == (1, 3, 2, 3)
    floor = float(np.log(1e-4))
    busy = {(0, 0, 0), (2, 1, 2)}
    for pos in np.ndindex(3, 2, 3):
        assert (detail[0][pos] > floor + 3) == (pos in busy), pos
    m = small_adaptive_model()
    bounded = torch.rand(1, 3, 2, 3, 6)
    assert torch.equal(m.latent_head.scores(bounded, detail), m.latent_head(bounded))  # weight 0 until chosen
    m.latent_head.detail_weight.fill_(2.0)
    assert torch.allclose(m.latent_head.scores(bounded, detail), m.latent_head(bounded) + 2 * detail)
