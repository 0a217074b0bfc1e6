"""Beta tuning, model side: exact rate sweep, monotone search, reachable ranges, PSNR probe."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tokenizer.adaptive.modules import ADAPTIVE_PRESETS
from tokenizer.adaptive.model import AdaptiveTokenizer
from tokenizer.tuning.quality import QualityProbe, solve_psnr
from tokenizer.tuning.budget import (
    ScoreCache,
    TargetOutOfReach,
    TuneConfig,
    TuningTarget,
    beta_grid,
    budget_at,
    cluster_ci,
    collect_scores,
    floor_beta,
    n_keep_at,
    solve_budget,
)
from tokenizer.config import PRESETS
from tokenizer.data.procedural import make_clip
from tokenizer.nn.model import VideoTokenizer
from tokenizer.adaptive.router import MIN_RATE
from tokenizer.tuning.search import TuningResult, probe_indices, tune_beta
from tokenizer.tuning.plot import tuning_figure_png
from tokenizer.video import frames_to_tensor

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def model() -> AdaptiveTokenizer:
    torch.manual_seed(0)
    m = AdaptiveTokenizer(VideoTokenizer(PRESETS["tiny"]), ADAPTIVE_PRESETS["tiny"]).eval()
    with torch.no_grad():  # a non-identity adaptive layer, as after training
        for net in (m.compressor.net, m.decompressor.net):
            net.out.weight.normal_(0, 0.05)
    m.set_mean_info(0.3, 1)
    return m


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    kinds = ["flat", "noise", "texture", "shapes", "photo"]
    return [make_clip(rng, 5, 32, 32, kinds[i % len(kinds)]) for i in range(10)]


@pytest.fixture(scope="module")
def cache(model, clips) -> ScoreCache:
    return collect_scores(model, clips, batch_size=4, keep=range(0, 10, 2))


def test_rate_sweep_is_exactly_the_routers(model, clips, cache):
    x = frames_to_tensor(np.stack(clips))
    for beta in (0.02, 0.3, 0.77, 1.0):
        routing = model.route(x, beta, mean_info=0.25)
        assert n_keep_at(cache, beta, 0.25).tolist() == routing.n_keep.tolist()
    assert torch.equal(cache.info, model.route(x, 1.0).info)
    assert sorted(cache.latents) == [0, 2, 4, 6, 8] and sorted(cache.frames) == [0, 2, 4, 6, 8]


def test_rate_and_bpp16_are_monotone_in_beta(cache):
    m = float(cache.info.double().mean())
    betas = np.geomspace(1e-4, 1.0, 200)
    points = [budget_at(cache, float(b), m)[0] for b in betas]
    rates, bpps = [p.rate for p in points], [p.bpp16 for p in points]
    assert all(a <= b for a, b in zip(rates, rates[1:]))
    assert all(a <= b for a, b in zip(bpps, bpps[1:]))
    assert rates[0] == pytest.approx(2 / 32)  # every clip at the floor: round(32 / 16) of 32 positions
    assert budget_at(cache, floor_beta(cache, m), m)[0].rate == rates[0]
    # with E[I] the sample mean, beta = 1 keeps everything only for clips at or above the mean
    assert rates[-1] < 1.0
    grid = beta_grid(cache, m, 10)
    assert len(grid) == 10 and grid[-1] == 1.0 and grid == sorted(grid)


def test_rate_target_is_met_from_below_and_tightly(cache):
    m = float(cache.info.double().mean())
    metric = lambda b: budget_at(cache, b, m)[0].rate  # noqa: E731
    for target in (0.1, 0.3, 0.5):
        beta = solve_budget(metric, target, "rate")
        assert 0 < beta <= 1
        assert metric(beta) <= target
        assert metric(min(1.0, beta + 2e-6)) > target - 1 / 32  # the next step is at most one token per clip away


@pytest.mark.parametrize("target", [0.01, MIN_RATE / 2, 0.999, 1.0])
def test_rate_target_out_of_reach_states_the_range(cache, target):
    m = float(cache.info.double().mean())
    hi = budget_at(cache, 1.0, m)[0].rate
    with pytest.raises(TargetOutOfReach, match=r"target rate .* is out of reach: beta in \(0, 1\] gives a mean rate "
                                               r"from 0\.0625 .* to ") as info:
        solve_budget(lambda b: budget_at(cache, b, m)[0].rate, target, "rate")
    assert info.value.reachable == (pytest.approx(0.0625), pytest.approx(hi))
    assert f"{hi:.4f}" in str(info.value)


def test_rate_target_with_checkpoint_mean_info(model, clips):
    # E[I] far above the sample's: even beta = 1 keeps little, so 0.5 is out of reach ...
    model.set_mean_info(100.0, 1)
    try:
        with pytest.raises(TargetOutOfReach, match="out of reach"):
            tune_beta(model, clips, [str(i) for i in range(10)], TuningTarget("rate", 0.5),
                      TuneConfig(mean_info="checkpoint", psnr_clips=0))
    finally:
        model.set_mean_info(0.3, 1)
    # ... while the dataset's E[I] reaches it
    r = tune_beta(model, clips, [str(i) for i in range(10)], TuningTarget("rate", 0.5), TuneConfig(psnr_clips=0))
    assert r.rate <= 0.5 and r.rate > 0.45 and r.psnr is None


def test_bpp16_target(model, clips):
    r = tune_beta(model, clips, [str(i // 2) for i in range(10)], TuningTarget("bpp16", 0.5), TuneConfig(psnr_clips=2))
    assert r.bpp16 <= 0.5 and r.reachable_bpp16[0] <= 0.5 <= r.reachable_bpp16[1]
    assert r.bpp16_mask > r.bpp16
    # BPP16 = 16 * rate * log2(64000) * t*h*w / (T*H*W) for one clip shape (the paper's 1/(4*8*8) for long clips)
    assert r.bpp16 == pytest.approx(16 * r.rate * np.log2(64000) * (2 * 4 * 4) / (5 * 32 * 32), rel=1e-9)


def test_psnr_probe_decodes_each_token_count_once(model, cache):
    m = float(cache.info.double().mean())
    probe = QualityProbe(model, cache, m, batch_size=3)
    a = probe.at(0.5)
    decodes = probe.decodes
    assert decodes == len(probe) == 5
    assert probe.at(0.5) == a and probe.decodes == decodes
    low = floor_beta(cache, m)
    probe.at(low)
    after = probe.decodes
    probe.at(low / 10)  # the same 1/16 floor for every clip: nothing to decode
    assert probe.decodes == after


def test_psnr_probe_matches_a_direct_reconstruction(model, clips, cache):
    m = float(cache.info.double().mean())
    probe = QualityProbe(model, cache, m)
    point = probe.at(0.4)
    x = frames_to_tensor(np.stack([clips[i] for i in probe.clips]))
    routing = model.route(x, 0.4, m)
    from tokenizer.eval.metrics import psnr

    with torch.no_grad():
        y = model(x, routing.keep, encoding=routing.encoding).reconstruction.clamp(-1, 1)
    assert point.per_clip_psnr == pytest.approx(psnr(y, x).tolist(), abs=1e-4)


def test_psnr_target_met_and_out_of_reach(model, cache):
    m = float(cache.info.double().mean())
    probe = QualityProbe(model, cache, m)
    grid = beta_grid(cache, m, 6)
    top = probe.at(1.0).psnr
    chosen = solve_psnr(probe, top - 0.01, grid, steps=4)
    assert chosen.psnr >= top - 0.01 and 0 < chosen.beta <= 1
    with pytest.raises(TargetOutOfReach, match=r"target PSNR .* dB is out of reach: beta in \(0, 1\] gives a mean PSNR "
                                               r"from .* dB .* to .* dB \(beta = 1\) .* keeping every token gives"):
        solve_psnr(probe, probe.full_rate().psnr + 1.0, grid, steps=4)


def test_tune_psnr_target_end_to_end(model, clips):
    base = tune_beta(model, clips, [str(i) for i in range(10)], TuningTarget("rate", 0.4), TuneConfig(psnr_clips=None))
    target = base.psnr - 0.05
    r = tune_beta(model, clips, [str(i) for i in range(10)], TuningTarget("psnr", target), TuneConfig(psnr_clips=None))
    assert r.psnr >= target and r.psnr_clips == 10
    assert r.psnr_ci[0] <= r.psnr <= r.psnr_ci[1]
    assert any(p.beta == r.beta and p.psnr == r.psnr for p in r.curve)


def test_result_round_trips_through_json_and_plots(model, clips):
    r = tune_beta(model, clips, [str(i // 2) for i in range(10)], TuningTarget("rate", 0.3), TuneConfig(psnr_clips=3))
    assert TuningResult.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    assert r.rate_ci[0] <= r.rate <= r.rate_ci[1] and len(r.clip_rates) == 10
    assert r.psnr_clips == 3 and len(r.curve) >= 10
    assert tuning_figure_png(r)[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="unknown TuneConfig keys"):
        TuneConfig.from_dict({"grid": 3})
    with pytest.raises(ValueError, match="target kind must be one of"):
        TuningTarget("ssim", 0.9)
    with pytest.raises(ValueError, match="target rate must be a finite number > 0, got -0.1"):
        TuningTarget("rate", -0.1)


def test_cluster_ci_and_probe_indices():
    mean, lo, hi = cluster_ci([1.0, 2.0, 3.0, 4.0], ["a", "b", "c", "d"])
    se = np.std([1, 2, 3, 4], ddof=1) / 2
    assert mean == 2.5 and hi - mean == pytest.approx(1.96 * se)
    _, lo2, hi2 = cluster_ci([1.0, 1.0, 4.0, 4.0], ["a", "a", "b", "b"])  # two units, not four
    _, lo4, hi4 = cluster_ci([1.0, 1.0, 4.0, 4.0], ["a", "b", "c", "d"])
    assert hi2 - lo2 > hi4 - lo4
    assert probe_indices(10, 3) == [0, 4, 9] and probe_indices(4, None) == [0, 1, 2, 3] and probe_indices(5, 0) == []


def test_rate_between_beta_one_and_full_explains_the_recalibrated_mean(model, clips):
    groups = [str(i) for i in range(10)]
    top = tune_beta(model, clips, groups, TuningTarget("rate", 0.2), TuneConfig(psnr_clips=0)).reachable_rate[1]
    assert top < 1.0
    with pytest.raises(TargetOutOfReach, match=r"beta = 1 keeps every token only for clips with I\(x\) >= E\[I\] "
                                               r"\(\d+% of the sample\)"):
        tune_beta(model, clips, groups, TuningTarget("rate", (top + 1) / 2), TuneConfig(psnr_clips=0))


def test_ssim_depthwise_blur_equals_the_plain_convolution():
    import torch.nn.functional as F

    from tokenizer.eval.metrics import _blur, _gaussian_kernel, ssim

    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 20, 24, generator=g)
    k = _gaussian_kernel(11)[None, None]
    assert torch.allclose(_blur(x, k), F.conv2d(x, k), atol=1e-6)
    a = torch.rand(2, 3, 5, 16, 16, generator=g) * 2 - 1
    assert torch.allclose(ssim(a, a), torch.ones(2)) and (ssim(a, (a + 0.3).clamp(-1, 1)) < 1).all()
