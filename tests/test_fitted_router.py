"""The per-corpus curve fit and the one-pass `fitted` router: the predictor recovers a known curve
family and falls back to the mean curve where descriptors say nothing, too small a sample is refused
or warned about, the fit round-trips through JSON, a fitted gain2 or fitted router gives its sample
a mean rate of beta, and `infotok eval` fits it on other videos of a held-out set."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from model_helpers import small_adaptive_model

from jobs.cli import main
from tokenizer.adaptive.curve_fit import MIN_FIT_CLIPS, CorpusFit, CurvePredictor, FitTooSmallError
from tokenizer.adaptive.fitting import fit_router
from tokenizer.adaptive.routers.registry import get_router
from tokenizer.checkpoint import load_tokenizer
from tokenizer.data.procedural import heldout_clips
from tokenizer.eval.heldout import fit_seed, heldout_set
from tokenizer.video import frames_to_tensor

RATES = (3 / 32, 3 / 16, 3 / 8, 1.0)


def _family(x: torch.Tensor, noise: float = 0.0, seed: int = 1) -> torch.Tensor:
    """Curves (N, 4) whose drops below PSNR(1) are linear in two of the descriptors x (N, 11), plus noise."""
    g = torch.Generator().manual_seed(seed)
    slope = 1.5 + 0.6 * x[:, 0] - 0.4 * x[:, 3]  # dB per unit of ln r, > 0 for |x| < ~1.2
    drops = slope[:, None] * torch.log(1 / torch.tensor(RATES[:-1], dtype=torch.float64))[None]
    drops = drops + noise * torch.randn(drops.shape, generator=g, dtype=torch.float64)
    full = 30.0 + 2.0 * x[:, 5]  # the level never matters to the rule
    return torch.cat([full[:, None] - drops, full[:, None]], 1)


def _descriptors(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 11, generator=g, dtype=torch.float64) - 0.5) * 1.6 + torch.arange(11) * 3.0


def test_the_predictor_recovers_a_known_curve_family():
    x = _descriptors(64)
    z = (x - torch.arange(11) * 3.0)  # the family reads the centred descriptors
    predictor = CurvePredictor.fit(x, _family(z, noise=0.01))
    x_new = _descriptors(32, seed=5)
    want = _family(x_new - torch.arange(11) * 3.0)
    got = predictor.predict(x_new)
    assert got[:, -1].abs().max() == 0  # relative to PSNR(1)
    assert (got - (want - want[:, -1:])).abs().max() < 0.1  # dB, on clips it was not fitted on
    assert predictor.loo_rmse < 0.05 < predictor.loo_rmse_mean
    assert predictor.ridge <= 1.0


def test_descriptors_that_say_nothing_give_about_the_mean_curve():
    x = _descriptors(48)
    g = torch.Generator().manual_seed(3)
    curves = _family(torch.zeros(48, 11), noise=0.0)
    curves[:, :-1] -= torch.rand(48, 1, generator=g, dtype=torch.float64) * 4  # unrelated to x
    predictor = CurvePredictor.fit(x, curves)
    assert predictor.ridge >= 100  # leave-one-out chose to shrink to the mean
    assert predictor.loo_rmse == pytest.approx(predictor.loo_rmse_mean, rel=0.1)
    spread = predictor.predict(_descriptors(16, seed=9))[:, 0]
    measured = curves[:, 0] - curves[:, -1]
    assert float(spread.max() - spread.min()) < 0.3 * float(measured.max() - measured.min())


def test_too_small_a_sample_is_refused_and_a_small_one_warned_about(caplog):
    x = _descriptors(MIN_FIT_CLIPS - 1)
    with pytest.raises(FitTooSmallError, match="at least 4 clips, got 3"):
        CurvePredictor.fit(x, _family(x))
    m = small_adaptive_model()
    m.latent_head_steps.fill_(1)
    clips = [c for _, c in heldout_clips(6, 5, 16, 16)]
    with pytest.raises(FitTooSmallError, match="has 3 clips"):
        fit_router(m, "fitted", clips[:3])
    with caplog.at_level(logging.WARNING):
        fit_router(m, "fitted", clips)
    assert "only 6 clips" in caplog.text
    with pytest.raises(ValueError, match="the gain router takes no per-corpus fit"):
        fit_router(m, "gain", clips)


@pytest.mark.parametrize("router", ["fitted", "gain2"])
def test_a_fit_gives_its_sample_a_mean_rate_of_beta_and_round_trips(router):
    m = load_tokenizer(None).adaptive  # the shipped checkpoint: curves that rise (a random model's are flat)
    clips = [c for _, c in heldout_clips(12, 5, 32, 32)]
    fit = fit_router(m, router, clips, batch_size=4)
    assert fit.router == router and fit.clips == 12 and fit.rates == RATES
    assert (fit.predictor is not None) == (router == "fitted")
    again = CorpusFit.from_dict(json.loads(json.dumps(fit.to_dict())))
    assert torch.allclose(again.curves, fit.curves, atol=1e-5) and again.detail_weight == fit.detail_weight
    get_router(router).use_fit(m, again)
    video = frames_to_tensor(np.stack(clips))
    rates = m.route(video, 0.5, router=router).rate
    assert float(rates.mean()) == pytest.approx(0.5, abs=0.08)  # beta is the sample's mean rate
    assert float(rates.max() - rates.min()) > 0  # and clips differ
    tokens = m.tokenize(video[:2], 0.5, router=router)
    assert m.detokenize(tokens).shape == video[:2].shape


def test_the_fitted_router_refuses_to_route_without_a_fit():
    m = small_adaptive_model()
    video = frames_to_tensor(np.stack([c for _, c in heldout_clips(2, 5, 16, 16)]))
    with pytest.raises(ValueError, match="no trained latent router head"):
        m.route(video, 0.5, router="fitted")
    m.latent_head_steps.fill_(1)
    with pytest.raises(ValueError, match="no per-corpus fit; give the job --fit-router N"):
        m.route(video, 0.5, router="fitted")
    with pytest.raises(ValueError, match="a fit of the gain2 router cannot run the fitted router"):
        get_router("fitted").use_fit(m, fit_router(m, "gain2", [c for _, c in heldout_clips(4, 5, 16, 16)]))


def test_the_unseen_set_and_a_fit_sample_of_other_videos():
    clips = heldout_set("unseen", 16, 5, 32, 32)
    assert len({c.kind for c in clips}) == 8 and all(c.frames.shape == (5, 32, 32, 3) for c in clips)
    other = heldout_set("unseen", 16, 5, 32, 32, seed=fit_seed("unseen"))
    assert not any(np.array_equal(a.frames, b.frames) for a, b in zip(clips, other))


def test_eval_fits_the_fitted_router_on_other_videos_and_reports_it():
    result = CliRunner().invoke(main, ["eval", "unseen", "--resolution", "32", "--clip-frames", "5",
                                       "--num-procedural", "8", "--methods", "fitted,gain2,fixed", "--betas", "1,0.5",
                                       "--fit-clips", "8", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output[result.output.index("{"):])
    assert out["fit"]["clips"] == 8 and "other unseen videos" in out["fit"]["sample"]
    assert {g["method"] for g in out["gaps"]} >= {"fitted", "gain2"}
    fitted = [r for r in out["rows"] if r["method"] == "fitted"]
    assert [r["passes_per_clip"] for r in fitted] == [2.0, 2.0]  # no decoder pass
