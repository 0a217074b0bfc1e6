"""The `latent` router: a small head on the encoder's output predicts the token scores, and a
linear fit on clip descriptors (crude codecs on the pixels, the latent's spread) predicts the
`gain` router's slope s (`tokenizer.adaptive.latent_router`, `tokenizer.adaptive.clip_descriptors`):
no decoder pass at all. r_x = clip(beta * s^ / E[s^], 1/16, 1). Cost per clip besides the encode and
the final compressor pass: one pass of the head and the descriptors (a few pooling passes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from tokenizer.adaptive.routers.base import Router, RouterState, Scored

if TYPE_CHECKING:
    import torch

    from tokenizer.adaptive.model import AdaptiveTokenizer
    from tokenizer.nn.model import Encoding

_RETRAIN = "`infotok train --stage router` or use --router elbo|gain"


class LatentRouter(Router):
    name: ClassVar[str] = "latent"
    signal_name: ClassVar[str] = "E[s^]"
    how_to_set: ClassVar[str] = ("train the head with `infotok train --stage router` or run "
                                 "`infotok calibrate --router latent`")
    mean_buffers: ClassVar[tuple[str, str] | None] = ("mean_latent", "latent_count")

    def score(self, model: AdaptiveTokenizer, video: torch.Tensor, encoding: Encoding) -> Scored:
        from tokenizer.adaptive.clip_descriptors import describe_clip

        bounded = model.bounded_latent(encoding.latent)
        described = describe_clip(video, bounded)
        return Scored(encoding=encoding, scores=model.latent_head.scores(bounded, described.detail),
                      signal=model.latent_slope(described.descriptors), router=self.name)

    def passes(self, model: AdaptiveTokenizer) -> tuple[float, float, float]:
        return (1, 0, 1)

    def problem(self, state: RouterState, calibrated: bool = True, need_mean: bool = False) -> str | None:
        if not state.value("latent_head_steps") > 0:
            return (f"{state.where} has no trained latent router head (its latent router head is untrained); "
                    f"train it with {_RETRAIN}")
        if not state.value("latent_slope.count") > 0:
            return (f"{state.where} has a latent router from before its slope fit on clip descriptors (no slope fit "
                    f"on clip descriptors: it predates them); retrain it with {_RETRAIN}")
        return super().problem(state, calibrated, need_mean)
