"""The `latent` router's head: token scores and the clip's slope, predicted from the encoder's output.

The `gain` router measures a clip's slope with two decoder passes; this head predicts both of
its answers from the pre-quantization latent the encoder already produced, so tokenizing needs
one encode and one compressor pass (the paper's open question 2: a router without the decoder).

Input: the bounded latent (B, t, h, w, D) in about [-1, 1] (what the compressor sees).
Outputs: per-token log-scores (B, t, h, w) (only their order within a clip matters: top N) and
the slope s^ (B,) >= 0 in the units of `tokenizer.adaptive.router.gain_slope`.
Trained by `infotok train --stage router` (`tokenizer.train.router_stage`) against the frozen
tokenizer's full-rate token scores and measured gain slopes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

HEAD_WIDTH = 32
LOG_SCORE_EPS = 1e-3


class LatentRouterHead(nn.Module):
    """Two 3x3x3 convolutions over the latent grid, then a 1x1x1 token output and a pooled clip output."""

    def __init__(self, dim: int, width: int = HEAD_WIDTH) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(dim, width, 3, padding=1), nn.GELU(),
            nn.Conv3d(width, width, 3, padding=1), nn.GELU(),
        )
        self.token = nn.Conv3d(width, 1, 1)
        self.clip = nn.Sequential(nn.Linear(2 * width + 2, width), nn.GELU(), nn.Linear(width, 1))

    def forward(self, bounded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """bounded (B, t, h, w, D) -> (log-scores (B, t, h, w), slope (B,) >= 0)."""
        f = self.body(bounded.permute(0, 4, 1, 2, 3).float())  # (B, W, t, h, w)
        log_scores = self.token(f)[:, 0]  # (B, t, h, w)
        pooled = torch.cat([f.mean(dim=(2, 3, 4)), f.amax(dim=(2, 3, 4)),
                            log_scores.flatten(1).mean(1, keepdim=True),
                            log_scores.flatten(1).std(1, keepdim=True).nan_to_num(0.0)], dim=1)  # (B, 2W + 2)
        return log_scores, F.softplus(self.clip(pooled)[:, 0])


def score_target(scores: torch.Tensor) -> torch.Tensor:
    """The head's token target: log(l + eps) of full-rate scores l (B, t, h, w)."""
    return torch.log(scores.float() + LOG_SCORE_EPS)
