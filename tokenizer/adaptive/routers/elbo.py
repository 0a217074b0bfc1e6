"""The `elbo` router, the paper's rule (InfoTok, arXiv 2512.16975), unchanged.

The score of a token is the L1 reconstruction error of one full-rate decoder pass, pooled onto
the token grid (`tokenizer.adaptive.router.token_scores`); the signal is I(x), the mean token
score, so the budget follows the *level* of a clip's error: r_x = clip(beta * I(x) / E[I], 1/16, 1).
Cost per clip besides the encode and the final compressor pass: one decode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from tokenizer.adaptive.routers.base import Router, Scored

if TYPE_CHECKING:
    import torch

    from tokenizer.adaptive.model import AdaptiveTokenizer
    from tokenizer.nn.model import Encoding


class ElboRouter(Router):
    name: ClassVar[str] = "elbo"
    signal_name: ClassVar[str] = "E[I]"
    how_to_set: ClassVar[str] = "train the adaptive stage or run `infotok calibrate --router elbo`"
    mean_buffers: ClassVar[tuple[str, str] | None] = ("mean_info", "info_count")

    def score(self, model: AdaptiveTokenizer, video: torch.Tensor, encoding: Encoding) -> Scored:
        from tokenizer.adaptive.router import clip_information

        _, scores = model.information(video, encoding)  # the paper's full-rate decode
        return Scored(encoding=encoding, scores=scores, signal=clip_information(scores), router=self.name)

    def passes(self, model: AdaptiveTokenizer) -> tuple[float, float, float]:
        return (1, 1, 1)
