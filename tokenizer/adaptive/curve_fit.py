"""A per-corpus fit of clip curves: what lets a one-pass router run `gain2`'s rule.

`gain2` measures each clip's curve (PSNR at its probe rates and at 1) with four decoder passes,
then takes the rate maximising PSNR(r) - lam * r on it. The `fitted` router predicts that curve
from the clip descriptors (`tokenizer.adaptive.clip_descriptors`, no decoder pass) with a
`CurvePredictor` fitted on a sample of the corpus whose curves were measured, and runs the same
rule on the prediction. The rule depends on a curve's shape only (its slopes), so the predictor's
targets are the drops PSNR(1) - PSNR(r_k) at the probes, one ridge regression each on the
standardised descriptors, with the ridge strength chosen per corpus by leave-one-out error.

A `CorpusFit` is what a job records (job.json, JSON only) and hands to its workers: the curve
rates, the sample's curves that set lam for a beta (measured for gain2; the predictions for the
fitted router, so that beta is the mean rate its own predictions give on the sample), the
predictor, and the token scores' detail weight chosen on the sample. Beta then means the same
for either router: the mean kept fraction on this corpus's sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from tokenizer.adaptive.routers.gain2_curves import Gain2Calibration, check_curve_rates

# ridge strengths (on standardised descriptors) tried by leave-one-out; the largest is ~ the mean curve
RIDGE_GRID: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 1e4)
MIN_FIT_CLIPS = 4  # fewer cannot be fitted (an error)
FEW_FIT_CLIPS = 32  # fewer is fitted with a warning: its leave-one-out error is itself a rough figure
_MIN_SPREAD = 1e-6
FIT_FORMAT = "infotok-corpus-fit-1"


class FitTooSmallError(ValueError):
    """The sample is too small to fit a curve predictor."""


def _check_matrix(x: torch.Tensor, name: str, rows: int | None = None, cols: int | None = None) -> torch.Tensor:
    if x.ndim != 2 or (rows is not None and x.shape[0] != rows) or (cols is not None and x.shape[1] != cols):
        raise ValueError(f"{name} must be a ({rows or 'N'}, {cols or 'K'}) matrix, got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite")
    return x.double()


@dataclass(frozen=True)
class CurvePredictor:
    """drops (N, K-1) = bias + ((x - shift) * scale) @ weight over F descriptors x (N, F), each
    drop at least 0; the curve is then (-drops, 0) at the fit's rates. ridge: the strength chosen;
    loo_rmse: its leave-one-out RMSE of the drops (dB), loo_rmse_mean: the same for the mean curve
    (a predictor no better than it says so)."""

    shift: tuple[float, ...]
    scale: tuple[float, ...]
    weight: tuple[tuple[float, ...], ...]  # (F, K-1)
    bias: tuple[float, ...]  # (K-1,)
    ridge: float
    loo_rmse: float
    loo_rmse_mean: float

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, F) -> curves (B, K) in dB relative to PSNR(1) (the last column 0)."""
        f = features.double()
        shift = torch.tensor(self.shift, dtype=torch.float64, device=f.device)
        scale = torch.tensor(self.scale, dtype=torch.float64, device=f.device)
        w = torch.tensor(self.weight, dtype=torch.float64, device=f.device)
        b = torch.tensor(self.bias, dtype=torch.float64, device=f.device)
        drops = (((f - shift) * scale) @ w + b).clamp_min(0.0)  # (B, K-1)
        return torch.cat([-drops, torch.zeros_like(drops[:, :1])], dim=1)

    @classmethod
    def fit(cls, features: torch.Tensor, curves: torch.Tensor, grid: tuple[float, ...] = RIDGE_GRID
            ) -> CurvePredictor:
        """Fit on descriptors (N, F) and measured curves (N, K) (dB at ascending rates ending at 1)."""
        n = features.shape[0]
        if n < MIN_FIT_CLIPS:
            raise FitTooSmallError(f"a curve fit needs at least {MIN_FIT_CLIPS} clips, got {n}")
        x = _check_matrix(features, "descriptors")
        c = _check_matrix(curves, "curves", rows=n)
        y = c[:, -1:] - c[:, :-1]  # (N, K-1) drops below the full rate
        shift, spread = x.mean(0), x.std(0, unbiased=False)
        scale = torch.where(spread > _MIN_SPREAD, 1.0 / spread.clamp_min(_MIN_SPREAD), torch.zeros_like(spread))
        z = torch.cat([(x - shift) * scale, torch.ones(n, 1, dtype=x.dtype)], dim=1)  # (N, F + 1)
        best: tuple[float, float, torch.Tensor] | None = None
        for ridge in grid:
            penalty = torch.eye(z.shape[1], dtype=x.dtype) * ridge
            penalty[-1, -1] = 0.0
            inv = torch.linalg.inv(z.T @ z + penalty)
            coef = inv @ z.T @ y  # (F + 1, K-1)
            hat = ((z @ inv) * z).sum(1, keepdim=True)  # leverages (N, 1)
            loo = (y - z @ coef) / (1.0 - hat).clamp_min(1e-6)
            rmse = float(loo.pow(2).mean().sqrt())
            if best is None or rmse < best[0] - 1e-12:
                best = (rmse, ridge, coef)
        assert best is not None
        rmse, ridge, coef = best
        loo_mean = float(((y - y.mean(0)) * n / max(n - 1, 1)).pow(2).mean().sqrt())
        coef[:-1] *= (scale > 0).to(coef.dtype).unsqueeze(1)
        return cls(shift=tuple(shift.tolist()), scale=tuple(scale.tolist()),
                   weight=tuple(tuple(row) for row in coef[:-1].tolist()), bias=tuple(coef[-1].tolist()),
                   ridge=float(ridge), loo_rmse=rmse, loo_rmse_mean=loo_mean)

    def to_dict(self) -> dict[str, Any]:
        return {"shift": list(self.shift), "scale": list(self.scale), "weight": [list(r) for r in self.weight],
                "bias": list(self.bias), "ridge": self.ridge, "loo_rmse": self.loo_rmse,
                "loo_rmse_mean": self.loo_rmse_mean}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CurvePredictor:
        return cls(shift=tuple(float(v) for v in d["shift"]), scale=tuple(float(v) for v in d["scale"]),
                   weight=tuple(tuple(float(v) for v in r) for r in d["weight"]),
                   bias=tuple(float(v) for v in d["bias"]), ridge=float(d["ridge"]),
                   loo_rmse=float(d["loo_rmse"]), loo_rmse_mean=float(d["loo_rmse_mean"]))


