"""A beta tuning of a corpus and its report (InfoTok, arXiv 2512.16975): the sample
(`pipeline.tuning.sample`) handed to the model-side search (`tokenizer.tuning.search`), the result
with its provenance as one JSON report plus a figure, written to any storage.

The three shapes of a tuning, each for one reader: `TuningResult` (the model side: what the
search found on arrays), `TuningReport` (that result plus where it came from: checkpoint, input,
decode settings, the sample; the file a user keeps) and `TuningRecord` (the flat subset a dataset
keeps in its job settings, built only by `TuningRecord.from_report`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from pipeline.decode.step import DecodeConfig
from pipeline.io.inputs import InputConfig
from pipeline.io.storage import StorageConfig, filesystem, put_atomic, with_retries
from pipeline.tuning.sample import SampleConfig, sample_clips
from schemas.layout import TUNING_FIGURE, TUNING_REPORT, join

logger = logging.getLogger(__name__)

REPORT_FORMAT = "infotok-beta-tuning"
REPORT_VERSION = "1"


@dataclass(frozen=True)
class TuningReport:
    """A tuning with its provenance. result: `tokenizer.tuning.search.TuningResult`."""

    tokenizer_id: str
    checkpoint: str | None
    input: str
    decode: dict[str, Any]
    sample: dict[str, Any]
    tune: dict[str, Any]
    result: Any  # TuningResult (typed loosely so that this module imports without torch)
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["result"] = self.result.to_dict()
        return {"format": REPORT_FORMAT, "version": REPORT_VERSION, **d}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TuningReport:
        from tokenizer.tuning.search import TuningResult

        if d.get("format") != REPORT_FORMAT or d.get("version") != REPORT_VERSION:
            raise ValueError(f"not an infotok beta tuning report (format {d.get('format')!r}, "
                             f"version {d.get('version')!r}; expected {REPORT_FORMAT!r} {REPORT_VERSION!r})")
        body = {k: v for k, v in d.items() if k not in ("format", "version")}
        names = {f.name for f in dataclasses.fields(cls)}
        if set(body) != names:
            raise ValueError(f"tuning report keys: unknown {sorted(set(body) - names)}, "
                             f"missing {sorted(names - set(body))}")
        return cls(**dict(body, result=TuningResult.from_dict(body["result"])))


def tuning_report(tokenizer_id: str, checkpoint: str | None, source: InputConfig, decode: DecodeConfig,
                  sample_cfg: SampleConfig, sample: Any, tune_cfg: Any, result: Any) -> TuningReport:
    """The report of `result` (a TuningResult) tuned on `sample` (a `pipeline.tuning.sample` sample)."""
    return TuningReport(
        tokenizer_id=tokenizer_id, checkpoint=checkpoint, input=source.uri, decode=decode.to_dict(),
        sample={**sample_cfg.to_dict(), "videos_listed": sample.videos_listed, "videos_used": sample.videos_used,
                "failures": [f.to_dict() for f in sample.failures], "ids": [c.ident() for c in sample.clips]},
        tune=tune_cfg.to_dict(), result=result,
        created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )


def tune_with_fit(model: Any, router: str, sample: Any, target: Any, tune_cfg: Any) -> tuple[Any, Any]:
    """Fit `router` (one whose budgets come from curves) on the sample and tune beta on the fit:
    (TuningResult, CorpusFit). model: the AdaptiveTokenizer; target: TuningTarget."""
    import time

    import torch

    from tokenizer.adaptive.fitting import fit_router
    from tokenizer.tuning.fit_tune import tune_on_fit
    from tokenizer.video import frames_to_tensor

    frames = [c.frames for c in sample.clips]
    t0 = time.perf_counter()
    fit = fit_router(model, router, frames, tune_cfg.batch_size)
    seconds = time.perf_counter() - t0
    with torch.no_grad():  # the token grid of the sample's clips (they share one shape)
        positions = model.base.encode(frames_to_tensor(frames[0][None]).to(model.mean_info.device)).indices[0].numel()
    result = tune_on_fit(fit, target, positions, frames[0].shape[0] * frames[0].shape[1] * frames[0].shape[2],
                         model.base.fsq.codebook_size, [c.video_id for c in sample.clips], tune_cfg.grid_size,
                         seconds)
    return result, fit


def run_tuning(source: InputConfig, decode: DecodeConfig, storage: StorageConfig, checkpoint: str | None,
               device: str, target: Any, sample_cfg: SampleConfig, tune_cfg: Any) -> TuningReport:
    """Sample the corpus, load the adaptive tokenizer, tune. target: TuningTarget; tune_cfg: TuneConfig
    (mean_info 'fit': fit the router on the sample and tune on the fit, `tune_with_fit`)."""
    from tokenizer.checkpoint import load_tokenizer
    from tokenizer.device import resolve_device
    from tokenizer.tuning.budget import FIT_MEAN_INFO
    from tokenizer.tuning.search import tune_beta

    tok = load_tokenizer(checkpoint, device=resolve_device(device))
    if tok.adaptive is None:
        raise ValueError(f"beta tuning needs an adaptive (InfoTok) checkpoint; {tok.path} is fixed-rate "
                         f"({tok.tokenizer_id})")
    sample = sample_clips(source, decode, storage, sample_cfg)
    if tune_cfg.mean_info == FIT_MEAN_INFO:
        result, _ = tune_with_fit(tok.adaptive, tune_cfg.router, sample, target, tune_cfg)
    else:
        result = tune_beta(tok.adaptive, [c.frames for c in sample.clips], [c.video_id for c in sample.clips],
                           target, tune_cfg)
    return tuning_report(tok.tokenizer_id, checkpoint, source, decode, sample_cfg, sample, tune_cfg, result)


def write_report(report: TuningReport, json_uri: str, png_uri: str | None, storage: StorageConfig) -> str:
    """Write the report JSON (and the figure); return the JSON's sha256."""
    from tokenizer.tuning.plot import tuning_figure_png

    text = report.to_json().encode()
    put_atomic(json_uri, text, storage)
    if png_uri:
        put_atomic(png_uri, tuning_figure_png(report.result, title=f"beta tuning of {report.input}"), storage)
    return hashlib.sha256(text).hexdigest()


def read_report(uri: str, storage: StorageConfig) -> tuple[TuningReport, str]:
    """(report, sha256 of its bytes)."""
    fs, path = filesystem(uri, storage)
    data = with_retries(lambda: fs.cat_file(path), f"read {uri}")
    try:
        return TuningReport.from_dict(json.loads(data)), hashlib.sha256(data).hexdigest()
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{uri} is not a readable tuning report: {exc}") from exc


def report_paths(folder: str) -> tuple[str, str]:
    """(json, png) locations of a report written into folder."""
    return join(folder, TUNING_REPORT), join(folder, TUNING_FIGURE)
