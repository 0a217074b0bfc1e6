"""Stage-2 training of InfoTok (arXiv 2512.16975): the adaptive compressor / decompressor
on top of a trained, frozen fixed-rate tokenizer (a `tokenizer.base.protocol.BaseTokenizer`: a
fixed-rate checkpoint's `VideoTokenizer`, or an external Cosmos DV base given as
'cosmos:ENCODER,DECODER').

Per step: one frozen base encode and one full-rate router decode (no grad) give the token
scores; E[I] is updated as an EMA of the batch's I(x); each clip draws its beta from
`AdaptiveStageConfig.betas`; the keep mask is the router's top-N_x; the loss (taken by the loop) is
the L1 error of the adaptive reconstruction. `tokenizer.train.trainer.train` runs the loop, checkpoints and resume.

A base whose decoder takes integer indices (Cosmos DV: `differentiable_decoder` False) passes no
gradient to the decompressor through a pixel loss, so on such a base the loss is taken in code
space instead: the L1 error of the decompressed codes against the full-rate codes
(`AdaptiveTokenizer.forward_codes`). The router's scores and E[I] are measured the same way on
either base.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from tokenizer.adaptive.modules import adaptive_preset
from tokenizer.adaptive.model import AdaptiveTokenizer
from tokenizer.base.protocol import BaseTokenizer
from tokenizer.config import preset
from tokenizer.eval.metrics import psnr, ssim
from tokenizer.nn.model import VideoTokenizer
from tokenizer.adaptive.router import budget_tokens, clip_information, top_n_mask
from tokenizer.adaptive.routers.registry import budget_rate
from tokenizer.video import frames_to_tensor

logger = logging.getLogger(__name__)

EVAL_BETAS: tuple[float, ...] = (1.0, 0.5, 0.25)


def build_adaptive(base_preset: str, adaptive_name: str, base: str | None = None) -> AdaptiveTokenizer:
    """A fresh adaptive layer on a `base_preset` VideoTokenizer (weights from `init_from_checkpoint`),
    or on the external base named by base ('cosmos:ENCODER,DECODER', hashed and checked now)."""
    if base is not None:
        from tokenizer.base.load import load_new_base

        fixed: BaseTokenizer = load_new_base(base)
    else:
        fixed = VideoTokenizer(preset(base_preset))
    return AdaptiveTokenizer(fixed, adaptive_preset(adaptive_name))


def init_from_checkpoint(model: AdaptiveTokenizer, path: str, base_preset: str) -> str:
    """Load a fixed-rate checkpoint into model.base (fresh adaptive layer), or an adaptive
    checkpoint of the same adaptive config into the whole model; return its tokenizer id."""
    from tokenizer.checkpoint import CheckpointError, load_tokenizer

    init = load_tokenizer(path, expect_preset=base_preset)
    if init.adaptive is None:
        model.base.load_state_dict(init.model.state_dict())
    else:
        if init.adaptive.config != model.config:
            raise CheckpointError(
                f"checkpoint {path} has adaptive config {init.adaptive.config}, this run builds {model.config}"
            )
        model.load_state_dict(init.adaptive.state_dict())
    return init.tokenizer_id


def freeze_base(model: AdaptiveTokenizer, train_decoder: bool) -> list[torch.nn.Parameter]:
    """Freeze the base encoder (and decoder unless train_decoder); return the trainable parameters."""
    for p in model.base.encoder.parameters():
        p.requires_grad_(False)
    for p in model.base.decoder.parameters():
        p.requires_grad_(train_decoder)
    return [p for p in model.parameters() if p.requires_grad]


def sample_betas(seed: int, step: int, batch: int, betas: tuple[float, ...]) -> torch.Tensor:
    """Per-clip betas (B,) float32, a pure function of (seed, step)."""
    rng = np.random.default_rng([seed, step, 0xB37A])
    return torch.tensor(rng.choice(np.asarray(betas, dtype=np.float64), size=batch), dtype=torch.float32)


def adaptive_forward(model: AdaptiveTokenizer, x: torch.Tensor, betas: torch.Tensor, info_ema: float
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """One stage-2 forward: x (B, 3, T, H, W) in [-1, 1], betas (B,) -> (prediction, target) for the
    caller's L1 loss: (adaptive reconstruction (B, 3, T, H, W), x) on a base whose decoder passes
    gradients, else (decompressed codes, full-rate codes), both (B, t, h, w, D)."""
    enc, scores = model.information(x)  # no grad: frozen encoder + router decode
    info = clip_information(scores)  # (B,)
    model.update_mean_info(info, info_ema)
    rate = budget_rate(info, betas.to(info.device), float(model.mean_info))  # (B,)
    keep = top_n_mask(scores, budget_tokens(rate, scores[0].numel()))  # (B, t, h, w)
    if not model.base.differentiable_decoder:
        return model.forward_codes(keep, enc)
    return model(x, keep, encoding=enc).reconstruction, x


@torch.no_grad()
def evaluate_adaptive(model: AdaptiveTokenizer, clips: list[np.ndarray], batch: int = 4) -> dict[str, float]:
    """Mean PSNR / SSIM at each of EVAL_BETAS on uint8 clips (T, H, W, 3), plus the mean rate,
    on the model's device in float32."""
    device = model.mean_info.device
    was_training = model.training
    model.eval()
    out: dict[str, float] = {}
    for beta in EVAL_BETAS:
        ps, ss, rs = [], [], []
        for i in range(0, len(clips), batch):
            x = frames_to_tensor(np.stack(clips[i : i + batch])).to(device)
            routing = model.route(x, beta)
            y = model(x, routing.keep, encoding=routing.encoding).reconstruction.clamp(-1, 1)
            ps.append(psnr(y, x))
            ss.append(ssim(y, x))
            rs.append(routing.n_keep.double() / routing.scores[0].numel())
        out[f"psnr@{beta:g}"] = float(torch.cat(ps).mean())
        out[f"ssim@{beta:g}"] = float(torch.cat(ss).mean())
        out[f"rate@{beta:g}"] = float(torch.cat(rs).mean())
    model.train(was_training)
    return out
