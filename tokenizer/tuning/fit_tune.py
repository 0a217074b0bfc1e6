"""Tuning beta for a router that fits per corpus (gain2, fitted) on its fit: no model pass.

With a per-corpus fit (`tokenizer.adaptive.curve_fit.CorpusFit`) a sample clip's rate at beta is
the curve rule's on its curve with the fit's lam(beta), and its token count the router's
`budget_tokens` of that rate, so the sample's budget at any beta follows from the fit alone,
computed as the router computes it. Its PSNR there is read off the clip's measured curve (straight
in ln r between the measured rates, as the rule reads it): an estimate between the probes, exact
at them. A rate or BPP16 budget is solved as `tokenizer.tuning.budget.solve_budget` solves it; a
PSNR floor by bisection in beta for the smallest beta whose estimated mean PSNR meets it. The fit
measured every sample clip's curve (its cost is the fit's), so tuning adds milliseconds to it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence

import numpy as np
import torch

from tokenizer.adaptive.curve_fit import CorpusFit
from tokenizer.adaptive.router import MIN_RATE, budget_tokens
from tokenizer.adaptive.routers.gain2_curves import curve_psnr, curve_rate, curve_slope
from tokenizer.tuning.budget import (
    BETA_DECIMALS,
    FIT_MEAN_INFO,
    TargetOutOfReach,
    TuningTarget,
    cluster_ci,
    solve_budget,
)
from tokenizer.tuning.search import CurvePoint, TuningResult

logger = logging.getLogger(__name__)

_BISECT_STEPS = 48
_LOWEST_BETA = 10.0 ** -BETA_DECIMALS


class FitBudget:
    """The fit's sample at any beta: per-clip kept fractions and estimated PSNR (cached per beta).

    positions: t*h*w of every sample clip (a fit's clips share one shape); pixels: T*H*W; codebook:
    the FSQ codebook size (for BPP16).
    """

    def __init__(self, fit: CorpusFit, positions: int, pixels: int, codebook: int) -> None:
        self.fit = fit
        self.positions = int(positions)
        self.pixels = int(pixels)
        self.bits = math.log2(codebook)
        self._rates: dict[float, np.ndarray] = {}

    def __len__(self) -> int:
        return int(self.fit.curves.shape[0])

    def clip_rates(self, beta: float) -> np.ndarray:
        """(N,) kept fraction N_x / (t*h*w) of each sample clip at beta, as the router budgets it."""
        b = float(beta)
        if b not in self._rates:
            curves = self.fit.calibration.curves  # what the router's lam and rule read (float32)
            rate = curve_rate(curves, self.fit.rates, self.fit.lam(max(MIN_RATE, b))).float()
            self._rates[b] = budget_tokens(rate, self.positions).numpy() / self.positions
        return self._rates[b]

    def rate(self, beta: float) -> float:
        return float(self.clip_rates(beta).mean())

    def bpp16(self, beta: float, mask: bool = False) -> float:
        kept = self.clip_rates(beta) * self.positions
        mask_bits = self.positions * len(self) if mask else 0
        return 16.0 * (float(kept.sum()) * self.bits + mask_bits) / float(self.pixels * len(self))

    def clip_psnr(self, beta: float) -> np.ndarray | None:
        """(N,) estimated PSNR of each clip at its rate (dB), None when the fit kept no measured curves."""
        measured = self.fit.psnr_curves
        if measured is None:
            return None
        return curve_psnr(measured, self.fit.rates, torch.from_numpy(self.clip_rates(beta))).numpy()

    def psnr(self, beta: float) -> float:
        values = self.clip_psnr(beta)
        if values is None:
            raise ValueError(f"this {self.fit.router} fit kept no measured curves: it cannot tune a PSNR target "
                             "(fit the router again)")
        return float(values.mean())

    def point(self, beta: float) -> CurvePoint:
        values = self.clip_psnr(beta)
        return CurvePoint(beta=float(beta), rate=self.rate(beta), bpp16=self.bpp16(beta),
                          bpp16_mask=self.bpp16(beta, mask=True),
                          psnr=None if values is None else float(values.mean()))


def solve_psnr_floor(budget: FitBudget, target: float) -> float:
    """The smallest beta (to 1e-6, rounded up) whose estimated mean PSNR is >= target; TargetOutOfReach,
    naming the reachable range, when beta = 1 stays below it."""
    lo_val, hi_val = budget.psnr(_LOWEST_BETA), budget.psnr(1.0)
    if target > hi_val:
        raise TargetOutOfReach(
            f"target PSNR {target:g} dB is out of reach: beta in (0, 1] gives a mean PSNR from {lo_val:.2f} dB "
            f"(every clip at the 1/16 floor) to {hi_val:.2f} dB (beta = 1) on the fit's {len(budget)} sample clips",
            (lo_val, hi_val))
    if lo_val >= target:
        return _LOWEST_BETA
    lo, hi = math.log(_LOWEST_BETA), 0.0  # psnr(e^lo) < target <= psnr(e^hi)
    for _ in range(_BISECT_STEPS):
        mid = (lo + hi) / 2
        if budget.psnr(math.exp(mid)) >= target:
            hi = mid
        else:
            lo = mid
    scale = 10**BETA_DECIMALS
    beta = min(1.0, math.ceil(math.exp(hi) * scale) / scale)
    return beta if budget.psnr(beta) >= target else math.exp(hi)


def tune_on_fit(fit: CorpusFit, target: TuningTarget, positions: int, pixels: int, codebook: int,
                groups: Sequence[str], grid_size: int = 10, fit_seconds: float = 0.0) -> TuningResult:
    """Choose beta on the fit's sample (clip i of video groups[i]; the groups set the CI)."""
    n = int(fit.curves.shape[0])
    if len(groups) != n:
        raise ValueError(f"got {len(groups)} group labels for a fit of {n} clips")
    t0 = time.perf_counter()
    budget = FitBudget(fit, positions, pixels, codebook)
    if target.kind == "rate":
        beta = solve_budget(budget.rate, target.value, "rate")
    elif target.kind == "bpp16":
        beta = solve_budget(budget.bpp16, target.value, "BPP16")
    else:
        beta = solve_psnr_floor(budget, target.value)
    grid = [float(b) for b in np.geomspace(MIN_RATE, 1.0, max(grid_size, 2))]
    curve = tuple(budget.point(b) for b in sorted(set(grid) | {beta}))
    chosen = budget.point(beta)
    clip_rates = budget.clip_rates(beta)
    _, r_lo, r_hi = cluster_ci(clip_rates.tolist(), list(groups))
    clip_psnr = budget.clip_psnr(beta)
    psnr_ci = None
    if clip_psnr is not None:
        _, p_lo, p_hi = cluster_ci(clip_psnr.tolist(), list(groups))
        psnr_ci = (p_lo, p_hi)
    measured = fit.psnr_curves
    low, high = budget.point(_LOWEST_BETA), budget.point(1.0)
    slopes = curve_slope(fit.curves, fit.rates).double()
    result = TuningResult(
        target=target, beta=float(beta), mean_info=float(slopes.mean()), mean_info_source=FIT_MEAN_INFO,
        checkpoint_mean_info=None, n_clips=n, rate=chosen.rate, rate_ci=(r_lo, r_hi), bpp16=chosen.bpp16,
        bpp16_mask=chosen.bpp16_mask, psnr=chosen.psnr, psnr_ci=psnr_ci, ssim=None,
        psnr_clips=0 if measured is None else n,
        full_rate_psnr=None if measured is None else float(measured[:, -1].double().mean()),
        reachable_rate=(low.rate, high.rate), reachable_bpp16=(low.bpp16, high.bpp16),
        reachable_psnr=None if low.psnr is None or high.psnr is None else (low.psnr, high.psnr),
        curve=curve, clip_rates=tuple(float(r) for r in clip_rates),
        clip_info=tuple(float(v) for v in slopes.tolist()),
        cost={"fit_s": float(fit_seconds), "sweep_s": time.perf_counter() - t0, "psnr_decodes": 0.0,
              "router_clips": float(n)},
    )
    logger.info("tuned beta %.6f for %s %g on the %s router's fit: rate %.4f (95%% CI %.4f..%.4f)", result.beta,
                target.kind, target.value, fit.router, result.rate, r_lo, r_hi)
    return result
