"""The record of a beta tuning kept in a dataset's job settings (job.json content and the
manifest's params), so that a resume re-uses the tuned beta and E[I] and never re-tunes.

Flat scalars only: the record round-trips through JSON unchanged, so the resume check
(`content_diff`) compares it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from schemas.config import FrozenConfig

if TYPE_CHECKING:
    from pipeline.tuning.report import TuningReport

TUNING_SOURCES = ("tuned", "report")


@dataclass(frozen=True)
class TuningRecord(FrozenConfig):
    """How a job's beta and E[I] were chosen (InfoTok beta tuning).

    source: "tuned" (tuned by this job before it started) or "report" (taken from a
      `tune-beta` report). report_uri: where that report was read ("" when tuned here);
      report_sha256: hash of the report as written next to the dataset (OUTPUT/tuning.json).
    target_kind / target_value: the target ("rate", "bpp16" or "psnr").
    sample_clips, clips_per_video, seed, psnr_clips (-1: all), mean_info_source: the request.
    beta, expected_info: what the job tokenizes with (also in TokenizeConfig); router: the
    router they were tuned for (expected_info is its E[signal]; None for a router whose budgets
    come from curves, tuned on its per-corpus fit: mean_info_source "fit").
    rate, rate_low, rate_high: sample mean rate at beta and its 95% CI; bpp16 likewise;
    psnr, psnr_low, psnr_high: decoded quality of the probed clips (None: not measured).
    tokenizer_id: the tokenizer the tuning ran.
    """

    source: str
    report_uri: str
    report_sha256: str
    target_kind: str
    target_value: float
    sample_clips: int
    clips_per_video: int
    seed: int
    psnr_clips: int
    mean_info_source: str
    beta: float
    expected_info: float | None
    rate: float
    rate_low: float
    rate_high: float
    bpp16: float
    psnr: float | None
    psnr_low: float | None
    psnr_high: float | None
    tokenizer_id: str
    router: str = "elbo"

    def __post_init__(self) -> None:
        if self.source not in TUNING_SOURCES:
            raise ValueError(f"tuning source must be one of {TUNING_SOURCES}, got {self.source!r}")
        if not 0 < self.beta <= 1:
            raise ValueError(f"tuned beta must be in (0, 1], got {self.beta!r}")
        if self.expected_info is not None and not self.expected_info > 0:
            raise ValueError(f"tuned expected_info must be > 0, got {self.expected_info!r}")

    @classmethod
    def from_report(cls, report: TuningReport, sha256: str, source: str, report_uri: str = "") -> TuningRecord:
        """The record of `report` (whose bytes hash to sha256), tuned here or read from report_uri."""
        from tokenizer.adaptive.routers.registry import get_router

        r = report.result
        psnr_clips = report.tune.get("psnr_clips")
        router = str(report.tune.get("router", "elbo"))
        on_fit = get_router(router).budgets_from_curves  # its E[signal] is only the fit's record
        return cls(
            source=source, report_uri=report_uri, report_sha256=sha256,
            target_kind=r.target.kind, target_value=r.target.value, sample_clips=int(report.sample["clips"]),
            clips_per_video=int(report.sample["clips_per_video"]), seed=int(report.sample["seed"]),
            psnr_clips=-1 if psnr_clips is None else int(psnr_clips), mean_info_source=r.mean_info_source,
            beta=r.beta, expected_info=None if on_fit else r.mean_info, rate=r.rate, rate_low=r.rate_ci[0], rate_high=r.rate_ci[1],
            bpp16=r.bpp16, psnr=r.psnr, psnr_low=r.psnr_ci[0] if r.psnr_ci else None,
            psnr_high=r.psnr_ci[1] if r.psnr_ci else None, tokenizer_id=report.tokenizer_id,
            router=router,
        )

    def request(self) -> dict[str, Any]:
        """The fields that say what was asked (a resume must ask the same)."""
        keys = ("source", "report_uri", "target_kind", "target_value", "sample_clips", "clips_per_video", "seed",
                "psnr_clips", "mean_info_source")
        return {k: getattr(self, k) for k in keys}
