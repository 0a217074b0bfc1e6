"""Tuning beta per dataset for InfoTok (arXiv 2512.16975): one call from sample clips to a
chosen beta, the recalibrated E[I] and the curve behind the choice.

Cost: one router pass over the sample (`collect_scores`); the rate / BPP16 sweep and a
rate or BPP16 search are exact and free; PSNR / SSIM cost one adaptive decode per probed
clip and distinct token count (`QualityProbe`). Model-side only: no storage access.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from schemas.config import FrozenConfig
from tokenizer.adaptive.model import AdaptiveTokenizer
from tokenizer.tuning.quality import QualityPoint, QualityProbe, solve_psnr
from tokenizer.tuning.budget import (
    FIT_MEAN_INFO,
    TargetOutOfReach,
    TuneConfig,
    TuningTarget,
    beta_grid,
    budget_at,
    cluster_ci,
    collect_scores,
    resolve_mean_info,
    solve_budget,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CurvePoint(FrozenConfig):
    """The sample at one beta; psnr / ssim are None where not decoded."""

    beta: float
    rate: float
    bpp16: float
    bpp16_mask: float
    psnr: float | None = None
    ssim: float | None = None


@dataclass(frozen=True)
class TuningResult(FrozenConfig):
    """What tuning found on a sample (JSON-able through to_dict / from_dict).

    beta / mean_info: the pair to tokenize with. rate, bpp16(_mask): the sample's budget at
    beta, rate_ci the 95% CI of the corpus mean rate (clips of one video form one unit);
    psnr / ssim / psnr_ci: decoded quality of the probed clips (None when none were probed).
    reachable_*: (low, high) over beta in (0, 1]; full_rate_psnr: every token kept.
    clip_rates / clip_info: per sample clip at beta (the budget histogram) and I(x).
    cost: seconds and decode counts (router_s is the one router pass).
    """

    target: TuningTarget
    beta: float
    mean_info: float
    mean_info_source: str
    checkpoint_mean_info: float | None
    n_clips: int
    rate: float
    rate_ci: tuple[float, float]
    bpp16: float
    bpp16_mask: float
    psnr: float | None
    psnr_ci: tuple[float, float] | None
    ssim: float | None
    psnr_clips: int
    full_rate_psnr: float | None
    reachable_rate: tuple[float, float]
    reachable_bpp16: tuple[float, float]
    reachable_psnr: tuple[float, float] | None
    curve: tuple[CurvePoint, ...]
    clip_rates: tuple[float, ...]
    clip_info: tuple[float, ...]
    cost: dict[str, float]


def probe_indices(n: int, k: int | None) -> list[int]:
    """k clip indices spread evenly over a sample of n (all for None or k >= n)."""
    if k is None or k >= n:
        return list(range(n))
    return sorted({int(i) for i in np.linspace(0, n - 1, k).round()}) if k > 0 else []


def tune_beta(model: AdaptiveTokenizer, clips: Sequence[np.ndarray], groups: Sequence[str], target: TuningTarget,
              cfg: TuneConfig = TuneConfig()) -> TuningResult:
    """Choose beta for uint8 clips (T, H, W, 3); groups[i] names clip i's source video (for the CI).

    Raises TargetOutOfReach (a ValueError naming the reachable range) when no beta in (0, 1] fits.
    """
    if len(groups) != len(clips):
        raise ValueError(f"got {len(groups)} group labels for {len(clips)} clips")
    if cfg.mean_info == FIT_MEAN_INFO:
        raise ValueError(f"the {cfg.router} router's budgets come from curves: its beta is tuned on its per-corpus "
                         "fit (tokenizer.tuning.fit_tune.tune_on_fit), not on one signal per clip")
    model.eval()
    probed = probe_indices(len(clips), cfg.psnr_clips)
    cache = collect_scores(model, clips, cfg.batch_size, keep=probed, autocast=cfg.autocast, router=cfg.router)
    mean_info = resolve_mean_info(model, cache, cfg.mean_info, cfg.router)
    t0 = time.perf_counter()
    grid = beta_grid(cache, mean_info, cfg.grid_size)
    budgets = {b: budget_at(cache, b, mean_info)[0] for b in grid}
    lo_b, hi_b = budget_at(cache, 1e-6, mean_info)[0], budget_at(cache, 1.0, mean_info)[0]
    try:
        if target.kind == "rate":
            beta = solve_budget(lambda b: budget_at(cache, b, mean_info)[0].rate, target.value, "rate")
        elif target.kind == "bpp16":
            beta = solve_budget(lambda b: budget_at(cache, b, mean_info)[0].bpp16, target.value, "BPP16")
        else:
            beta = float("nan")
    except TargetOutOfReach as exc:
        if target.value <= exc.reachable[1]:
            raise
        full = float((cache.info.double() >= mean_info).double().mean())
        raise TargetOutOfReach(
            f"{exc}; with E[I] = {mean_info:.4g} ({cfg.mean_info}), beta = 1 keeps every token only for clips "
            f"with I(x) >= E[I] ({full:.0%} of the sample)", exc.reachable) from None
    sweep_s = time.perf_counter() - t0
    probe = QualityProbe(model, cache, mean_info, cfg.batch_size, cfg.autocast)
    quality: dict[float, QualityPoint] = {b: probe.at(b) for b in grid} if len(probe) else {}
    full = probe.full_rate() if len(probe) else None
    if target.kind == "psnr":
        chosen_q = solve_psnr(probe, target.value, grid, cfg.psnr_steps, quality)
        beta = chosen_q.beta
    else:
        chosen_q = probe.at(beta) if len(probe) else None
    if chosen_q is not None:
        quality[beta] = chosen_q
    chosen, n_keep = budget_at(cache, beta, mean_info)
    budgets[beta] = chosen
    clip_rates = n_keep / cache.positions
    groups = list(groups)
    _, r_lo, r_hi = cluster_ci(clip_rates.tolist(), groups)
    psnr_ci = None
    if chosen_q is not None:
        _, p_lo, p_hi = cluster_ci(list(chosen_q.per_clip_psnr), [groups[i] for i in probe.clips])
        psnr_ci = (p_lo, p_hi)
    curve = tuple(
        CurvePoint(beta=b, rate=budgets[b].rate, bpp16=budgets[b].bpp16, bpp16_mask=budgets[b].bpp16_mask,
                   psnr=quality[b].psnr if b in quality else None, ssim=quality[b].ssim if b in quality else None)
        for b in sorted(budgets)
    )
    ckpt_m = model.mean_signal(cfg.router)
    result = TuningResult(
        target=target, beta=float(beta), mean_info=float(mean_info), mean_info_source=cfg.mean_info,
        checkpoint_mean_info=ckpt_m if np.isfinite(ckpt_m) else None, n_clips=len(clips),
        rate=chosen.rate, rate_ci=(r_lo, r_hi), bpp16=chosen.bpp16, bpp16_mask=chosen.bpp16_mask,
        psnr=chosen_q.psnr if chosen_q else None, psnr_ci=psnr_ci, ssim=chosen_q.ssim if chosen_q else None,
        psnr_clips=len(probe), full_rate_psnr=full.psnr if full else None,
        reachable_rate=(lo_b.rate, hi_b.rate), reachable_bpp16=(lo_b.bpp16, hi_b.bpp16),
        reachable_psnr=(quality[grid[0]].psnr, quality[1.0].psnr) if quality else None,
        curve=curve, clip_rates=tuple(float(r) for r in clip_rates),
        clip_info=tuple(float(v) for v in cache.info.tolist()),
        cost={"router_s": cache.seconds, "sweep_s": sweep_s, "psnr_s": probe.seconds,
              "psnr_decodes": float(probe.decodes), "router_clips": float(len(clips))},
    )
    logger.info("tuned beta %.6f for %s %g: rate %.4f (95%% CI %.4f..%.4f), E[I] %.5g (%s)", result.beta,
                target.kind, target.value, result.rate, r_lo, r_hi, mean_info, cfg.mean_info)
    return result
