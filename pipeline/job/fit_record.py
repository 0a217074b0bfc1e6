"""The record of a router's per-corpus fit kept in a dataset's job settings (job.json content and
the manifest's params), so that every worker routes with the same fit and a resume re-uses it
instead of fitting again (`pipeline.job.router_fit`).

The fit itself is `tokenizer.adaptive.curve_fit.CorpusFit.to_dict()`: JSON with its floats rounded,
so the record round-trips unchanged and the resume check (`content_diff`) compares it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from schemas.config import FrozenConfig

if TYPE_CHECKING:
    from tokenizer.adaptive.curve_fit import CorpusFit

# the deterministic corpus sample a fit is drawn with (`pipeline.tuning.sample.SampleConfig`)
FIT_CLIPS_PER_VIDEO = 2
FIT_SEED = 0


@dataclass(frozen=True)
class FitRecord(FrozenConfig):
    """A router fitted on a sample of the job's corpus (`--fit-router N`).

    clips, clips_per_video, seed: the request (N clips, drawn as `SampleConfig` draws them);
    sample_videos: how many videos the sample's clips came from; fit: the `CorpusFit` as JSON
    (its router, rates, curves, clip count, predictor, detail weight).
    """

    clips: int
    clips_per_video: int
    seed: int
    sample_videos: int
    fit: dict[str, Any]

    def __post_init__(self) -> None:
        if self.clips < 1:
            raise ValueError(f"fit record clips must be >= 1, got {self.clips}")
        if not isinstance(self.fit, dict) or not isinstance(self.fit.get("router"), str):
            raise ValueError(f"fit record fit must be a CorpusFit dict naming its router, got {type(self.fit).__name__}")

    @property
    def router(self) -> str:
        return str(self.fit["router"])

    @property
    def sample_clips(self) -> int:
        """Clips the fit was made on (fewer than `clips` when the corpus had fewer)."""
        return int(self.fit["clips"])

    def request(self) -> dict[str, int]:
        """What was asked (a resume that names --fit-router must ask the same)."""
        return {"clips": self.clips, "clips_per_video": self.clips_per_video, "seed": self.seed}

    def corpus_fit(self) -> CorpusFit:
        """The fit, rebuilt (torch)."""
        from tokenizer.adaptive.curve_fit import CorpusFit

        return CorpusFit.from_dict(self.fit)
