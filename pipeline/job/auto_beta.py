"""`--beta auto` for the tokenize job: tune beta and E[I] on a sample of the job's own corpus
(or take them from a `tune-beta` report), write the report next to the dataset, and record
the tuning in the job's settings, which go to job.json and to the manifest's params.

A router whose budgets come from curves (gain2, fitted) is tuned on its per-corpus fit instead: the
job draws the fit's sample (`--fit-router N`), fits the router and tunes beta on the fit
(`tokenizer.tuning.fit_tune`), and records both; its record holds no E[I].

A resume finds the record in OUTPUT/job.json and re-uses its beta and E[I]: it never tunes
again. Asking a different tuning of an existing dataset is refused, as any other change
of settings is; `--overwrite` starts over (and tunes again).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from typing import Any

from pipeline.job.job import JobConfig, content_diff
from pipeline.job.prepare import OutputMismatchError
from pipeline.io.dataset import DatasetDir
from schemas.layout import JOB_FILE
from pipeline.tuning.report import TuningReport, read_report, report_paths, run_tuning, write_report
from pipeline.tuning.sample import SampleConfig
from pipeline.tuning.record import TuningRecord

logger = logging.getLogger(__name__)

# Decode settings a report must share with the job (they decide what a clip is).
_DECODE_KEYS = ("fps", "resolution", "resize_mode", "clip_frames", "clip_stride", "short_policy")


@dataclass(frozen=True)
class TuneRequest:
    """What `--beta auto` asks: a target (kind, value) tuned on the job's corpus with `sample`
    and `tune` (a tokenizer.tuning.budget.TuneConfig as a dict), or an existing report. fit_clips:
    for a router whose budgets come from curves, the target is tuned on its per-corpus fit, made on
    this many clips (`--fit-router N`; `sample` and `tune` are then not used)."""

    target_kind: str | None = None
    target_value: float | None = None
    report_uri: str | None = None
    sample: SampleConfig = SampleConfig()
    tune: dict[str, Any] = dataclasses.field(default_factory=dict)
    fit_clips: int | None = None

    def __post_init__(self) -> None:
        if (self.report_uri is None) == (self.target_kind is None):
            raise ValueError("--beta auto needs exactly one of a target (--target-rate, --target-bpp16, "
                             f"--target-psnr) or --tuning REPORT, got target {self.target_kind!r} and "
                             f"report {self.report_uri!r}")

    @property
    def source(self) -> str:
        return "report" if self.report_uri is not None else "tuned"

    def asked(self) -> dict[str, Any]:
        """The request in TuningRecord.request() terms (only what this request decides)."""
        if self.report_uri is not None:
            return {"source": "report", "report_uri": self.report_uri}
        if self.fit_clips is not None:  # the fit's sample is checked with the fit (`pipeline.job.router_fit`)
            from tokenizer.tuning.budget import FIT_MEAN_INFO

            return {"source": "tuned", "report_uri": "", "target_kind": self.target_kind,
                    "target_value": float(self.target_value), "mean_info_source": FIT_MEAN_INFO}
        psnr_clips = self.tune.get("psnr_clips", 8)
        return {"source": "tuned", "report_uri": "", "target_kind": self.target_kind,
                "target_value": float(self.target_value), "sample_clips": self.sample.clips,
                "clips_per_video": self.sample.clips_per_video, "seed": self.sample.seed,
                "psnr_clips": -1 if psnr_clips is None else int(psnr_clips),
                "mean_info_source": self.tune.get("mean_info", "dataset")}


def _read_job_content(job: JobConfig) -> dict[str, Any] | None:
    ds = DatasetDir(job.output, job.storage)
    if not ds.exists(JOB_FILE):
        return None
    return json.loads(ds.read(JOB_FILE)).get("content", {})


def _basis(record: TuningRecord) -> str:
    if record.expected_info is None:
        return f"on the {record.router} router's per-corpus fit"
    return f"E[I] {record.expected_info:.6g}"


def _with_tuning(job: JobConfig, record: TuningRecord) -> JobConfig:
    tok = dataclasses.replace(job.tokenize, beta=record.beta, expected_info=record.expected_info, tuning=record)
    return dataclasses.replace(job, tokenize=tok)


def _check_report_fits(report: TuningReport, job: JobConfig, uri: str) -> None:
    from tokenizer.checkpoint import DEFAULT_CHECKPOINT, read_header

    tid = read_header(job.tokenize.checkpoint or DEFAULT_CHECKPOINT).get("tokenizer_id")
    if report.tokenizer_id != tid:
        raise ValueError(f"tuning report {uri} was made with tokenizer {report.tokenizer_id}, the job uses {tid}")
    job_decode = job.decode.to_dict()
    diff = [f"{k}: {report.decode.get(k)!r} (report) vs {job_decode.get(k)!r} (job)" for k in _DECODE_KEYS
            if report.decode.get(k) != job_decode.get(k)]
    if diff:
        raise ValueError(f"tuning report {uri} was made with other decode settings: {'; '.join(diff)}")
    router = report.tune.get("router", "elbo")
    if router != job.tokenize.router:
        raise ValueError(f"tuning report {uri} was made for the {router} router, the job uses --router "
                         f"{job.tokenize.router}")
    if report.input.rstrip("/") != job.input.rstrip("/"):
        logger.warning("tuning report %s was made on %s, the job reads %s", uri, report.input, job.input)


def resolve_auto_beta(job: JobConfig, request: TuneRequest, overwrite: bool = False) -> JobConfig:
    """The job with beta, expected_info and the tuning record set (see the module doc)."""
    from tokenizer.tuning.budget import FIT_MEAN_INFO, TuneConfig, TuningTarget

    old = None if overwrite else _read_job_content(job)
    if old is not None:
        old_tok = old.get("tokenize", {})
        if old_tok.get("tuning") is None:
            raise OutputMismatchError(
                f"{job.output} holds a dataset made with a fixed beta {old_tok.get('beta')!r} (not tuned); "
                f"rerun with --beta {old_tok.get('beta')!r} to resume, or pass --overwrite to tune and start over")
        record = TuningRecord.from_dict(old_tok["tuning"])
        asked = request.asked()
        diff = content_diff({k: v for k, v in record.request().items() if k in asked}, asked)
        if diff:
            raise OutputMismatchError(
                f"{job.output} was tuned with another request ({'; '.join(diff)}); rerun with the same tuning "
                "options to resume, or pass --overwrite to tune again and start over")
        logger.info("%s: resuming with the recorded tuning (beta %.6f, %s); not tuning again", job.output,
                    record.beta, _basis(record))
        return _with_tuning(job, record)
    json_uri, png_uri = report_paths(job.output)
    if request.report_uri is not None:
        report, _ = read_report(request.report_uri, job.storage)
        _check_report_fits(report, job, request.report_uri)
    elif request.fit_clips is not None:  # fit the router and tune on its fit: one sample, one set of passes
        from pipeline.job.router_fit import FitRequest, fit_on_sample

        tune = TuneConfig(batch_size=job.tokenize.batch_size, autocast=job.tokenize.autocast,
                          router=job.tokenize.router, mean_info=FIT_MEAN_INFO, psnr_clips=None)
        fit, report = fit_on_sample(job, FitRequest(request.fit_clips),
                                    (TuningTarget(request.target_kind, float(request.target_value)), tune))
        assert report is not None
        job = dataclasses.replace(job, tokenize=dataclasses.replace(job.tokenize, fit=fit))
    else:
        report = run_tuning(job.source, job.decode, job.storage, job.tokenize.checkpoint, job.tokenize.device,
                            TuningTarget(request.target_kind, float(request.target_value)), request.sample,
                            TuneConfig.from_dict(dict(request.tune, batch_size=job.tokenize.batch_size,
                                                      autocast=job.tokenize.autocast, router=job.tokenize.router)))
    sha = write_report(report, json_uri, png_uri, job.storage)
    record = TuningRecord.from_report(report, sha, request.source, request.report_uri or "")
    logger.info("%s: tuned beta %.6f, %s (sample mean rate %.4f); report %s", job.output, record.beta,
                _basis(record), record.rate, json_uri)
    return _with_tuning(job, record)