@dataclass(frozen=True, eq=False)
class CorpusFit:
    """A router fitted on `clips` clips of a corpus (see the module doc). router: whose fit;
    rates: the curve rates (ascending, ending at 1); curves: (N, K) the curves lam is solved on
    (dB); predictor: the curve predictor (None for gain2, which measures every clip's curve);
    detail_weight: the token scores' pixel-detail weight (None: the checkpoint's); measured_psnr:
    the sample's mean measured PSNR at each rate, for the record; measured: (N, K) the sample's
    measured curves where `curves` holds predictions (None: not kept, or `curves` are measured),
    what a PSNR target is tuned on (`psnr_curves`); coverage: the covering keep's weight the fit
    chose (`tokenizer.adaptive.coverage`; 0, also for fits recorded before it: the top by score).
    Compared by identity."""

    router: str
    rates: tuple[float, ...]
    curves: torch.Tensor
    clips: int
    predictor: CurvePredictor | None = None
    detail_weight: float | None = None
    measured_psnr: tuple[float, ...] = ()
    measured: torch.Tensor | None = None
    coverage: float = 0.0
    _calibration: list[Gain2Calibration] = field(default_factory=list, compare=False, repr=False)

    def __post_init__(self) -> None:
        check_curve_rates(self.rates)
        _check_matrix(self.curves, "fit curves", cols=len(self.rates))
        if self.detail_weight is not None and not math.isfinite(self.detail_weight):
            raise ValueError(f"detail weight must be finite, got {self.detail_weight!r}")
        if not (math.isfinite(self.coverage) and self.coverage >= 0):
            raise ValueError(f"coverage weight must be a finite number >= 0, got {self.coverage!r}")
        if self.measured is not None:
            _check_matrix(self.measured, "measured fit curves", rows=self.curves.shape[0], cols=len(self.rates))

    @property
    def psnr_curves(self) -> torch.Tensor | None:
        """(N, K) the sample's measured curves in dB (gain2's own curves; the fitted router's measured
        ones, kept beside its predictions), None when the fit did not keep them."""
        if self.measured is not None:
            return self.measured
        return self.curves if self.predictor is None else None

    @property
    def calibration(self) -> Gain2Calibration:
        """The curves as gain2's calibration: `lam(beta)` gives the sample a mean rate of beta."""
        if not self._calibration:
            self._calibration.append(Gain2Calibration(rates=self.rates, curves=self.curves.float()))
        return self._calibration[0]

    def lam(self, beta: float) -> float:
        return self.calibration.lam(beta)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (job.json); floats rounded to 1e-6 dB so the record is stable text."""
        return {"format": FIT_FORMAT, "router": self.router, "clips": self.clips, "rates": list(self.rates),
                "curves": [[round(float(v), 6) for v in row] for row in self.curves.tolist()],
                "predictor": None if self.predictor is None else self.predictor.to_dict(),
                "detail_weight": self.detail_weight, "measured_psnr": [round(v, 6) for v in self.measured_psnr],
                **({} if not self.coverage else {"coverage": self.coverage}),
                **({} if self.measured is None else
                   {"measured": [[round(float(v), 6) for v in row] for row in self.measured.tolist()]})}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CorpusFit:
        if d.get("format") != FIT_FORMAT:
            raise ValueError(f"not a corpus fit of format {FIT_FORMAT!r}: format {d.get('format')!r}")
        return cls(router=str(d["router"]), rates=tuple(float(r) for r in d["rates"]),
                   curves=torch.tensor(d["curves"], dtype=torch.float64), clips=int(d["clips"]),
                   predictor=None if d.get("predictor") is None else CurvePredictor.from_dict(d["predictor"]),
                   detail_weight=None if d.get("detail_weight") is None else float(d["detail_weight"]),
                   measured_psnr=tuple(float(v) for v in d.get("measured_psnr", ())),
                   measured=None if d.get("measured") is None else torch.tensor(d["measured"], dtype=torch.float64),
                   coverage=float(d.get("coverage", 0.0)))

    def describe(self) -> str:
        """One line for logs and summaries."""
        text = f"{self.router} fitted on {self.clips} clips"
        if self.predictor is not None:
            p = self.predictor
            text += (f" (curve prediction leave-one-out RMSE {p.loo_rmse:.3f} dB, mean curve {p.loo_rmse_mean:.3f} dB"
                     f", ridge {p.ridge:g})")
        if self.detail_weight is not None:
            text += f", detail weight {self.detail_weight:g}"
        if self.predictor is not None:
            text += f", covering keep {self.coverage:g}"
        return text
