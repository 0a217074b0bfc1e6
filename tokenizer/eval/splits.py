"""Splits of one total token count over clips, for comparisons at equal total tokens.

- `rescaled_counts`: a router's split, counts proportional to clip(c * signal, 1/16, 1) with c
  solved for the total (the router's E[signal] recalibrated on these clips);
- `lagrange_counts`: the gain2 router's split, each clip's rate the optimum of PSNR(r) - lam * r
  on its own probe curve, lam solved for the total (its calibration redone on these clips);
- `oracle_counts`: the best split for the summed PSNR given each clip's measured curve (PSNR at
  `ORACLE_RATES`), exact by dynamic programming: the upper bound for any per-clip budget rule.
Both round to whole tokens at the same total with `tokenizer.eval.baselines.apportion`.
"""

from __future__ import annotations

import numpy as np
import torch

from tokenizer.adaptive.router import MIN_RATE
from tokenizer.eval.baselines import apportion, equal_split

# the oracle's measured curve: PSNR at these rates (top r by the gain router's scores)
ORACLE_RATES: tuple[float, ...] = (1 / 16, 3 / 32, 1 / 8, 3 / 16, 1 / 4, 3 / 8, 1 / 2, 3 / 4, 1.0)


def oracle_counts(curves: np.ndarray, rates: tuple[float, ...], total: int, n_positions: int,
                  units: int = 128) -> list[int]:
    """Per-clip token counts summing to `total` that maximise the summed PSNR on the measured
    curves (clips x rates PSNRs, linear in ln r between rates): an exact split over rates in
    steps of 1/units (dynamic programming), then rounded to tokens at the same total."""
    n = curves.shape[0]
    ks = np.arange(max(1, units // 16), units + 1)
    log_rates = np.log(np.asarray(rates))
    vals = np.stack([np.interp(np.log(ks / units), log_rates, c) for c in curves])  # (n, K)
    budget = min(int(round(total / n_positions * units)), n * units)
    neg = -1e18
    best = np.full(budget + 1, neg)
    best[0] = 0.0
    choice = []
    for i in range(n):
        new, arg = np.full(budget + 1, neg), np.zeros(budget + 1, dtype=np.int64)
        for j, k in enumerate(ks):
            if k > budget:
                break
            cand = np.full(budget + 1, neg)
            cand[k:] = best[: budget + 1 - k] + vals[i, j]
            better = cand > new
            new[better], arg[better] = cand[better], k
        choice.append(arg)
        best = new
    t = budget if best[budget] > neg / 2 else int(np.argmax(best))
    if best[t] <= neg / 2:  # the total is below every clip's floor: spread it evenly
        return equal_split(total, n, n_positions)
    picked = []
    for i in reversed(range(n)):
        picked.append(int(choice[i][t]))
        t -= choice[i][t]
    return apportion(total, [float(k) for k in picked[::-1]], n_positions)


def rescaled_counts(signal: np.ndarray, total: int, n_positions: int) -> list[int]:
    """The router's split of `total`: counts proportional to clip(c * signal, 1/16, 1) * n with
    c solved so that they sum to the total (E[signal] recalibrated on these clips)."""
    w = np.maximum(np.asarray(signal, dtype=np.float64), 1e-12)
    target = total / n_positions
    lo, hi = 0.0, 1.0 / w.min()
    for _ in range(100):
        c = (lo + hi) / 2
        if np.clip(c * w, MIN_RATE, 1.0).sum() < target:
            lo = c
        else:
            hi = c
    return apportion(total, np.clip(hi * w, MIN_RATE, 1.0).tolist(), n_positions)


def lagrange_counts(curves: np.ndarray, rates: tuple[float, ...], total: int, n_positions: int) -> list[int]:
    """The gain2 router's split of `total`: clips x rates PSNRs (its probe curves) -> counts, each
    clip's rate `curve_rate` at one lam solved by bisection for the total, rounded to tokens."""
    from tokenizer.adaptive.routers.gain2_curves import curve_rate, solve_lam

    table = torch.as_tensor(np.asarray(curves, dtype=np.float64))
    target = min(1.0, max(MIN_RATE, total / (n_positions * table.shape[0])))
    rate = curve_rate(table, rates, solve_lam(table, rates, target)).numpy()
    return apportion(total, (rate * n_positions).tolist(), n_positions)
