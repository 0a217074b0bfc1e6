"""The record of a beta tuning kept in a dataset's job settings (job.json content and the
manifest's params), so that a resume re-uses the tuned beta and E[I] and never re-tunes.

Flat scalars only: the record round-trips through JSON unchanged, so the resume check
(`content_diff`) compares it exactly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

REPORT_NAME = "tuning.json"
FIGURE_NAME = "tuning.png"
TUNING_SOURCES = ("tuned", "report")


@dataclass(frozen=True)
class TuningRecord:
    """How a job's beta and E[I] were chosen (InfoTok beta tuning).

    source: "tuned" (tuned by this job before it started) or "report" (taken from a
      `tune-beta` report). report_uri: where that report was read ("" when tuned here);
      report_sha256: hash of the report as written next to the dataset (OUTPUT/tuning.json).
    target_kind / target_value: the target ("rate", "bpp16" or "psnr").
    sample_clips, clips_per_video, seed, psnr_clips (-1: all), mean_info_source: the request.
    beta, expected_info: what the job tokenizes with (also in TokenizeConfig).
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
    expected_info: float
    rate: float
    rate_low: float
    rate_high: float
    bpp16: float
    psnr: float | None
    psnr_low: float | None
    psnr_high: float | None
    tokenizer_id: str

    def __post_init__(self) -> None:
        if self.source not in TUNING_SOURCES:
            raise ValueError(f"tuning source must be one of {TUNING_SOURCES}, got {self.source!r}")
        if not 0 < self.beta <= 1:
            raise ValueError(f"tuned beta must be in (0, 1], got {self.beta!r}")
        if not self.expected_info > 0:
            raise ValueError(f"tuned expected_info must be > 0, got {self.expected_info!r}")

    def request(self) -> dict[str, Any]:
        """The fields that say what was asked (a resume must ask the same)."""
        keys = ("source", "report_uri", "target_kind", "target_value", "sample_clips", "clips_per_video", "seed",
                "psnr_clips", "mean_info_source")
        return {k: getattr(self, k) for k in keys}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TuningRecord:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown, missing = set(d) - known, known - set(d)
        if unknown or missing:
            raise ValueError(f"TuningRecord keys: unknown {sorted(unknown)}, missing {sorted(missing)}")
        return cls(**d)
