"""Rate-distortion harness for InfoTok (arXiv 2512.16975) and its baselines: one run, the
same clips, every method at equal total token count per beta.

Per beta, `infotok` runs first; every other method then keeps exactly as many tokens in
total over the clips (see `tokenizer.eval.baselines`). BPP16 = 16 * bits per pixel =
16 * tokens * log2(codebook) / (T * H * W); the `_mask` variant adds the t*h*w mask bits.
Passes per clip count what producing the tokens costs: base encoder passes, base decoder
passes (the router's full-rate decode, elastic's probes) and compressor passes; the final
reconstruction (one decompressor + decoder pass, the same for all) is not counted.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tokenizer.adaptive.model import AdaptiveTokenizer
from tokenizer.eval.baselines import POSITION_METHODS, apportion, elastic_search, equal_split, position_mask
from tokenizer.eval.metrics import psnr, ssim
from tokenizer.adaptive.router import check_beta, top_n_mask
from tokenizer.video import frames_to_tensor
from schemas.config import FrozenConfig

logger = logging.getLogger(__name__)

METHODS: tuple[str, ...] = ("infotok", "fixed", "raster", "jump", "random", "elastic", "full")


@dataclass(frozen=True)
class RDConfig(FrozenConfig):
    """methods: subset of METHODS ('full' = fixed-rate base model, once, beta ignored);
    betas: each in (0, 1]; mean_info: E[I] override (None: the checkpoint's)."""

    methods: tuple[str, ...] = ("infotok", "fixed", "random", "raster", "jump", "elastic")
    betas: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25)
    batch_size: int = 4
    seed: int = 0
    mean_info: float | None = None

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ValueError(f"unknown methods {bad}; choose from {METHODS}")
        for b in self.betas:
            check_beta(b)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class RDRow:
    """One method at one beta over all clips (means are per clip). psnr is the mean of per-clip
    PSNRs; psnr_pooled is the PSNR of the mean squared error over all clips (what a budget that
    minimises total error, as ELBO-proportional allocation does, optimises)."""

    method: str
    beta: float
    clips: int
    mean_tokens: float
    positions: int
    bpp16: float
    bpp16_mask: float
    psnr: float
    psnr_pooled: float
    ssim: float
    encoder_passes: float
    decoder_passes: float
    compressor_passes: float
    passes_per_clip: float
    clips_per_s: float
    extra: dict[str, float] = field(default_factory=dict)


def bpp16(tokens_per_clip: float, frames: int, height: int, width: int, codebook: int,
          mask_bits: int = 0) -> float:
    """16 * (tokens * log2(codebook) + mask_bits) / (frames * height * width)."""
    return 16.0 * (tokens_per_clip * math.log2(codebook) + mask_bits) / (frames * height * width)


