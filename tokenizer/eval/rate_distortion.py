"""Rate-distortion harness for the routers (elbo = InfoTok, arXiv 2512.16975; gain; gain2; latent)
and their baselines: one run, the same clips, every method at equal total token count per beta.

Per beta, the reference router (the first router listed) keeps its own budgets with its own
E[signal]; every other method then keeps exactly as many tokens in total over the clips:
another router splits that total in proportion to its clipped rates (its E[signal]
recalibrated on these clips; gain2 by bisection on its lam, `lagrange_counts`), `fixed` and
the position baselines split it evenly (see `tokenizer.eval.baselines`), and `oracle` splits it exactly on each clip's measured PSNR curve
(the upper bound for any budget rule). PSNR is reported three ways: the mean over clips, pooled
(of the mean MSE) and per video (TokenBench). BPP16 = 16 * bits per pixel =
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
from tokenizer.adaptive.router import budget_tokens, check_beta, top_n_mask
from tokenizer.adaptive.routers.base import Scored
from tokenizer.adaptive.routers.registry import ORACLE_ROUTER, PAPER_ROUTER, budget_rate, get_router, router_names
from tokenizer.eval.baselines import POSITION_METHODS, apportion, elastic_search, equal_split, position_mask
from tokenizer.eval.metrics import psnr, ssim
from tokenizer.eval.splits import ORACLE_RATES, lagrange_counts, oracle_counts, rescaled_counts
from tokenizer.video import frames_to_tensor
from schemas.config import FrozenConfig

logger = logging.getLogger(__name__)

# the methods besides the routers (`router_names()`, each its own method)
OTHER_METHODS: tuple[str, ...] = ("fixed", "raster", "jump", "random", "elastic", "oracle", "full")


def method_names() -> tuple[str, ...]:
    """Every method an RDConfig may list: each registered router, then the others."""
    return router_names() + OTHER_METHODS


@dataclass(frozen=True)
class RDConfig(FrozenConfig):
    """methods: subset of `method_names()` ('full' = fixed-rate base model, once, beta ignored);
    betas: each in (0, 1]; mean_info: E[signal] override for the reference router (None: the
    checkpoint's). The reference router is the first of elbo, gain, gain2, latent in `methods`: its
    total at each beta is what every other method keeps."""

    methods: tuple[str, ...] = ("elbo", "gain", "fixed", "random", "raster", "jump", "elastic", "oracle")
    betas: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25)
    batch_size: int = 4
    seed: int = 0
    mean_info: float | None = None

    def __post_init__(self) -> None:
        known = method_names()
        bad = [m for m in self.methods if m not in known]
        if bad or not self.methods:
            raise ValueError(f"unknown methods {bad}; choose from {known}")
        for b in self.betas:
            check_beta(b)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    @property
    def reference(self) -> str:
        """The router whose total every method keeps (elbo when no router is listed)."""
        return next((m for m in self.methods if m in router_names()), PAPER_ROUTER)


@dataclass(frozen=True)
class RDRow:
    """One method at one beta over all clips (means are per clip). psnr is the mean of per-clip
    PSNRs; psnr_pooled is the PSNR of the mean squared error over all clips (what a budget that
    minimises total error, as ELBO-proportional allocation does, optimises); psnr_video is the
    TokenBench figure: per video the PSNR of the MSE over its clips, then the mean over videos."""

    method: str
    beta: float
    clips: int
    mean_tokens: float
    positions: int
    bpp16: float
    bpp16_mask: float
    psnr: float
    psnr_pooled: float
    psnr_video: float
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


def video_psnr(psnrs: list[float], videos: list[str]) -> float:
    """Mean over videos of the PSNR of each video's mean clip MSE (equal-size clips)."""
    if len(psnrs) != len(videos):
        raise ValueError(f"{len(psnrs)} PSNRs for {len(videos)} video names")
    by: dict[str, list[float]] = {}
    for v, p in zip(videos, psnrs):
        by.setdefault(v, []).append(p)
    return float(np.mean([pooled_psnr(ps) for ps in by.values()]))


def _batches(clips: list[np.ndarray], size: int, device: torch.device) -> list[tuple[int, torch.Tensor]]:
    return [(i, frames_to_tensor(np.stack(clips[i : i + size])).to(device)) for i in range(0, len(clips), size)]


def _row(method: str, beta: float, n_tokens: list[int], ps: list[float], ss: list[float], videos: list[str],
         passes: tuple[float, float, float], seconds: float, shape: tuple[int, int, int], grid_n: int, codebook: int,
         extra: dict[str, float] | None = None) -> RDRow:
    frames, h, w = shape
    mean_tokens = float(np.mean(n_tokens))
    enc, dec, comp = passes
    return RDRow(method=method, beta=beta, clips=len(n_tokens), mean_tokens=mean_tokens, positions=grid_n,
                 bpp16=bpp16(mean_tokens, frames, h, w, codebook),
                 bpp16_mask=bpp16(mean_tokens, frames, h, w, codebook, mask_bits=grid_n),
                 psnr=float(np.mean(ps)), psnr_pooled=pooled_psnr(ps), psnr_video=video_psnr(ps, videos),
                 ssim=float(np.mean(ss)), encoder_passes=enc, decoder_passes=dec, compressor_passes=comp,
                 passes_per_clip=enc + dec + comp, clips_per_s=len(n_tokens) / max(seconds, 1e-9), extra=extra or {})


@dataclass
class _Scored:
    """One router's pass over every batch (independent of beta): per batch its `Scored`; gain2
    also its curves (clips, K) at curve_rates."""

    batches: list[Scored]
    signal: np.ndarray
    seconds: float
    curves: np.ndarray | None = None
    curve_rates: tuple[float, ...] = ()


def _score_all(model: AdaptiveTokenizer, batches: list[tuple[int, torch.Tensor]], router: str) -> _Scored:
    t0 = time.perf_counter()
    out = [model.score(x, router) for _, x in batches]
    curves = (torch.cat([s.curve for s in out]).double().cpu().numpy() if out and out[0].curve is not None else None)
    return _Scored(batches=out, signal=torch.cat([s.signal for s in out]).double().cpu().numpy(),
                   seconds=time.perf_counter() - t0, curves=curves, curve_rates=out[0].curve_rates if out else ())


@torch.no_grad()
def evaluate_rd(model: AdaptiveTokenizer, clips: list[np.ndarray], cfg: RDConfig,
                videos: list[str] | None = None) -> list[RDRow]:
    """Run every method of cfg at every beta on uint8 clips (T, H, W, 3) of one shape, on the
    model's device (float32 passes: the figures do not depend on a mixed-precision choice).
    videos: the source video of each clip, for per-video PSNR (None: each clip its own video)."""
    if not clips:
        raise ValueError("evaluate_rd needs at least one clip")
    videos = list(videos) if videos is not None else [str(i) for i in range(len(clips))]
    if len(videos) != len(clips):
        raise ValueError(f"{len(videos)} video names for {len(clips)} clips")
    model.eval()
    batches = _batches(clips, cfg.batch_size, model.mean_info.device)
    shape = (clips[0].shape[0], clips[0].shape[1], clips[0].shape[2])
    codebook = model.base.fsq.codebook_size
    rows: list[RDRow] = []

    def score(y: torch.Tensor, x: torch.Tensor, ps: list[float], ss: list[float]) -> None:
        y = y.clamp(-1, 1)
        ps.extend(psnr(y, x).tolist())
        ss.extend(ssim(y, x).tolist())

    def run_counts(scored: list[Scored], counts: list[int], ps: list[float], ss: list[float]) -> None:
        for (i, x), sc in zip(batches, scored):
            keep = sc.keep(torch.tensor(counts[i : i + x.shape[0]]))
            score(model(x, keep, encoding=sc.encoding).reconstruction, x, ps, ss)

    grid_n = int(np.prod(model.base.encode(batches[0][1][:1]).indices.shape[1:]))
    if "full" in cfg.methods:  # the fixed-rate base; also the adaptive path with every token kept
        ps, ss, t0 = [], [], time.perf_counter()
        for _, x in batches:
            enc = model.base.encode(x)
            score(model.base.decode(enc.codes), x, ps, ss)
        seconds = time.perf_counter() - t0
        keep_all: list[float] = []
        for _, x in batches:
            enc = model.base.encode(x)
            y = model(x, torch.ones_like(enc.indices, dtype=torch.bool), encoding=enc).reconstruction
            keep_all.extend(psnr(y.clamp(-1, 1), x).tolist())
        rows.append(_row("full", 1.0, [grid_n] * len(clips), ps, ss, videos, (1, 0, 0), seconds, shape, grid_n,
                         codebook, {"adaptive_keep_all_psnr": float(np.mean(keep_all))}))
    ref = cfg.reference
    routers = [m for m in cfg.methods if m in router_names()]
    scored = {r: _score_all(model, batches, r) for r in dict.fromkeys([ref, *routers])}
    if "fixed" in cfg.methods and PAPER_ROUTER not in scored:  # the fixed split keeps the paper's scores
        scored[PAPER_ROUTER] = _score_all(model, batches, PAPER_ROUTER)
    curves = None
    if "oracle" in cfg.methods:  # each clip's curve, once: PSNR at ORACLE_RATES by the oracle router's scores
        if ORACLE_ROUTER not in scored:
            scored[ORACLE_ROUTER] = _score_all(model, batches, ORACLE_ROUTER)
        t0 = time.perf_counter()
        per_rate = []
        for r in ORACLE_RATES:
            ps_r: list[float] = []
            run_counts(scored[ORACLE_ROUTER].batches,
                       [int(v) for v in budget_tokens(torch.full((len(clips),), r), grid_n)],
                       ps_r, [])
            per_rate.append(ps_r)
        curves = np.asarray(per_rate, dtype=np.float64).T  # (clips, rates)
        curve_seconds = time.perf_counter() - t0
    mean_ref = cfg.mean_info if cfg.mean_info is not None else model.mean_signal(ref)
    for beta in cfg.betas:
        if get_router(ref).budgets_from_curves:  # the router's own rule (gain2: its calibration's lam), batch by batch
            betas = torch.full((1,), float(beta))
            n_ref = torch.cat([budget_tokens(model.budget(sc, betas.expand(sc.signal.shape[0]), cfg.mean_info),
                                             grid_n) for sc in scored[ref].batches]).tolist()
        else:
            sig = torch.from_numpy(scored[ref].signal)
            n_ref = budget_tokens(budget_rate(sig, beta, mean_ref, ref), grid_n).tolist()
        total = int(sum(n_ref))
        for method in cfg.methods:
            if method == "full":
                continue
            ps, ss, counts, t0 = [], [], [], time.perf_counter()
            extra: dict[str, float] = {}
            seconds_before = 0.0
            if method in routers:
                if method == ref:
                    counts = n_ref
                elif get_router(method).budgets_from_curves:
                    counts = lagrange_counts(scored[method].curves, scored[method].curve_rates, total, grid_n)
                else:
                    counts = rescaled_counts(scored[method].signal, total, grid_n)
                run_counts(scored[method].batches, counts, ps, ss)
                passes = get_router(method).passes(model)
                seconds_before = scored[method].seconds
                extra = {"mean_rate": float(np.mean(counts)) / grid_n,
                         "mean_signal": float(np.mean(scored[method].signal))}
            elif method == "fixed":
                counts = equal_split(total, len(clips), grid_n)
                run_counts(scored[PAPER_ROUTER].batches, counts, ps, ss)
                passes = (1, 1, 1)
                seconds_before = scored[PAPER_ROUTER].seconds
            elif method == "oracle":
                assert curves is not None
                counts = oracle_counts(curves, ORACLE_RATES, total, grid_n)
                run_counts(scored[ORACLE_ROUTER].batches, counts, ps, ss)
                passes = (1, float(len(ORACLE_RATES) + 1), float(len(ORACLE_RATES) + 2))
                seconds_before = scored[ORACLE_ROUTER].seconds + curve_seconds
            elif method in POSITION_METHODS:
                passes = (1, 0, 1)
                counts = equal_split(total, len(clips), grid_n)
                for i, x in batches:
                    enc = model.base.encode(x)
                    n = counts[i : i + x.shape[0]]
                    keep = position_mask(method, n, tuple(enc.indices.shape[1:]), cfg.seed + i).to(x.device)
                    score(model(x, keep, encoding=enc).reconstruction, x, ps, ss)
            else:  # elastic: threshold = the reference router's mean L1 error at this beta, then equal total rate
                l1 = []
                for (i, x), sc in zip(batches, scored[ref].batches):
                    keep = sc.keep(torch.tensor(n_ref[i : i + x.shape[0]]))
                    y = model(x, keep, encoding=sc.encoding).reconstruction.clamp(-1, 1)
                    l1.extend((y - x).abs().flatten(1).mean(1).tolist())
                threshold = float(np.mean(l1))
                t0 = time.perf_counter()
                encs, searched, probes = [], [], []
                for _, x in batches:
                    enc = model.base.encode(x)
                    found = elastic_search(model, x, enc, threshold)
                    encs.append(enc)
                    searched.extend(found.n_keep)
                    probes.extend(found.probes)
                counts = apportion(total, [float(s) for s in searched], grid_n)
                for (i, x), enc in zip(batches, encs):
                    keep = position_mask("raster", counts[i : i + x.shape[0]], tuple(enc.indices.shape[1:])).to(x.device)
                    score(model(x, keep, encoding=enc).reconstruction, x, ps, ss)
                mean_probes = float(np.mean(probes))
                passes = (1, mean_probes, mean_probes)
                extra = {"threshold_l1": threshold, "search_mean_tokens": float(np.mean(searched))}
            assert sum(counts) == total, (method, sum(counts), total)
            rows.append(_row(method, beta, counts, ps, ss, videos, passes,
                             time.perf_counter() - t0 + seconds_before, shape, grid_n, codebook, extra))
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
    """PNG of PSNR vs BPP16, one line per method (the elbo router also with its mask bits, dashed);
    a second panel shows the per-video PSNR."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, key, label in ((axes[0], "psnr", "mean PSNR over clips (dB)"), (axes[1], "psnr_video", "per-video PSNR (dB)")):
        for method in dict.fromkeys(r.method for r in rows):
            pts = sorted((r.bpp16, getattr(r, key)) for r in rows if r.method == method)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=method)
            if method == PAPER_ROUTER:  # the paper's rows also with the mask's bits
                pm = sorted((r.bpp16_mask, getattr(r, key)) for r in rows if r.method == method)
                ax.plot([p[0] for p in pm], [p[1] for p in pm], "k--", marker=".", label="elbo + mask bits")
        ax.set_xlabel("BPP16")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_title(title or "rate-distortion", fontsize=9)
    axes[0].legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
