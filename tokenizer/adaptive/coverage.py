"""The covering keep: a keep spread towards where the decompressor has nothing near to infer from.

At low budgets the top-n tokens by score cluster on the busiest parts of a frame, and a dropped
token far from every kept one is inferred poorly. The covering keep takes the top n by score,
measures each token's distance d (Chebyshev, in tokens, within its latent frame, at most
COVERAGE_CAP) to the nearest kept token, and keeps the top n by score + weight * log(1 + d):
the same count, no model pass. Whether it pays depends on the footage (measured with
`benchmarks/bench_low_budget_tokens.py`, docs/routers.md: +0.3 to +0.4 dB at rates 1/16 to 1/4 on
camera work over photographs, neutral on `unseen`'s kinds, -0.5 to -0.8 dB at 1/8 and 1/4 on
procedural noise and texture, whose tokens cannot be inferred from neighbours at all), so the `fitted` router
chooses the weight per corpus, on its fit's sample (`COVERAGE_CHOICES`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tokenizer.adaptive.router import top_n_mask

COVERAGE_CAP = 6
# the weights a per-corpus fit chooses between (0: the plain top n by score)
COVERAGE_CHOICES: tuple[float, ...] = (0.0, 1.0)


def distance_to_kept(keep: torch.Tensor, cap: int = COVERAGE_CAP) -> torch.Tensor:
    """keep (B, t, h, w) bool -> float (B, t, h, w): each token's Chebyshev distance in tokens to the
    nearest kept token of its own latent frame, 0 where kept, at most `cap` (also where its frame
    keeps nothing)."""
    if keep.ndim != 4 or keep.dtype != torch.bool:
        raise ValueError(f"keep must be bool (B, t, h, w), got {keep.dtype} {tuple(keep.shape)}")
    reach = keep.float().flatten(0, 1).unsqueeze(1)  # (B*t, 1, h, w)
    dist = torch.where(reach > 0, 0.0, float(cap))
    for step in range(1, cap):
        reach = F.max_pool2d(reach, 3, 1, 1)
        dist = torch.where((reach > 0) & (dist == cap), float(step), dist)
    return dist.view(keep.shape)


def covering_keep(scores: torch.Tensor, n_keep: torch.Tensor, weight: float) -> torch.Tensor:
    """The n_keep[b] tokens of each clip (scores (B, t, h, w), n_keep (B,)) by score + weight *
    log(1 + distance to the plain top n): (B, t, h, w) bool; weight 0 is `top_n_mask` itself."""
    first = top_n_mask(scores, n_keep)
    if weight == 0:
        return first
    return top_n_mask(scores.float() + float(weight) * torch.log1p(distance_to_kept(first)), n_keep)
