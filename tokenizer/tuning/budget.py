"""Tuning beta per dataset for InfoTok (arXiv 2512.16975): the exact rate side.

InfoTok's budget is r_x = clip(beta * I(x) / E[I], 1/16, 1), N_x = round(r_x * t*h*w). Once
the router has scored a sample of clips (one encode + one full-rate decode per clip), the
mean rate and BPP16 of the sample at *any* beta follow from the cached I(x) alone, with the
router's own `budget_rate` / `budget_tokens`: the sweep and the search cost no model pass.
Both are non-decreasing step functions of beta, so the target is found by bisection.

The budget depends on beta / E[I] only. With E[I] recalibrated on the dataset, beta = 1
means "the clip of average information keeps every token"; the highest mean rate reachable
with beta <= 1 is then mean_x min(1, I(x) / E[I]) < 1, and the lowest is the 1/16 floor.
Targets outside that range raise `TargetOutOfReach`, which names the reachable range.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from schemas.config import FrozenConfig
from tokenizer.adaptive.model import AdaptiveTokenizer
from tokenizer.nn.model import Encoding
from tokenizer.adaptive.router import MIN_RATE, budget_tokens
from tokenizer.adaptive.routers.registry import PAPER_ROUTER, budget_rate, check_mean_info, get_router
from tokenizer.video import frames_to_tensor

logger = logging.getLogger(__name__)

TARGET_KINDS: tuple[str, ...] = ("rate", "bpp16", "psnr")
FIT_MEAN_INFO = "fit"  # the mean_info (source) of a tuning on a router's per-corpus fit (`tokenizer.tuning.fit_tune`)
MEAN_INFO_SOURCES: tuple[str, ...] = ("dataset", "checkpoint", FIT_MEAN_INFO)
BETA_DECIMALS = 6  # a chosen beta is rounded down to this many decimals (stays within the budget)
_BISECT_STEPS = 64


class TargetOutOfReach(ValueError):
    """No beta in (0, 1] meets the target on this sample; the message names the reachable range."""

    def __init__(self, message: str, reachable: tuple[float, float]) -> None:
        super().__init__(message)
        self.reachable = reachable


@dataclass(frozen=True)
class TuningTarget(FrozenConfig):
    """What the user cares about. kind: 'rate' (mean kept fraction of the token grid, a budget:
    the chosen beta keeps the sample's mean rate <= value), 'bpp16' (the same budget in
    16 x bits per pixel, mask bits excluded as in the paper) or 'psnr' (a floor in dB: the
    smallest beta whose decoded mean PSNR on the sample is >= value)."""

    kind: str
    value: float

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise ValueError(f"target kind must be one of {TARGET_KINDS}, got {self.kind!r}")
        if not (isinstance(self.value, (int, float)) and math.isfinite(self.value) and self.value > 0):
            raise ValueError(f"target {self.kind} must be a finite number > 0, got {self.value!r}")
        object.__setattr__(self, "value", float(self.value))


@dataclass(frozen=True)
class TuneConfig(FrozenConfig):
    """How the sweep runs.

    grid_size: betas of the reported curve (geometric from the rate floor's beta to 1).
    psnr_clips: sample clips decoded for PSNR / SSIM (None: all; spread evenly over the sample).
    psnr_steps: bisection steps between the two grid betas that bracket a PSNR target.
    mean_info: 'dataset' (recalibrate the router's E[signal] as the sample mean) or 'checkpoint'; 'fit'
    for a router whose budgets come from curves (gain2, fitted: beta is tuned on its per-corpus fit,
    `tokenizer.tuning.fit_tune`), and only for one.
    batch_size: clips per model call. autocast: bf16 autocast on CUDA (as the pipeline).
    router: the router whose budgets are tuned (a report written before routers were
    recorded was tuned with `elbo`).
    """

    grid_size: int = 10
    psnr_clips: int | None = 8
    psnr_steps: int = 5
    mean_info: str = "dataset"
    batch_size: int = 8
    autocast: bool = True
    router: str = PAPER_ROUTER

    def __post_init__(self) -> None:
        on_fit = get_router(self.router).budgets_from_curves
        if on_fit != (self.mean_info == FIT_MEAN_INFO):
            raise ValueError(f"mean_info 'fit' is for a router whose budgets come from curves (beta tuned on its "
                             f"fit), and only for one: got {self.mean_info!r} for the {self.router} router")
        if self.grid_size < 2:
            raise ValueError(f"grid_size must be >= 2, got {self.grid_size}")
        if self.psnr_clips is not None and self.psnr_clips < 0:
            raise ValueError(f"psnr_clips must be None or >= 0, got {self.psnr_clips}")
        if self.psnr_steps < 0:
            raise ValueError(f"psnr_steps must be >= 0, got {self.psnr_steps}")
        if self.mean_info not in MEAN_INFO_SOURCES:
            raise ValueError(f"mean_info must be one of {MEAN_INFO_SOURCES}, got {self.mean_info!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class ScoreCache:
    """One router pass over the sample, kept for the whole sweep.

    scores: per clip (t, h, w) float32 CPU token scores l; info: (N,) float32 I(x), the same
    values `AdaptiveTokenizer.route` computes; shapes: per clip (T, H, W) in pixels;
    latents: clip index -> its `Encoding` (batch of 1, on the model's device) for the clips
    that will be decoded; frames: clip index -> uint8 (T, H, W, 3) of the same clips;
    codebook: FSQ codebook size; seconds: wall time of the pass.
    """

    scores: list[torch.Tensor]
    info: torch.Tensor
    shapes: list[tuple[int, int, int]]
    latents: dict[int, Encoding]
    frames: dict[int, np.ndarray]
    codebook: int
    seconds: float

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def positions(self) -> np.ndarray:
        """(N,) int64 t*h*w per clip."""
        return np.array([s.numel() for s in self.scores], dtype=np.int64)

    @property
    def pixels(self) -> np.ndarray:
        """(N,) int64 T*H*W per clip."""
        return np.array([t * h * w for t, h, w in self.shapes], dtype=np.int64)


def _same_shape_batches(clips: Sequence[np.ndarray], size: int) -> list[list[int]]:
    """Consecutive runs of clips with one shape, cut into batches of at most `size`."""
    batches: list[list[int]] = []
    for i, clip in enumerate(clips):
        if batches and len(batches[-1]) < size and clips[batches[-1][0]].shape == clip.shape:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


@torch.no_grad()
def collect_scores(model: AdaptiveTokenizer, clips: Sequence[np.ndarray], batch_size: int = 8,
                   keep: Collection[int] = (), autocast: bool = True, router: str = PAPER_ROUTER) -> ScoreCache:
    """Run the router's scoring on every uint8 clip (T, H, W, 3) once; keep encoder latents of `keep`."""
    if not clips:
        raise ValueError("beta tuning needs at least one clip, got none")
    device = model.mean_info.device
    use_amp = autocast and device.type == "cuda"
    keep = set(keep)
    scores: list[torch.Tensor] = []
    infos: list[torch.Tensor] = []
    latents: dict[int, Encoding] = {}
    t0 = time.perf_counter()
    for idx in _same_shape_batches(clips, batch_size):
        x = frames_to_tensor(np.stack([clips[i] for i in idx])).to(device)  # (B, 3, T, H, W)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
            scored = model.score(x, router)
        enc, s = scored.encoding, scored.scores  # s: (B, t, h, w)
        infos.append(scored.signal.float().cpu())  # (B,)
        scores.extend(s.float().cpu().unbind(0))
        for j, i in enumerate(idx):
            if i in keep:
                latents[i] = Encoding(latent=enc.latent[j : j + 1], codes=enc.codes[j : j + 1],
                                      indices=enc.indices[j : j + 1])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    return ScoreCache(scores=scores, info=torch.cat(infos), shapes=[tuple(c.shape[:3]) for c in clips],
                      latents=latents, frames={i: clips[i] for i in sorted(keep)},
                      codebook=model.base.fsq.codebook_size, seconds=seconds)


def n_keep_at(cache: ScoreCache, beta: float, mean_info: float) -> np.ndarray:
    """(N,) int64 N_x at beta, computed exactly as the router does (same functions, same dtypes)."""
    rate = budget_rate(cache.info, beta, mean_info)  # (N,) float32, beta validated in (0, 1]
    positions = cache.positions
    out = np.empty(len(cache), dtype=np.int64)
    for n in np.unique(positions):
        sel = positions == n
        out[sel] = budget_tokens(rate[torch.from_numpy(sel)], int(n)).numpy()
    return out


@dataclass(frozen=True)
class BudgetPoint:
    """Budget of the sample at one beta: mean rate (mean of N_x / (t*h*w)), BPP16 (paper's,
    mask excluded) and BPP16 with the t*h*w mask bits."""

    beta: float
    rate: float
    bpp16: float
    bpp16_mask: float


def budget_at(cache: ScoreCache, beta: float, mean_info: float) -> tuple[BudgetPoint, np.ndarray]:
    """The sample's budget at beta and the per-clip N_x (N,)."""
    n = n_keep_at(cache, beta, mean_info)
    positions, pixels = cache.positions, cache.pixels
    bits = math.log2(cache.codebook)
    rate = float(np.mean(n / positions))
    bpp = 16.0 * float(n.sum()) * bits / float(pixels.sum())
    bpp_mask = 16.0 * (float(n.sum()) * bits + float(positions.sum())) / float(pixels.sum())
    return BudgetPoint(beta=float(beta), rate=rate, bpp16=bpp, bpp16_mask=bpp_mask), n


def floor_beta(cache: ScoreCache, mean_info: float) -> float:
    """The largest beta at which every clip sits at the 1/16 floor (smaller betas change nothing)."""
    top = float(cache.info.double().max())
    if top <= 0:
        return 1.0
    return float(min(1.0, max(mean_info * MIN_RATE / top, 1e-9)))


def beta_grid(cache: ScoreCache, mean_info: float, size: int) -> list[float]:
    """`size` betas, geometric from the floor's beta to 1, ascending."""
    lo = floor_beta(cache, mean_info)
    if lo >= 1.0:
        return [1.0]
    return [float(b) for b in np.geomspace(lo, 1.0, size)]


def round_beta_down(beta: float) -> float:
    scale = 10**BETA_DECIMALS
    return max(math.floor(beta * scale) / scale, 1.0 / scale)


def solve_budget(metric: Callable[[float], float], target: float, name: str, unit: str = "") -> float:
    """Largest beta in (0, 1] with metric(beta) <= target, for a non-decreasing step `metric`.

    Raises TargetOutOfReach when even the floor exceeds the target or beta = 1 stays below it
    (then the target is not reachable at beta <= 1; the message states the range).
    """
    lo_beta = 10.0 ** -BETA_DECIMALS
    lo_val, hi_val = metric(lo_beta), metric(1.0)
    if target < lo_val or target > hi_val:
        raise TargetOutOfReach(
            f"target {name} {target:g}{unit} is out of reach: beta in (0, 1] gives a mean {name} from "
            f"{lo_val:.4f}{unit} (every clip at the 1/16 floor) to {hi_val:.4f}{unit} (beta = 1) on this sample",
            (lo_val, hi_val),
        )
    if hi_val <= target:
        return 1.0
    lo, hi = math.log(lo_beta), 0.0  # invariant: metric(e^lo) <= target < metric(e^hi)
    for _ in range(_BISECT_STEPS):
        mid = (lo + hi) / 2
        if metric(math.exp(mid)) <= target:
            lo = mid
        else:
            hi = mid
    return round_beta_down(math.exp(lo))


def cluster_ci(values: Sequence[float], groups: Sequence[str], z: float = 1.96) -> tuple[float, float, float]:
    """Mean and normal CI of values whose sampling unit is the group (clips of one video are
    correlated): cluster-robust standard error of the mean. Returns (mean, low, high)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) != len(groups):
        raise ValueError(f"got {len(v)} values for {len(groups)} group labels")
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    labels = sorted(set(groups))
    if len(labels) < 2:
        return mean, float("nan"), float("nan")
    idx = {g: i for i, g in enumerate(labels)}
    sums = np.zeros(len(labels))
    np.add.at(sums, [idx[g] for g in groups], v - mean)
    g = len(labels)
    se = math.sqrt(float((sums**2).sum()) * g / (g - 1)) / len(v)
    return mean, mean - z * se, mean + z * se


def resolve_mean_info(model: AdaptiveTokenizer, cache: ScoreCache, source: str, router: str = PAPER_ROUTER) -> float:
    """E[signal] to tune with: the sample mean of the router's signal ('dataset') or the checkpoint's."""
    if source == "dataset":
        return check_mean_info(float(cache.info.double().mean()), router)
    if source == "checkpoint":
        return check_mean_info(model.mean_signal(router), router)
    raise ValueError(f"mean_info source must be one of {MEAN_INFO_SOURCES}, got {source!r}")
