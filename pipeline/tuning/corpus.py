"""Beta tuning of a corpus (InfoTok, arXiv 2512.16975): a deterministic sample of clips read
through the pipeline's own listing, fetch and decode path, handed to `tokenizer.tuning.search`, and
the report (JSON + PNG) written to any storage.

Sampling: the sorted listing is permuted with `seed`; videos are taken in that order, each
decoded with the job's DecodeConfig (at most `decode_clips` clips, the first ones), and
`clips_per_video` of its clips drawn with a generator seeded by (seed, listing index),
until `clips` clips are held. Same listing + same seed -> the same sample, whatever the
timing. Clips of one video are one sampling unit for the confidence intervals.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.decode.step import DecodeConfig, DecodedVideo, DecodeStep
from pipeline.decode.failures import VideoFailure
from pipeline.io.fetch import fetch_bytes
from pipeline.io.inputs import InputConfig, ManifestEntry, list_inputs
from pipeline.io.storage import StorageConfig, filesystem, join, with_retries
from schemas.config import check_keys

logger = logging.getLogger(__name__)

REPORT_FORMAT = "infotok-beta-tuning"
REPORT_VERSION = "1"


@dataclass(frozen=True)
class SampleConfig:
    """clips: sample size; clips_per_video: clips drawn per sampled video (clips of one video are
    alike, so one each from more videos estimates the corpus better for the same model cost);
    seed: of the draw; decode_clips: clips decoded per sampled video to draw from (the first
    ones: bounds decoding, at the price of favouring the start of long videos);
    workers: parallel decodes."""

    clips: int = 160
    clips_per_video: int = 1
    seed: int = 0
    decode_clips: int = 8
    workers: int = 2

    def __post_init__(self) -> None:
        for name in ("clips", "clips_per_video", "decode_clips", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"sample {name} must be >= 1, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SampleConfig:
        check_keys(cls, d)
        return cls(**d)


@dataclass(frozen=True, eq=False)
class SampledClip:
    """frames: uint8 (T, H, W, 3) as the pipeline would tokenize them."""

    video_id: str
    uri: str
    clip_index: int
    frame_start: int
    frames: np.ndarray

    def ident(self) -> dict[str, Any]:
        return {"video_id": self.video_id, "uri": self.uri, "clip_index": self.clip_index,
                "frame_start": self.frame_start}


@dataclass(frozen=True)
class Sample:
    clips: list[SampledClip]
    videos_listed: int
    videos_used: int
    failures: list[VideoFailure]


def _decode_one(entry: ManifestEntry, step: DecodeStep, storage: StorageConfig) -> DecodedVideo | VideoFailure:
    data = fetch_bytes(entry.uri, storage)
    if isinstance(data, VideoFailure):
        return data
    return step(data, entry.uri)


def sample_clips(source: InputConfig, decode: DecodeConfig, storage: StorageConfig, cfg: SampleConfig) -> Sample:
    """Draw the sample (see the module doc). Bad videos are skipped and reported, never fatal."""
    entries = list_inputs(source, storage)
    if not entries:
        raise ValueError(f"no videos found under {source.uri!r} to tune beta on")
    order = np.random.default_rng(cfg.seed).permutation(len(entries)).tolist()
    max_clips = min(decode.max_clips or cfg.decode_clips, cfg.decode_clips)
    step = DecodeStep(dataclasses.replace(decode, max_clips=max_clips))
    clips: list[SampledClip] = []
    failures: list[VideoFailure] = []
    used = 0
    with ThreadPoolExecutor(max_workers=cfg.workers) as pool:
        for start in range(0, len(order), cfg.workers):
            window = order[start : start + cfg.workers]
            results = list(pool.map(lambda k: _decode_one(entries[k], step, storage), window))
            for k, result in zip(window, results):
                if len(clips) >= cfg.clips:
                    break
                if isinstance(result, VideoFailure):
                    logger.warning("tuning sample: skipping %s", result.message)
                    failures.append(result)
                    continue
                if not result.clips:
                    continue
                rng = np.random.default_rng([cfg.seed, k])
                n = min(cfg.clips_per_video, len(result.clips), cfg.clips - len(clips))
                picked = sorted(rng.choice(len(result.clips), size=n, replace=False).tolist())
                used += 1
                clips += [SampledClip(video_id=entries[k].video_id, uri=entries[k].uri, clip_index=c.clip_index,
                                      frame_start=c.frame_start, frames=c.frames)
                          for c in (result.clips[i] for i in picked)]
            if len(clips) >= cfg.clips:
                break
    if not clips:
        raise ValueError(f"no decodable clips under {source.uri!r} ({len(failures)} of {len(entries)} videos failed)")
    logger.info("tuning sample: %d clips from %d of %d videos (seed %d)", len(clips), used, len(entries), cfg.seed)
    return Sample(clips=clips, videos_listed=len(entries), videos_used=used, failures=failures)


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


def run_tuning(source: InputConfig, decode: DecodeConfig, storage: StorageConfig, checkpoint: str | None,
               device: str, target: Any, sample_cfg: SampleConfig, tune_cfg: Any) -> TuningReport:
    """Sample the corpus, load the adaptive tokenizer, tune. target: TuningTarget; tune_cfg: TuneConfig."""
    from tokenizer.checkpoint import load_tokenizer
    from tokenizer.device import resolve_device
    from tokenizer.tuning.search import tune_beta

    tok = load_tokenizer(checkpoint, device=resolve_device(device))
    if tok.adaptive is None:
        raise ValueError(f"beta tuning needs an adaptive (InfoTok) checkpoint; {tok.path} is fixed-rate "
                         f"({tok.tokenizer_id})")
    sample = sample_clips(source, decode, storage, sample_cfg)
    result = tune_beta(tok.adaptive, [c.frames for c in sample.clips], [c.video_id for c in sample.clips],
                       target, tune_cfg)
    return TuningReport(
        tokenizer_id=tok.tokenizer_id, checkpoint=checkpoint, input=source.uri, decode=decode.to_dict(),
        sample={**sample_cfg.to_dict(), "videos_listed": sample.videos_listed, "videos_used": sample.videos_used,
                "failures": [f.to_dict() for f in sample.failures], "ids": [c.ident() for c in sample.clips]},
        tune=tune_cfg.to_dict(), result=result,
        created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )


def write_report(report: TuningReport, json_uri: str, png_uri: str | None, storage: StorageConfig) -> str:
    """Write the report JSON (and the figure); return the JSON's sha256."""
    from pipeline.io.writer import put_atomic
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
    from pipeline.tuning.record import FIGURE_NAME, REPORT_NAME

    return join(folder, REPORT_NAME), join(folder, FIGURE_NAME)
