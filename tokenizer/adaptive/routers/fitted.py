"""The `fitted` router: gain2's curve rule on a predicted curve, in one pass.

Each clip's curve (PSNR at gain2's probe rates and at 1) is predicted from its clip descriptors
by a `CurvePredictor` fitted on a sample of the corpus being tokenized
(`tokenizer.adaptive.curve_fit`: a job's `--fit-router N`, recorded in job.json), and the clip's
rate is the optimum of PSNR(r) - lam * r on the prediction, lam from beta so that the sample's
predicted mean rate is beta. Token scores are the latent router's: its head plus the pixel
detail at the checkpoint's weight (a per-corpus choice of that weight, tried, chose the
checkpoint's on both measured sets and cost the fit twice the passes: docs/routers.md). The keep
is the covering keep (`tokenizer.adaptive.coverage`) at the weight the fit chose for this corpus:
whether spreading the keep pays depends on the footage, so the fit measures its first
COVERAGE_CLIPS clips' probes at each of COVERAGE_CHOICES and keeps the best mean. Cost per clip:
one encode, the head and the descriptors, one compressor pass (no decoder); the fit's sample
costs one full-rate decode and one compressor + decoder pass per probe (per choice on the first
COVERAGE_CLIPS clips), once per corpus.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from tokenizer.adaptive.routers.base import Router, RouterState, Scored

if TYPE_CHECKING:
    import torch

    from tokenizer.adaptive.curve_fit import CorpusFit
    from tokenizer.adaptive.model import AdaptiveTokenizer
    from tokenizer.nn.model import Encoding

# the fit's first clips on which the covering keep's weight is chosen
COVERAGE_CLIPS = 16
_FIT = "give the job --fit-router N (fit on N clips of the corpus) or use --router gain2|gain"


class FittedRouter(Router):
    name: ClassVar[str] = "fitted"
    signal_name: ClassVar[str] = "E[s]"  # the predicted curves' slope with the lowest probe, for the record
    how_to_set: ClassVar[str] = _FIT
    fits_corpus: ClassVar[bool] = True
    budgets_from_curves: ClassVar[bool] = True
    needs_fit: ClassVar[bool] = True

    def _fit(self, model: AdaptiveTokenizer) -> CorpusFit:
        fit = model.corpus_fit
        if fit is None or fit.router != self.name or fit.predictor is None:
            raise ValueError(f"the fitted router has no per-corpus fit; {_FIT}")
        return fit

    def score(self, model: AdaptiveTokenizer, video: torch.Tensor, encoding: Encoding) -> Scored:
        from tokenizer.adaptive.clip_descriptors import describe_clip
        from tokenizer.adaptive.routers.gain2_curves import curve_slope

        fit = self._fit(model)
        assert fit.predictor is not None
        bounded = model.bounded_latent(encoding.latent)
        described = describe_clip(video, bounded)
        curve = fit.predictor.predict(described.descriptors).float()
        return Scored(encoding=encoding, scores=model.latent_head.scores(bounded, described.detail, fit.detail_weight),
                      signal=curve_slope(curve, fit.rates), router=self.name, curve=curve, curve_rates=fit.rates,
                      coverage=fit.coverage)

    def passes(self, model: AdaptiveTokenizer) -> tuple[float, float, float]:
        return (1, 0, 1)

    def budget(self, model: AdaptiveTokenizer, scored: Scored, betas: torch.Tensor,
               mean_info: float | None = None) -> torch.Tensor:
        import torch

        from tokenizer.adaptive.routers.gain2_curves import curve_rate

        fit = self._fit(model)
        if mean_info is not None:
            raise ValueError(f"the fitted router takes its budgets from its per-corpus fit, not from an E[signal] "
                             f"of {mean_info!r}")
        assert scored.curve is not None
        lam = torch.tensor([fit.lam(float(b)) for b in betas.flatten().tolist()], dtype=torch.float64)
        return curve_rate(scored.curve.cpu(), fit.rates, lam).float().to(betas.device)

    def check_route(self, model: AdaptiveTokenizer, mean_info: float | None) -> None:
        self._fit(model)

    def budget_basis(self, expected_info: float, fit_clips: int | None = None) -> str:
        return f"its per-corpus fit ({fit_clips} clips)" if fit_clips else "its per-corpus fit"

    def mean_signal(self, model: AdaptiveTokenizer) -> float:
        fit = model.corpus_fit
        if fit is None or fit.router != self.name:
            return float("nan")
        from tokenizer.adaptive.routers.gain2_curves import curve_slope

        return float(curve_slope(fit.curves, fit.rates).double().mean())

    def signal_count(self, model: AdaptiveTokenizer) -> int:
        fit = model.corpus_fit
        return fit.clips if fit is not None and fit.router == self.name else 0

    def set_mean(self, model: AdaptiveTokenizer, value: float, count: int) -> None:
        raise ValueError(f"the fitted router is set by a per-corpus fit, not an E[signal] value; {_FIT}")

    def problem(self, state: RouterState, calibrated: bool = True, need_mean: bool = False) -> str | None:
        if not state.value("latent_head_steps") > 0:
            return (f"{state.where} has no trained latent router head, which the fitted router's token scores "
                    "come from; train it with `infotok train --stage router` or use --router gain2|gain")
        return None

    # ---- the per-corpus fit ---------------------------------------------------------------
    def fit_corpus(self, model: AdaptiveTokenizer, videos: list[torch.Tensor]) -> CorpusFit:
        """Measure every sample clip's curve with the head's token scores (the checkpoint's detail
        weight, recorded in the fit) under the covering keep's weight that does best on the first
        COVERAGE_CLIPS clips, and fit the curve predictor on those curves."""
        import torch

        from tokenizer.adaptive.clip_descriptors import describe_clip
        from tokenizer.adaptive.coverage import COVERAGE_CHOICES
        from tokenizer.adaptive.curve_fit import CorpusFit, CurvePredictor
        from tokenizer.adaptive.routers.gain import full_rate_pass
        from tokenizer.adaptive.routers.gain2 import curve_rates

        rates = curve_rates(model)
        weight = float(model.latent_head.detail_weight)
        descriptors: list[torch.Tensor] = []
        # per batch: the full-rate PSNR, and its probes under each coverage weight measured
        fulls: list[torch.Tensor] = []
        probes: list[dict[float, torch.Tensor]] = []
        chosen: float | None = None  # measured at every choice until COVERAGE_CLIPS clips are in
        for x in videos:
            enc = model.base.encode(x)
            bounded = model.bounded_latent(enc.latent)
            described = describe_clip(x, bounded)
            descriptors.append(described.descriptors.double().cpu())
            fulls.append(full_rate_pass(model, x, enc)[1].double().cpu())
            scores = model.latent_head.scores(bounded, described.detail, weight)
            choices = COVERAGE_CHOICES if chosen is None else (chosen,)
            probes.append({c: self._probes(model, x, enc, scores, rates, c) for c in choices})
            if chosen is None and sum(len(f) for f in fulls) >= COVERAGE_CLIPS:
                chosen = choose_coverage(probes)
        if chosen is None:  # a sample smaller than COVERAGE_CLIPS
            chosen = choose_coverage(probes)
        measured = torch.cat([torch.cat([p[chosen], f[:, None]], 1) for p, f in zip(probes, fulls)])
        x_all = torch.cat(descriptors)
        predictor = CurvePredictor.fit(x_all, measured)
        return CorpusFit(router=self.name, rates=rates, curves=predictor.predict(x_all), clips=len(measured),
                         predictor=predictor, detail_weight=weight,
                         measured_psnr=tuple(float(v) for v in measured.mean(0)), measured=measured,
                         coverage=chosen)

    @staticmethod
    def _probes(model: AdaptiveTokenizer, x: torch.Tensor, enc: Encoding, scores: torch.Tensor,
                rates: tuple[float, ...], coverage: float) -> torch.Tensor:
        """(B, K - 1) PSNR at each probe rate (all but the last, 1) under the covering keep's weight."""
        import torch

        return torch.stack([model.probe_psnr(x, enc, scores, r, coverage).double().cpu() for r in rates[:-1]], 1)

    def use_fit(self, model: AdaptiveTokenizer, fit: CorpusFit | None) -> None:
        if fit is not None and (fit.router != self.name or fit.predictor is None):
            raise ValueError(f"a fit of the {fit.router} router cannot run the fitted router")
        model.set_corpus_fit(fit)


def choose_coverage(probes: list[dict[float, torch.Tensor]]) -> float:
    """The covering keep's weight whose probes (per batch: weight -> (B, K - 1) PSNR) have the
    highest mean over every clip and probe; ties go to the smaller weight."""
    import torch

    weights = sorted(set.intersection(*(set(p) for p in probes))) if probes else []
    if not weights:
        raise ValueError("choosing the covering keep's weight needs probes of at least one clip at a common weight")
    means = {w: float(torch.cat([p[w].flatten() for p in probes]).mean()) for w in weights}
    return max(weights, key=lambda w: (means[w], -w))
