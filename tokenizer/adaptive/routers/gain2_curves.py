"""The `gain2` router's budget rule: each clip's rate from its own measured rate-distortion curve
(the router itself: `tokenizer.adaptive.routers.gain2`).

A clip's curve is its PSNR at a few rates (the probes, through compressor and decoder, keeping
the top r of its tokens by score) and at r = 1, joined by straight segments in ln r; below the
lowest probe the first segment is extended (its slope at least 0) down to the floor 1/16.
Each clip alone takes the rate in [1/16, 1] that maximises PSNR(r) - lam * r on its curve: on a
segment of slope s (dB per unit of ln r) the optimum is r = s / lam clipped to the segment, so
the best is one of the segment ends or those interior points; ties go to the lower rate. One
lam for all clips equalises marginal gains (dB per token), the codec rule (rate control with one
Lagrange multiplier); with one probe and a line it is the `gain` router's r = beta * s / E[s].
Unlike an exact split it needs no other clip's curve, so a streaming job can run it: lam comes
from beta by bisection on the calibration clips' curves (stored in the checkpoint) so that their
mean rate is beta.

Layout: curves (B, K) float PSNR in dB at `rates` (K,), ascending, the last one 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from tokenizer.adaptive.router import MIN_RATE

# the probes, chosen by the sweep of benchmarks/bench_router.py (docs/routers.md); r = 1 is implied
GAIN2_PROBE_RATES: tuple[float, ...] = (3 / 32, 3 / 16, 3 / 8)
LAM_RANGE: tuple[float, float] = (1e-4, 1e4)
_BISECTIONS = 80


def check_curve_rates(rates: tuple[float, ...] | list[float]) -> tuple[float, ...]:
    """The knots of a curve: ascending rates in [1/16, 1], at least two, the last one 1."""
    rs = tuple(float(r) for r in rates)
    if len(rs) < 2 or rs[-1] != 1.0 or rs[0] < MIN_RATE or any(b <= a for a, b in zip(rs, rs[1:])):
        raise ValueError(f"curve rates must be ascending in [1/16, 1], at least two, ending at 1; got {rates!r}")
    return rs


def _segments(curves: torch.Tensor, rates: tuple[float, ...]) -> list[tuple[float, float, torch.Tensor, torch.Tensor]]:
    """(a, b, slope (B,), PSNR at a (B,)) for each segment of the curves, the floor extension first."""
    x = [math.log(r) for r in rates]
    c = curves.double()
    segs = []
    for j in range(len(rates) - 1):
        s = (c[:, j + 1] - c[:, j]) / (x[j + 1] - x[j])
        segs.append((rates[j], rates[j + 1], s, c[:, j]))
    if rates[0] > MIN_RATE:  # below the lowest probe: the first segment, never falling towards r = 1
        s0 = segs[0][2].clamp_min(0.0)
        segs.insert(0, (MIN_RATE, rates[0], s0, c[:, 0] - s0 * (x[0] - math.log(MIN_RATE))))
    return segs


def curve_psnr(curves: torch.Tensor, rates: tuple[float, ...], r: torch.Tensor) -> torch.Tensor:
    """The curves' PSNR at per-clip rates r (B,) in [1/16, 1] -> (B,) float64."""
    rates = check_curve_rates(rates)
    out = torch.empty(curves.shape[0], dtype=torch.float64)
    r = r.double()
    for a, b, s, ya in _segments(curves, rates):
        on = (r >= a) & (r <= b)
        out[on] = (ya + s * torch.log(r / a))[on]
    return out


def curve_rate(curves: torch.Tensor, rates: tuple[float, ...], lam: float | torch.Tensor) -> torch.Tensor:
    """argmax over r in [1/16, 1] of PSNR(r) - lam * r on each clip's curve: (B, K), lam > 0 scalar
    or (B,) -> (B,) float64 rates (ties: the lower rate)."""
    rates = check_curve_rates(rates)
    if curves.ndim != 2 or curves.shape[1] != len(rates):
        raise ValueError(f"curves must be (B, {len(rates)}) PSNRs at rates {rates}, got {tuple(curves.shape)}")
    lam_t = torch.as_tensor(lam, dtype=torch.float64).expand(curves.shape[0])
    if not bool(((lam_t > 0) & torch.isfinite(lam_t)).all()):
        raise ValueError(f"lam must be finite and > 0, got {lam!r}")
    cands, vals = [], []
    for a, b, s, ya in _segments(curves, rates):
        for r in (torch.full_like(s, a), (s / lam_t).clamp(a, b), torch.full_like(s, b)):
            cands.append(r)
            vals.append(ya + s * torch.log(r / a) - lam_t * r)
    cand, val = torch.stack(cands, 1), torch.stack(vals, 1)  # (B, C)
    # the best value; among (near-)ties the lowest rate
    best = val.max(1, keepdim=True).values
    tied = val >= best - 1e-9
    return torch.where(tied, cand, torch.full_like(cand, 2.0)).min(1).values


