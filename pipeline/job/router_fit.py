"""`--fit-router N` for the tokenize job: fit a router that fits per corpus (`Router.fits_corpus`:
gain2, fitted) on a deterministic sample of N clips of the job's own corpus, before Ray starts,
and record the fit in the job's settings (job.json and the manifest's params), from which every
worker routes. With the fit, beta is the mean kept fraction of tokens on this corpus's sample.

A new dataset that names no --fit-router is fitted on DEFAULT_FIT_CLIPS clips when its router
fits per corpus; a corpus too small for that default fit is tokenized without one (a warning),
one too small for an asked fit is refused. A rerun re-uses the recorded fit (or its absence) and
never fits again; asking another fit of an existing dataset is refused, as any other change of
settings is; `--overwrite` starts over (and fits again).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.job.fit_record import FIT_CLIPS_PER_VIDEO, FIT_SEED, FitRecord
from pipeline.job.job import JobConfig
from pipeline.job.prepare import OutputMismatchError, recorded_tokenize
from pipeline.tuning.sample import SampleConfig
from tokenizer.adaptive.routers.registry import DEFAULT_FIT_CLIPS, get_router

if TYPE_CHECKING:
    from pipeline.tuning.report import TuningReport

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitRequest:
    """A fit on `clips` clips drawn `clips_per_video` per video with `seed`."""

    clips: int
    clips_per_video: int = FIT_CLIPS_PER_VIDEO
    seed: int = FIT_SEED

    def __post_init__(self) -> None:
        if self.clips < 1:
            raise ValueError(f"a router fit needs --fit-router N >= 1 clips, got {self.clips}")

    @property
    def sample(self) -> SampleConfig:
        return SampleConfig(clips=self.clips, clips_per_video=self.clips_per_video, seed=self.seed)

    def asked(self) -> dict[str, int]:
        """The request in FitRecord.request() terms."""
        return {"clips": self.clips, "clips_per_video": self.clips_per_video, "seed": self.seed}


def _with_fit(job: JobConfig, record: FitRecord | None) -> JobConfig:
    return dataclasses.replace(job, tokenize=dataclasses.replace(job.tokenize, fit=record))


def _adaptive(checkpoint: str | None) -> bool:
    from tokenizer.checkpoint import ADAPTIVE_FORMAT_VERSION, DEFAULT_CHECKPOINT, EXTERNAL_BASE_FORMAT_VERSION, read_header

    version = read_header(checkpoint or DEFAULT_CHECKPOINT).get("format_version")
    return version in (ADAPTIVE_FORMAT_VERSION, EXTERNAL_BASE_FORMAT_VERSION)


def fit_on_sample(job: JobConfig, request: FitRequest, tuning: tuple[Any, Any] | None = None
                  ) -> tuple[FitRecord, TuningReport | None]:
    """Draw the sample (`pipeline.tuning.sample`, the job's decode settings), load the job's
    checkpoint and fit its router; with `tuning` (a TuningTarget and TuneConfig), also tune beta on
    the fit (`pipeline.tuning.report.tune_with_fit`) and return its report. FitTooSmallError, naming
    the corpus and the count, when the corpus gives fewer clips than a fit needs."""
    from pipeline.tuning.report import tune_with_fit, tuning_report
    from pipeline.tuning.sample import sample_clips
    from tokenizer.adaptive.curve_fit import MIN_FIT_CLIPS, FitTooSmallError
    from tokenizer.adaptive.fitting import fit_router
    from tokenizer.checkpoint import load_tokenizer
    from tokenizer.device import resolve_device

    router = job.tokenize.router
    t0 = time.perf_counter()
    try:
        sample = sample_clips(job.source, job.decode, job.storage, request.sample)
        n, videos = len(sample.clips), sample.videos_used
    except ValueError as exc:  # no decodable clip at all
        logger.warning("router fit sample: %s", exc)
        n, videos = 0, 0
    if n < MIN_FIT_CLIPS:
        raise FitTooSmallError(f"corpus {job.input} gives {n} clips for the {router} router's fit (--fit-router "
                               f"{request.clips}); a fit needs at least {MIN_FIT_CLIPS}")
    loaded = load_tokenizer(job.tokenize.checkpoint, device=resolve_device(job.tokenize.device))
    if loaded.adaptive is None:
        raise ValueError(f"checkpoint {loaded.path} is fixed-rate ({loaded.tokenizer_id}): it has no router to fit")
    report = None
    if tuning is None:
        fit = fit_router(loaded.adaptive, router, [c.frames for c in sample.clips], job.tokenize.batch_size)
    else:
        target, tune_cfg = tuning
        result, fit = tune_with_fit(loaded.adaptive, router, sample, target, tune_cfg)
        report = tuning_report(loaded.tokenizer_id, job.tokenize.checkpoint, job.source, job.decode, request.sample,
                               sample, tune_cfg, result)
    seconds = time.perf_counter() - t0
    logger.info("%s: %s, on a sample of %d clips from %d videos (%.1f s)", job.output, fit.describe(), n, videos,
                seconds)
    record = FitRecord(clips=request.clips, clips_per_video=request.clips_per_video, seed=request.seed,
                       sample_videos=videos, fit=fit.to_dict())
    return record, report


def resolve_router_fit(job: JobConfig, fit_clips: int | None, overwrite: bool = False) -> JobConfig:
    """The job with its router's fit set (see the module doc). fit_clips: --fit-router as given
    (None: not given; 0: no fit). Raises OutputMismatchError for another fit than the dataset's,
    FitTooSmallError for a corpus too small for an asked fit, ValueError for a fit the router or
    checkpoint cannot take."""
    from tokenizer.adaptive.curve_fit import FitTooSmallError

    router = get_router(job.tokenize.router)
    old = None if overwrite else recorded_tokenize(job)
    if old is None and job.tokenize.fit is not None:  # fitted just now, by the tuning of its beta on the fit
        return job
    if old is not None:  # an existing dataset: its fit, or its absence, as recorded
        recorded = FitRecord.from_dict(old["fit"]) if old.get("fit") is not None else None
        had = recorded.clips if recorded is not None else 0
        if fit_clips is not None and fit_clips != had:
            made = f"--fit-router {had}" if had else "no per-corpus fit"
            raise OutputMismatchError(
                f"{job.output} was made with {made}, not --fit-router {fit_clips}; rerun with --fit-router {had} "
                "(or without --fit-router) to resume, or pass --overwrite to start over")
        if recorded is not None and recorded.router != router.name:
            raise OutputMismatchError(
                f"{job.output} was made with the {recorded.router} router and its per-corpus fit, not the "
                f"{router.name} router; rerun with --router {recorded.router} to resume, or pass --overwrite to "
                "start over")
        if recorded is not None:
            logger.info("%s: resuming with its recorded %s router fit on %d clips; not fitting again", job.output,
                        recorded.router, recorded.sample_clips)
        return _with_fit(job, recorded)
    explicit = fit_clips is not None
    n = fit_clips if explicit else DEFAULT_FIT_CLIPS if router.fits_corpus else 0
    if not n:
        return _with_fit(job, None)
    if not router.fits_corpus:
        raise ValueError(f"the {router.name} router takes no per-corpus fit (--fit-router {n}); use --router gain2 "
                         "or --router fitted")
    if not _adaptive(job.tokenize.checkpoint):
        if explicit:
            raise ValueError(f"checkpoint {job.tokenize.checkpoint} is fixed-rate: it has no router to fit "
                             f"(--fit-router {n})")
        return _with_fit(job, None)
    try:
        return _with_fit(job, fit_on_sample(job, FitRequest(n))[0])
    except FitTooSmallError as exc:
        if router.needs_fit:
            raise FitTooSmallError(f"{exc}, and the {router.name} router cannot route without one: use --router "
                                   "gain2 (its calibration) for so small a corpus") from None
        if explicit:
            raise FitTooSmallError(f"{exc}: pass --fit-router 0 to tokenize without one") from None
        logger.warning("%s; tokenizing without a per-corpus fit: beta is the mean kept rate on the checkpoint's "
                       "calibration clips", exc)
        return _with_fit(job, None)