def pooled_psnr(psnrs: list[float]) -> float:
    """PSNR of the mean MSE of clips with the given PSNRs (equal-size clips)."""
    mse = np.power(10.0, -np.asarray(psnrs, dtype=np.float64) / 10.0)
    return float(-10.0 * np.log10(mse.mean()))


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant."""
    def ranks(v: list[float]) -> np.ndarray:
        x = np.asarray(v, dtype=np.float64)
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x), dtype=np.float64)
        for value in np.unique(x):
            tie = x == value
            r[tie] = r[tie].mean()
        return r

    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"spearman needs two equal-length lists of >= 2 values, got {len(a)} and {len(b)}")
    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _batches(clips: list[np.ndarray], size: int, device: torch.device) -> list[tuple[int, torch.Tensor]]:
    return [(i, frames_to_tensor(np.stack(clips[i : i + size])).to(device)) for i in range(0, len(clips), size)]


def _row(method: str, beta: float, n_tokens: list[int], ps: list[float], ss: list[float], passes: tuple[float, float, float],
         seconds: float, shape: tuple[int, int, int], grid_n: int, codebook: int, extra: dict[str, float] | None = None
         ) -> RDRow:
    frames, h, w = shape
    mean_tokens = float(np.mean(n_tokens))
    enc, dec, comp = passes
    return RDRow(method=method, beta=beta, clips=len(n_tokens), mean_tokens=mean_tokens, positions=grid_n,
                 bpp16=bpp16(mean_tokens, frames, h, w, codebook),
                 bpp16_mask=bpp16(mean_tokens, frames, h, w, codebook, mask_bits=grid_n),
                 psnr=float(np.mean(ps)), psnr_pooled=pooled_psnr(ps), ssim=float(np.mean(ss)), encoder_passes=enc, decoder_passes=dec,
                 compressor_passes=comp, passes_per_clip=enc + dec + comp,
                 clips_per_s=len(n_tokens) / max(seconds, 1e-9), extra=extra or {})


@torch.no_grad()
def evaluate_rd(model: AdaptiveTokenizer, clips: list[np.ndarray], cfg: RDConfig) -> list[RDRow]:
    """Run every method of cfg at every beta on uint8 clips (T, H, W, 3) of one shape, on the
    model's device (float32 passes: the figures do not depend on a mixed-precision choice)."""
    if not clips:
        raise ValueError("evaluate_rd needs at least one clip")
    model.eval()
    batches = _batches(clips, cfg.batch_size, model.mean_info.device)
    shape = (clips[0].shape[0], clips[0].shape[1], clips[0].shape[2])
    codebook = model.base.fsq.codebook_size
    rows: list[RDRow] = []

    def score(y: torch.Tensor, x: torch.Tensor, ps: list[float], ss: list[float]) -> None:
        y = y.clamp(-1, 1)
        ps.extend(psnr(y, x).tolist())
        ss.extend(ssim(y, x).tolist())

    grid_n = 0
    if "full" in cfg.methods:  # the fixed-rate base; also the adaptive path with every token kept
        ps, ss, t0 = [], [], time.perf_counter()
        for _, x in batches:
            enc = model.base.encode(x)
            grid_n = enc.indices[0].numel()
            score(model.base.decode(enc.codes), x, ps, ss)
        seconds = time.perf_counter() - t0
        keep_all: list[float] = []
        for _, x in batches:
            enc = model.base.encode(x)
            y = model(x, torch.ones_like(enc.indices, dtype=torch.bool), encoding=enc).reconstruction
            keep_all.extend(psnr(y.clamp(-1, 1), x).tolist())
        rows.append(_row("full", 1.0, [grid_n] * len(clips), ps, ss, (1, 0, 0), seconds, shape, grid_n, codebook,
                         {"adaptive_keep_all_psnr": float(np.mean(keep_all))}))
    for beta in cfg.betas:
        # infotok: encode + router decode + compressor
        ps, ss, n_tok, l1, t0 = [], [], [], [], time.perf_counter()
        for _, x in batches:
            routing = model.route(x, beta, cfg.mean_info)
            y = model(x, routing.keep, encoding=routing.encoding).reconstruction
            score(y, x, ps, ss)
            l1.extend((y.clamp(-1, 1) - x).abs().flatten(1).mean(1).tolist())
            n_tok.extend(routing.n_keep.tolist())
            grid_n = routing.scores[0].numel()
        rows.append(_row("infotok", beta, n_tok, ps, ss, (1, 1, 1), time.perf_counter() - t0, shape, grid_n, codebook,
                         {"mean_rate": float(np.mean(n_tok)) / grid_n}))
        total = int(sum(n_tok))
        equal = equal_split(total, len(clips), grid_n)
        for method in cfg.methods:
            if method in ("infotok", "full"):
                continue
            ps, ss, counts, t0 = [], [], [], time.perf_counter()
            extra: dict[str, float] = {}
            if method == "fixed":
                passes: tuple[float, float, float] = (1, 1, 1)
                for i, x in batches:
                    enc, scores = model.information(x)
                    n = equal[i : i + x.shape[0]]
                    keep = top_n_mask(scores, torch.tensor(n))
                    score(model(x, keep, encoding=enc).reconstruction, x, ps, ss)
                    counts.extend(n)
            elif method in POSITION_METHODS:
                passes = (1, 0, 1)
                for i, x in batches:
                    enc = model.base.encode(x)
                    n = equal[i : i + x.shape[0]]
                    keep = position_mask(method, n, tuple(enc.indices.shape[1:]), cfg.seed + i).to(x.device)
                    score(model(x, keep, encoding=enc).reconstruction, x, ps, ss)
                    counts.extend(n)
            else:  # elastic: threshold = infotok's mean L1 error at this beta, then equal total rate
                threshold = float(np.mean(l1))
                encs, searched, probes = [], [], []
                for _, x in batches:
                    enc = model.base.encode(x)
                    found = elastic_search(model, x, enc, threshold)
                    encs.append(enc)
                    searched.extend(found.n_keep)
                    probes.extend(found.probes)
                final = apportion(total, [float(s) for s in searched], grid_n)
                for (i, x), enc in zip(batches, encs):
                    n = final[i : i + x.shape[0]]
                    keep = position_mask("raster", n, tuple(enc.indices.shape[1:])).to(x.device)
                    score(model(x, keep, encoding=enc).reconstruction, x, ps, ss)
                    counts.extend(n)
                mean_probes = float(np.mean(probes))
                passes = (1, mean_probes, mean_probes)
                extra = {"threshold_l1": threshold, "search_mean_tokens": float(np.mean(searched))}
            assert sum(counts) == total, (method, sum(counts), total)
            rows.append(_row(method, beta, counts, ps, ss, passes, time.perf_counter() - t0, shape, grid_n, codebook,
                             extra))
    return rows


@torch.no_grad()
def fewest_tokens_for_psnr(model: AdaptiveTokenizer, clips: list[np.ndarray], target_psnr: float,
                           batch_size: int = 4) -> tuple[list[float], list[int]]:
    """Per clip: I(x) and the fewest router-ordered tokens whose reconstruction reaches
    target_psnr (binary search; the full grid when even that misses). Returns (infos, counts)."""
    infos: list[float] = []
    counts: list[int] = []
    for _, x in _batches(clips, batch_size, model.mean_info.device):
        enc, scores = model.information(x)
        infos.extend(scores.flatten(1).mean(1).tolist())
        n = scores[0].numel()
        lo, hi = [1] * x.shape[0], [n] * x.shape[0]
        while any(a < b for a, b in zip(lo, hi)):
            mids = [(a + b) // 2 if a < b else b for a, b in zip(lo, hi)]
            keep = top_n_mask(scores, torch.tensor(mids))
            p = psnr(model(x, keep, encoding=enc).reconstruction.clamp(-1, 1), x).tolist()
            for i in range(x.shape[0]):
                if lo[i] < hi[i]:
                    if p[i] >= target_psnr:
                        hi[i] = mids[i]
                    else:
                        lo[i] = mids[i] + 1
        counts.extend(hi)
    return infos, counts


def plot_rd(rows: list[RDRow], path: str | Path, title: str = "") -> Path:
    """PNG of PSNR vs BPP16, one line per method (InfoTok also with its mask bits, dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for method in dict.fromkeys(r.method for r in rows):
        pts = sorted((r.bpp16, r.psnr) for r in rows if r.method == method)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=method)
        if method == "infotok":
            pm = sorted((r.bpp16_mask, r.psnr) for r in rows if r.method == method)
            ax.plot([p[0] for p in pm], [p[1] for p in pm], "k--", marker=".", label="infotok + mask bits")
    ax.set_xlabel("BPP16")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(title or "rate-distortion")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
