"""Beta tuning of a router whose budgets come from curves, on its per-corpus fit
(`tokenizer.tuning.fit_tune`): rate, BPP16 and PSNR targets met on the fit's sample exactly as the
router budgets it, out-of-reach targets named, and a fit without measured curves refused a PSNR."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tokenizer.adaptive.curve_fit import CorpusFit, CurvePredictor
from tokenizer.adaptive.router import budget_tokens
from tokenizer.adaptive.routers.gain2_curves import GAIN2_PROBE_RATES, curve_psnr, curve_rate
from tokenizer.tuning.budget import TargetOutOfReach, TuningTarget
from tokenizer.tuning.fit_tune import FitBudget, tune_on_fit

RATES = GAIN2_PROBE_RATES + (1.0,)
POSITIONS, PIXELS, CODEBOOK = 5 * 4 * 4, 17 * 32 * 32, 64000


def _curves(n: int = 24, seed: int = 0) -> torch.Tensor:
    """Concave curves of many slopes: 30 dB at r = 1, falling faster for busier clips."""
    g = torch.Generator().manual_seed(seed)
    slope = 0.3 + 4.0 * torch.rand(n, generator=g, dtype=torch.float64)
    bend = 0.5 * torch.rand(n, generator=g, dtype=torch.float64)
    x = torch.log(torch.tensor(RATES, dtype=torch.float64))
    return 30.0 + slope[:, None] * x - bend[:, None] * x**2


def _gain2_fit(curves: torch.Tensor) -> CorpusFit:
    return CorpusFit(router="gain2", rates=RATES, curves=curves, clips=curves.shape[0])


def _groups(n: int) -> list[str]:
    return [f"v{i // 2}" for i in range(n)]  # two clips a video


def _router_rates(fit: CorpusFit, beta: float) -> np.ndarray:
    """What the router does on a sample clip: its rule with the fit's lam, then its token count."""
    rate = curve_rate(fit.calibration.curves, fit.rates, fit.lam(beta)).float()
    return budget_tokens(rate, POSITIONS).numpy() / POSITIONS


def test_a_rate_or_bpp16_budget_is_met_as_the_router_budgets():
    fit = _gain2_fit(_curves())
    r = tune_on_fit(fit, TuningTarget("rate", 0.3), POSITIONS, PIXELS, CODEBOOK, _groups(24))
    routed = _router_rates(fit, r.beta)
    assert r.rate == pytest.approx(float(routed.mean())) and r.rate <= 0.3
    assert r.rate > 0.27  # the largest beta within the budget, not any beta under it
    assert r.mean_info_source == "fit" and r.n_clips == 24 and r.rate_ci[0] <= r.rate <= r.rate_ci[1]
    assert r.psnr == pytest.approx(float(curve_psnr(fit.curves, RATES, torch.from_numpy(routed)).mean()))
    assert r.full_rate_psnr == pytest.approx(30.0) and r.reachable_rate[1] > 0.9

    bits = math.log2(CODEBOOK)
    b = tune_on_fit(fit, TuningTarget("bpp16", 0.4), POSITIONS, PIXELS, CODEBOOK, _groups(24))
    assert 0.35 < b.bpp16 <= 0.4 and b.bpp16 == pytest.approx(16 * b.rate * POSITIONS * bits / PIXELS)


def test_a_psnr_floor_is_the_smallest_beta_that_meets_it():
    fit = _gain2_fit(_curves())
    budget = FitBudget(fit, POSITIONS, PIXELS, CODEBOOK)
    target = 0.5 * (budget.psnr(0.1) + budget.psnr(0.6))
    r = tune_on_fit(fit, TuningTarget("psnr", target), POSITIONS, PIXELS, CODEBOOK, _groups(24))
    assert r.psnr >= target and budget.psnr(r.beta) == pytest.approx(r.psnr)
    assert budget.psnr(r.beta * 0.97) < target  # a clearly smaller beta misses it
    assert r.psnr_ci[0] <= r.psnr <= r.psnr_ci[1] and r.psnr_clips == 24
    assert [p.beta for p in r.curve] == sorted(p.beta for p in r.curve) and r.beta in [p.beta for p in r.curve]


def test_out_of_reach_targets_name_the_range():
    fit = _gain2_fit(_curves())
    with pytest.raises(TargetOutOfReach, match=r"target PSNR 31 dB is out of reach: .* to 30\.00 dB \(beta = 1\) "
                                                r"on the fit's 24 sample clips"):
        tune_on_fit(fit, TuningTarget("psnr", 31.0), POSITIONS, PIXELS, CODEBOOK, _groups(24))
    with pytest.raises(TargetOutOfReach, match=r"target rate 0.01 is out of reach"):
        tune_on_fit(fit, TuningTarget("rate", 0.01), POSITIONS, PIXELS, CODEBOOK, _groups(24))
    with pytest.raises(ValueError, match="got 3 group labels for a fit of 24 clips"):
        tune_on_fit(fit, TuningTarget("rate", 0.3), POSITIONS, PIXELS, CODEBOOK, ["a", "b", "c"])


def test_the_fitted_router_routes_by_its_predictions_and_reads_psnr_off_its_measured_curves():
    measured = _curves(seed=1)
    features = torch.randn(24, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    predictor = CurvePredictor.fit(features, measured)
    predicted = predictor.predict(features)  # relative to PSNR(1): no absolute level
    fit = CorpusFit(router="fitted", rates=RATES, curves=predicted, clips=24, predictor=predictor, measured=measured)
    again = CorpusFit.from_dict(fit.to_dict())  # the measured curves travel in job.json
    assert torch.allclose(again.psnr_curves, measured, atol=1e-6)
    r = tune_on_fit(again, TuningTarget("rate", 0.4), POSITIONS, PIXELS, CODEBOOK, _groups(24))
    routed = _router_rates(again, r.beta)  # rates from the predictions
    assert r.rate == pytest.approx(float(routed.mean()))
    assert r.psnr == pytest.approx(float(curve_psnr(measured, RATES, torch.from_numpy(routed)).mean()), abs=1e-5)
    older = CorpusFit(router="fitted", rates=RATES, curves=predicted, clips=24, predictor=predictor)
    assert older.psnr_curves is None  # a fit recorded before measured curves were kept
    with pytest.raises(ValueError, match="this fitted fit kept no measured curves: it cannot tune a PSNR target"):
        tune_on_fit(older, TuningTarget("psnr", 25.0), POSITIONS, PIXELS, CODEBOOK, _groups(24))
    assert tune_on_fit(older, TuningTarget("rate", 0.4), POSITIONS, PIXELS, CODEBOOK, _groups(24)).psnr is None
