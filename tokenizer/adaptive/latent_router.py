"""The `latent` router: token scores from a head on the encoder's output, the clip's slope from a
linear fit on clip descriptors. Neither needs a decoder pass.

The `gain` router measures a clip's slope with two decoder passes and takes its token scores
from the full-rate error; the latent router predicts both from what tokenizing has anyway (the
paper's open question 2: a router without the decoder), so tokenizing needs one encode, this
head, the descriptors and one compressor pass.

- `LatentRouterHead`: the bounded latent (B, t, h, w, D) in about [-1, 1] (what the compressor
  sees) -> per-token log-scores (B, t, h, w); only their order within a clip matters (top N).
- `SlopeRegressor`: clip descriptors (B, F) (`tokenizer.adaptive.clip_descriptors`) -> the
  slope s^ (B,) >= 0 in the units of `tokenizer.adaptive.routers.gain.gain_slope`: standardised
  descriptors, one weight each, fitted in closed form (ridge).
Both are fitted by `infotok train --stage router` (`tokenizer.train.router_stage`) against the
frozen tokenizer's full-rate token scores and measured gain slopes. The head used to predict the
slope too, from its own pooled features; it generalised poorly (Spearman 0.66 on held-out
mixed footage), the descriptors' linear fit reaches 0.855 (`benchmarks/bench_router.py --clips 48`).
"""

from __future__ import annotations

import torch
from torch import nn

HEAD_WIDTH = 32
LOG_SCORE_EPS = 1e-3
RIDGE = 1.0  # on standardised descriptors over ~1,000 clips: a guard against collinear ones, not a prior
_MIN_SPREAD = 1e-6


class LatentRouterHead(nn.Module):
    """Two 3x3x3 convolutions over the latent grid, then a 1x1x1 token output.

    `detail_weight` (a float32 buffer, 0 until the router stage chooses it): the token score is
    the head's output plus detail_weight times the token's pixel detail (the log variance of its
    8 x 8 block, `tokenizer.adaptive.clip_descriptors.ClipDescription.detail`). The head learns
    where the full-rate error is; the detail says where the picture has something to lose, and
    keeping by both beats either (chosen on training clips by reconstruction PSNR).
    """

    def __init__(self, dim: int, width: int = HEAD_WIDTH) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(dim, width, 3, padding=1), nn.GELU(),
            nn.Conv3d(width, width, 3, padding=1), nn.GELU(),
        )
        self.token = nn.Conv3d(width, 1, 1)
        self.register_buffer("detail_weight", torch.zeros(()))

    def forward(self, bounded: torch.Tensor) -> torch.Tensor:
        """bounded (B, t, h, w, D) -> the head's log-scores (B, t, h, w) (without the detail term)."""
        f = self.body(bounded.permute(0, 4, 1, 2, 3).float())  # (B, W, t, h, w)
        return self.token(f)[:, 0]

    def scores(self, bounded: torch.Tensor, detail: torch.Tensor, weight: float | None = None) -> torch.Tensor:
        """The latent router's token scores (B, t, h, w): log-scores + w * detail, w = `weight` if given
        (the router stage's choice, a benchmark's what-if) else detail_weight."""
        w = self.detail_weight if weight is None else weight
        return self(bounded) + w * detail.float()


class SlopeRegressor(nn.Module):
    """s^ = max(0, bias + sum_j weight_j * (x_j - shift_j) * scale_j) over F clip descriptors.

    Buffers (kept in float32 in every checkpoint): shift / scale standardise each descriptor
    (scale 0 for one that did not vary in the fit, so it cannot matter), weight, bias, and count,
    the number of clips of the fit (0: never fitted; the latent router refuses to run).
    """

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.register_buffer("shift", torch.zeros(n_features))
        self.register_buffer("scale", torch.zeros(n_features))
        self.register_buffer("weight", torch.zeros(n_features))
        self.register_buffer("bias", torch.zeros(()))
        self.register_buffer("count", torch.tensor(0, dtype=torch.int64))

    @property
    def fitted(self) -> bool:
        return int(self.count) > 0

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, F) -> s^ (B,) float32 >= 0."""
        z = (features.float() - self.shift) * self.scale
        return (z @ self.weight + self.bias).clamp_min(0.0)

    @torch.no_grad()
    def fit(self, features: torch.Tensor, slopes: torch.Tensor, ridge: float = RIDGE) -> None:
        """Least squares of slopes (N,) on standardised features (N, F) plus a bias, with an L2
        penalty `ridge` on the weights (not the bias); sets the buffers."""
        if features.ndim != 2 or features.shape[1] != self.weight.numel() or slopes.shape != features.shape[:1]:
            raise ValueError(f"features must be (N, {self.weight.numel()}) and slopes (N,), got "
                             f"{tuple(features.shape)} and {tuple(slopes.shape)}")
        if features.shape[0] < 2 or not (torch.isfinite(features).all() and torch.isfinite(slopes).all()):
            raise ValueError(f"the slope fit needs at least 2 clips of finite descriptors and slopes, "
                             f"got {features.shape[0]}")
        x, y = features.double(), slopes.double()
        shift, spread = x.mean(0), x.std(0, unbiased=False)
        scale = torch.where(spread > _MIN_SPREAD, 1.0 / spread.clamp_min(_MIN_SPREAD), torch.zeros_like(spread))
        z = torch.cat([(x - shift) * scale, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)  # (N, F + 1)
        penalty = torch.eye(z.shape[1], dtype=x.dtype) * ridge
        penalty[-1, -1] = 0.0
        coef = torch.linalg.solve(z.T @ z + penalty, z.T @ y)
        coef[:-1] *= (scale > 0).to(coef.dtype)
        self.shift.copy_(shift.float())
        self.scale.copy_(scale.float())
        self.weight.copy_(coef[:-1].float())
        self.bias.fill_(float(coef[-1]))
        self.count.fill_(int(len(x)))


def score_target(scores: torch.Tensor) -> torch.Tensor:
    """The head's token target: log(l + eps) of full-rate scores l (B, t, h, w)."""
    return torch.log(scores.float() + LOG_SCORE_EPS)