def solve_lam(curves: torch.Tensor, rates: tuple[float, ...], mean_rate: float) -> float:
    """lam whose `curve_rate` over these clips has mean `mean_rate` (bisection in ln lam; the mean
    falls as lam grows). A mean above what lam = LAM_RANGE[0] gives (clips whose PSNR cannot rise
    stay at the floor) gets that lam; one below the floor gets LAM_RANGE[1]."""
    if curves.shape[0] == 0:
        raise ValueError("cannot solve lam on zero calibration curves")
    if not (math.isfinite(mean_rate) and MIN_RATE <= mean_rate <= 1.0):
        raise ValueError(f"mean rate must be in [1/16, 1], got {mean_rate!r}")
    lo, hi = math.log(LAM_RANGE[0]), math.log(LAM_RANGE[1])

    def mean_at(log_lam: float) -> float:
        return float(curve_rate(curves, rates, math.exp(log_lam)).mean())

    if mean_at(lo) <= mean_rate:
        return math.exp(lo)
    if mean_at(hi) >= mean_rate:
        return math.exp(hi)
    for _ in range(_BISECTIONS):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mean_at(mid) > mean_rate else (lo, mid)
    # the rule's mean is a step function of lam where a curve bends: take the closer side
    return math.exp(lo if abs(mean_at(lo) - mean_rate) < abs(mean_at(hi) - mean_rate) else hi)


def curve_slope(curves: torch.Tensor, rates: tuple[float, ...]) -> torch.Tensor:
    """The record's scalar: (PSNR(1) - PSNR(r_0)) / ln(1/r_0), at least 0: (B, K) -> (B,) float32
    (the `gain` router's slope with the lowest probe)."""
    rates = check_curve_rates(rates)
    return ((curves[:, -1].double() - curves[:, 0].double()).clamp_min(0.0) / math.log(1.0 / rates[0])).float()


@dataclass(frozen=True, eq=False)
class Gain2Calibration:
    """The calibration clips' curves: rates (K,) ascending ending at 1 (the probes and the full
    rate), curves (N, K) float32 PSNR in dB. `lam(beta)` makes their mean rate beta (solved once
    per beta). Compared by identity (it holds a tensor)."""

    rates: tuple[float, ...]
    curves: torch.Tensor
    _lams: dict[float, float] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        check_curve_rates(self.rates)
        c = self.curves
        if c.ndim != 2 or c.shape[0] < 1 or c.shape[1] != len(self.rates) or not bool(torch.isfinite(c).all()):
            raise ValueError(f"gain2 calibration curves must be finite (N >= 1, {len(self.rates)}), "
                             f"got {tuple(c.shape)}")

    @property
    def count(self) -> int:
        return int(self.curves.shape[0])

    @property
    def mean_slope(self) -> float:
        """E[s] of the calibration clips (`curve_slope`): the router's recorded E[signal]."""
        return float(curve_slope(self.curves, self.rates).double().mean())

    def lam(self, beta: float) -> float:
        """lam whose rule gives the calibration clips a mean rate of beta (cached per beta)."""
        b = float(beta)
        if b not in self._lams:
            self._lams[b] = solve_lam(self.curves, self.rates, max(MIN_RATE, b))
        return self._lams[b]

    def tensors(self) -> dict[str, torch.Tensor]:
        """As stored in a checkpoint (under the adaptive prefix)."""
        return {GAIN2_RATES_KEY: torch.tensor(self.rates, dtype=torch.float64),
                GAIN2_CURVES_KEY: self.curves.detach().float().cpu().contiguous()}

    @classmethod
    def from_tensors(cls, rates: torch.Tensor, curves: torch.Tensor) -> Gain2Calibration:
        return cls(rates=tuple(float(r) for r in rates.double().tolist()), curves=curves.float().cpu())


GAIN2_RATES_KEY = "gain2_rates"
GAIN2_CURVES_KEY = "gain2_curves"
