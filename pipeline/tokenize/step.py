"""Tokenize step: decoded clips -> token rows, with the model held by the worker.

Built inside a Ray actor (or directly, without Ray). Clips are batched in the order they
arrive, with a fixed batch size, so a shard's output never depends on timing.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from schemas.config import FrozenConfig
from pipeline.decode.step import Clip, SourceInfo
from pipeline.job.fit_record import FitRecord
from pipeline.tuning.record import TuningRecord
from tokenizer.adaptive.routers.registry import DEFAULT_BETA, DEFAULT_ROUTER, check_router_name
from schemas.tokens import ClipTokens, TokenFileMeta
from tokenizer.device import check_device_spec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenizeConfig(FrozenConfig):
    """checkpoint: tokenizer file (None: the shipped default). beta: compression knob in (0, 1].
    router: which router sets the budgets (`tokenizer.adaptive.routers.registry.router_names()`; unused by a fixed-rate
    checkpoint). expected_info: the router's E[signal] override (None: the checkpoint's).
    device: 'auto', 'cpu' or 'cuda[:n]'.
    batch_size: clips per model call. autocast: bf16 autocast on CUDA.
    tuning: how beta and expected_info were tuned (`--beta auto`), None when given directly;
    part of the job's content, so a resume re-uses the tuned values instead of re-tuning.
    fit: the router's per-corpus fit (`--fit-router N`), None without one; every worker routes
    with it, and a resume re-uses it instead of fitting again."""

    checkpoint: str | None = None
    beta: float = DEFAULT_BETA
    router: str = DEFAULT_ROUTER
    expected_info: float | None = None
    device: str = "auto"
    batch_size: int = 8
    autocast: bool = True
    tuning: TuningRecord | None = None
    fit: FitRecord | None = None

    def __post_init__(self) -> None:
        if self.tuning is not None and (self.tuning.beta != self.beta or self.tuning.expected_info != self.expected_info):
            raise ValueError(f"beta {self.beta!r} / expected_info {self.expected_info!r} differ from the tuning record's "
                             f"{self.tuning.beta!r} / {self.tuning.expected_info!r}")
        if not (isinstance(self.beta, (int, float)) and math.isfinite(self.beta) and 0 < self.beta <= 1):
            raise ValueError(f"beta must be in (0, 1], got {self.beta!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        check_router_name(self.router)
        if self.tuning is not None and self.tuning.router != self.router:
            raise ValueError(f"router {self.router!r} differs from the tuning record's {self.tuning.router!r}")
        if self.fit is not None and self.fit.router != self.router:
            raise ValueError(f"router {self.router!r} differs from the fit record's {self.fit.router!r}")
        if self.expected_info is not None and not self.expected_info > 0:
            raise ValueError(f"expected_info must be > 0, got {self.expected_info}")
        check_device_spec(self.device)


@dataclass(frozen=True)
class PendingClip:
    """A decoded clip waiting for the model, with what its row needs."""

    video_id: str
    uri: str
    source: SourceInfo
    clip: Clip


class TokenizeStep:
    """list[PendingClip] -> list[ClipTokens], in input order. Heavy state lives here."""

    def __init__(self, config: TokenizeConfig) -> None:
        import torch

        from tokenizer.api import load_clip_tokenizer
        from tokenizer.device import resolve_device

        self.config = config
        self.device = resolve_device(config.device)
        fit = config.fit.corpus_fit() if config.fit is not None else None
        self.tokenizer = load_clip_tokenizer(config.checkpoint, device=self.device, router=config.router, fit=fit)
        expected = config.expected_info or self.tokenizer.expected_info
        if expected is None:
            raise ValueError(f"checkpoint {config.checkpoint or 'default'} has no calibrated E[signal] for the "
                             f"{config.router} router; run `infotok calibrate --router {config.router}`")
        self.expected_info = float(expected)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True

    @property
    def passes(self) -> tuple[float, float, float]:
        """(encoder, decoder, compressor) model passes per clip (what its router costs)."""
        return self.tokenizer.passes

    @property
    def file_meta(self) -> TokenFileMeta:
        return TokenFileMeta(tokenizer_id=self.tokenizer.tokenizer_id, beta=float(self.config.beta),
                             expected_info=float(self.expected_info), router=self.tokenizer.router)

    def __call__(self, pending: list[PendingClip]) -> list[ClipTokens]:
        import torch

        from tokenizer.device import mixed_precision
        from tokenizer.video import frames_to_tensor

        rows: list[ClipTokens] = []
        bs = self.config.batch_size
        for i in range(0, len(pending), bs):
            part = pending[i : i + bs]
            shapes = {p.clip.frames.shape for p in part}
            if len(shapes) != 1:
                raise ValueError(f"clips of one batch must share a shape, got {sorted(shapes)}")
            video = frames_to_tensor(np.stack([p.clip.frames for p in part])).to(self.device)
            with torch.no_grad(), mixed_precision(self.device, self.config.autocast):
                # only a given E[signal] overrides the model's own (the same value otherwise): a router whose
                # budgets come from curves (gain2, fitted) refuses one
                out = self.tokenizer.tokenize(video, beta=self.config.beta, expected_info=self.config.expected_info)
            for p, tok in zip(part, out):
                c, s = p.clip, p.source
                rows.append(ClipTokens(
                    video_id=p.video_id, source_uri=p.uri, clip_index=c.clip_index, frame_start=c.frame_start,
                    frame_count=c.frame_count, fps=float(c.fps), height=int(c.frames.shape[1]),
                    width=int(c.frames.shape[2]), grid=tok.grid, tokens=tok.tokens, mask=tok.mask,
                    rate=float(tok.rate), info=float(tok.info), beta=float(self.config.beta),
                    source_duration_s=float(s.duration_s) if s.duration_s else None, source_fps=float(s.fps),
                    source_height=int(s.height), source_width=int(s.width),
                ))
        return rows
