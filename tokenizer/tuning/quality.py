"""Tuning beta per dataset for InfoTok (arXiv 2512.16975): the decoded-quality side.

PSNR / SSIM at a beta need a reconstruction through the adaptive path (compressor, FSQ,
decompressor, base decoder) at that beta's keep masks. The encoder latents and router
scores of the probed clips are cached by `collect_scores`, so one evaluation costs no
encoder or router pass, and a clip's result is cached per token count N_x: betas that give
a clip the same N_x (e.g. every beta below the 1/16 floor) never decode it twice.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tokenizer.adaptive.model import AdaptiveTokenizer
from tokenizer.tuning.budget import ScoreCache, TargetOutOfReach, n_keep_at, round_beta_down
from tokenizer.eval.metrics import psnr, ssim
from tokenizer.nn.model import Encoding
from tokenizer.adaptive.router import top_n_mask
from tokenizer.video import frames_to_tensor

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QualityPoint:
    """Decoded quality of the probed clips at one beta: means and per-clip PSNR (dB)."""

    beta: float
    psnr: float
    ssim: float
    per_clip_psnr: tuple[float, ...]


class QualityProbe:
    """Mean PSNR / SSIM of the cached clips at any beta; decodes only (clip, N_x) pairs not seen."""

    def __init__(self, model: AdaptiveTokenizer, cache: ScoreCache, mean_info: float, batch_size: int = 8,
                 autocast: bool = True) -> None:
        self.model = model
        self.cache = cache
        self.mean_info = mean_info
        self.batch_size = batch_size
        self.autocast = autocast
        self.clips: list[int] = sorted(cache.latents)
        self._done: dict[tuple[int, int], tuple[float, float]] = {}
        self.decodes = 0  # clip decodes run so far
        self.seconds = 0.0

    def __len__(self) -> int:
        return len(self.clips)

    @torch.no_grad()
    def _decode(self, todo: list[tuple[int, int]]) -> None:
        """Reconstruct (clip, n_keep) pairs in batches of one shape; fill the cache."""
        device = self.model.mean_info.device
        use_amp = self.autocast and device.type == "cuda"
        t0 = time.perf_counter()
        by_shape: dict[tuple[int, ...], list[tuple[int, int]]] = {}
        for item in todo:
            by_shape.setdefault(tuple(self.cache.scores[item[0]].shape), []).append(item)
        for items in by_shape.values():
            for s in range(0, len(items), self.batch_size):
                part = items[s : s + self.batch_size]
                encs = [self.cache.latents[i] for i, _ in part]
                enc = Encoding(latent=torch.cat([e.latent for e in encs]), codes=torch.cat([e.codes for e in encs]),
                               indices=torch.cat([e.indices for e in encs]))
                scores = torch.stack([self.cache.scores[i] for i, _ in part]).to(device)  # (B, t, h, w)
                keep = top_n_mask(scores, torch.tensor([n for _, n in part]))  # (B, t, h, w) bool
                x = frames_to_tensor(np.stack([self.cache.frames[i] for i, _ in part])).to(device)  # (B, 3, T, H, W)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
                    y = self.model(x, keep, encoding=enc).reconstruction  # (B, 3, T, H, W)
                y = y.float().clamp(-1, 1)
                for (i, n), p, q in zip(part, psnr(y, x).tolist(), ssim(y, x).tolist()):
                    self._done[(i, n)] = (float(p), float(q))
                self.decodes += len(part)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        self.seconds += time.perf_counter() - t0

    def at_counts(self, n_keep: Sequence[int], beta: float = float("nan")) -> QualityPoint:
        """Quality with probed clip i keeping n_keep[k] tokens (k = position of i in `clips`)."""
        pairs = [(i, int(n)) for i, n in zip(self.clips, n_keep)]
        todo = [p for p in dict.fromkeys(pairs) if p not in self._done]
        if todo:
            self._decode(todo)
        ps = [self._done[p][0] for p in pairs]
        ss = [self._done[p][1] for p in pairs]
        return QualityPoint(beta=beta, psnr=float(np.mean(ps)), ssim=float(np.mean(ss)), per_clip_psnr=tuple(ps))

    def at(self, beta: float) -> QualityPoint:
        """Quality of the probed clips at beta (router budget, E[I] of the probe)."""
        n = n_keep_at(self.cache, beta, self.mean_info)
        return self.at_counts([int(n[i]) for i in self.clips], beta)

    def full_rate(self) -> QualityPoint:
        """Every token kept (the adaptive path's ceiling, above what beta <= 1 may reach)."""
        return self.at_counts([int(self.cache.scores[i].numel()) for i in self.clips], 1.0)


def solve_psnr(probe: QualityProbe, target: float, grid: Sequence[float], steps: int,
               curve: dict[float, QualityPoint] | None = None) -> QualityPoint:
    """Smallest beta (to the precision of `steps` bisections in log beta between the grid
    points that bracket the target) whose mean probe PSNR is >= target; its QualityPoint.

    Every returned beta was evaluated and met the target. The bracket starts at the lowest
    grid beta from which every higher grid beta meets the target, so a non-monotone dip on
    the grid cannot strand the search. Raises TargetOutOfReach above PSNR(beta = 1).
    """
    if len(probe) == 0:
        raise ValueError("a PSNR target needs at least one decoded clip (psnr_clips > 0)")
    grid = sorted(set(float(b) for b in grid) | {1.0})
    points = dict(curve or {})
    for b in grid:
        if b not in points:
            points[b] = probe.at(b)
    top, bottom = points[1.0], points[grid[0]]
    if top.psnr < target:
        full = probe.full_rate()
        raise TargetOutOfReach(
            f"target PSNR {target:g} dB is out of reach: beta in (0, 1] gives a mean PSNR from {bottom.psnr:.2f} dB "
            f"(beta {grid[0]:.3g}, the 1/16 floor) to {top.psnr:.2f} dB (beta = 1) on {len(probe)} sample clips; "
            f"keeping every token gives {full.psnr:.2f} dB",
            (bottom.psnr, top.psnr),
        )
    k = len(grid) - 1
    while k > 0 and points[grid[k - 1]].psnr >= target:
        k -= 1
    if k == 0:
        logger.info("PSNR target %.2f dB is met at the rate floor (beta %.3g)", target, grid[0])
        return points[grid[0]]
    lo, hi = math.log(grid[k - 1]), math.log(grid[k])
    best = points[grid[k]]
    for _ in range(steps):
        mid = round_beta_down(math.exp((lo + hi) / 2))
        if not grid[k - 1] < mid < math.exp(hi):
            break
        point = probe.at(mid)
        if point.psnr >= target:
            hi, best = math.log(mid), point
        else:
            lo = math.log(mid)
    return best
