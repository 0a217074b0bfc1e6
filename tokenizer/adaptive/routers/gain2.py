"""The `gain2` router: a clip's quality curve measured with several probes, each clip's rate the
optimum of PSNR(r) - lam * r on it, lam from beta by its calibration clips' curves (the rule:
`tokenizer.adaptive.routers.gain2_curves`). Token scores as the `gain` router's. Cost per clip
besides the encode and the final compressor pass: one decode at the full rate and one compressor +
decoder pass per probe.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, ClassVar

from tokenizer.adaptive.routers.base import Router, RouterState, Scored
from tokenizer.adaptive.routers.gain import full_rate_pass

if TYPE_CHECKING:
    import torch

    from tokenizer.adaptive.curve_fit import CorpusFit
    from tokenizer.adaptive.model import AdaptiveTokenizer
    from tokenizer.adaptive.routers.gain2_curves import Gain2Calibration
    from tokenizer.nn.model import Encoding

_CALIBRATE = "run `infotok calibrate --router gain2 --write-checkpoint NEW`"


def curve_rates(model: AdaptiveTokenizer) -> tuple[float, ...]:
    """The gain2 router's curve rates: the calibration's (its probes and 1), else the default probes and 1."""
    from tokenizer.adaptive.routers.gain2_curves import GAIN2_PROBE_RATES

    return model.gain2.rates if model.gain2 is not None else GAIN2_PROBE_RATES + (1.0,)


class Gain2Router(Router):
    name: ClassVar[str] = "gain2"
    signal_name: ClassVar[str] = "E[s]"  # its calibration curves' mean slope with the lowest probe, for the record
    how_to_set: ClassVar[str] = _CALIBRATE
    budgets_from_curves: ClassVar[bool] = True
    fits_corpus: ClassVar[bool] = True

    def score(self, model: AdaptiveTokenizer, video: torch.Tensor, encoding: Encoding) -> Scored:
        import torch

        from tokenizer.adaptive.routers.gain2_curves import curve_slope

        scores, full = full_rate_pass(model, video, encoding)
        rates = curve_rates(model)
        curve = torch.stack([model.probe_psnr(video, encoding, scores, r) for r in rates[:-1]] + [full], 1)  # (B, K)
        return Scored(encoding=encoding, scores=scores, signal=curve_slope(curve, rates), router=self.name,
                      curve=curve.float(), curve_rates=rates)

    def budget_basis(self, expected_info: float, fit_clips: int | None = None) -> str:
        # its E[s] (the curves' mean slope) is only recorded: printing it beside gain's E[s], a
        # different figure under the same name, misled readers
        return f"its per-corpus fit ({fit_clips} clips)" if fit_clips else "its calibration curves"

    def passes(self, model: AdaptiveTokenizer) -> tuple[float, float, float]:
        k = len(curve_rates(model))  # the full rate and each probe: decoder + compressor, then the final compressor
        return (1, float(k), float(k + 1))

    def budget(self, model: AdaptiveTokenizer, scored: Scored, betas: torch.Tensor,
               mean_info: float | None = None) -> torch.Tensor:
        """Its curve rule with the calibration's lam (a mean_info other than the calibration's E[s] is
        refused: it cannot move lam)."""
        import torch

        from tokenizer.adaptive.routers.gain2_curves import curve_rate

        model.check_router_ready(self.name)
        cal = model.gain2
        assert cal is not None and scored.curve is not None
        if mean_info is not None and not math.isclose(float(mean_info), cal.mean_slope, rel_tol=1e-6):
            raise ValueError(f"the gain2 router takes its budgets from its calibration curves (E[s] "
                             f"{cal.mean_slope:.6g}), not from an E[signal] of {mean_info!r}; recalibrate with "
                             "`infotok calibrate --router gain2 --write-checkpoint NEW`")
        if scored.curve_rates != cal.rates:
            raise ValueError(f"gain2 curve measured at rates {scored.curve_rates}, calibration at {cal.rates}")
        lam = torch.tensor([cal.lam(float(b)) for b in betas.flatten().tolist()], dtype=torch.float64)
        return curve_rate(scored.curve.cpu(), cal.rates, lam).float().to(betas.device)

    def check_route(self, model: AdaptiveTokenizer, mean_info: float | None) -> None:
        """Nothing before the passes: its budget needs the curves (checked by `problem`), no E[signal]."""

    def mean_signal(self, model: AdaptiveTokenizer) -> float:
        return model.gain2.mean_slope if model.gain2 is not None else float("nan")

    def signal_count(self, model: AdaptiveTokenizer) -> int:
        return model.gain2.count if model.gain2 is not None else 0

    def set_mean(self, model: AdaptiveTokenizer, value: float, count: int) -> None:
        raise ValueError("the gain2 router is calibrated with curves (set_gain2), not an E[signal] value")

    def problem(self, state: RouterState, calibrated: bool = True, need_mean: bool = False) -> str | None:
        from tokenizer.adaptive.routers.gain2_curves import GAIN2_CURVES_KEY

        if calibrated and not state.has(GAIN2_CURVES_KEY):
            return f"{state.where} has no gain2 calibration curves; {_CALIBRATE} and use NEW"
        return None

    @contextmanager
    def _without_calibration(self, model: AdaptiveTokenizer) -> Iterator[None]:
        previous = model.gain2
        model.set_gain2(None)
        try:
            yield
        finally:
            model.set_gain2(previous)

    def fresh_measurement(self, model: AdaptiveTokenizer) -> AbstractContextManager[None]:
        """Re-measure at this version's probe rates, not the stored calibration's."""
        return self._without_calibration(model)

    def calibration(self, model: AdaptiveTokenizer, curves: list[torch.Tensor]) -> Gain2Calibration | None:
        import torch

        from tokenizer.adaptive.routers.gain2_curves import Gain2Calibration

        with self._without_calibration(model):  # measured at this version's probe rates (`fresh_measurement`)
            rates = curve_rates(model)
        return Gain2Calibration(rates=rates, curves=torch.cat(curves))

    def write_calibration(self, model: AdaptiveTokenizer, mean_signal: float, count: int,
                          calibration: Gain2Calibration | None) -> None:
        model.set_gain2(calibration)

    def fit_corpus(self, model: AdaptiveTokenizer, videos: list[torch.Tensor]) -> CorpusFit:
        """Measure the sample's curves (as calibration does): lam for a beta then makes the sample's mean
        rate beta, so beta is the mean kept fraction on this corpus, not on the calibration clips."""
        import torch

        from tokenizer.adaptive.curve_fit import CorpusFit

        with self._without_calibration(model):  # the sample's size is checked by `fitting.fit_router`
            rates = curve_rates(model)
            curves = torch.cat([self.score(model, x, model.base.encode(x)).curve.double().cpu() for x in videos])
        return CorpusFit(router=self.name, rates=rates, curves=curves, clips=int(curves.shape[0]),
                         measured_psnr=tuple(float(v) for v in curves.mean(0)))

    def use_fit(self, model: AdaptiveTokenizer, fit: CorpusFit | None) -> None:
        if fit is None:
            return
        if fit.router != self.name:
            raise ValueError(f"a fit of the {fit.router} router cannot run the gain2 router")
        model.set_gain2(fit.calibration)
