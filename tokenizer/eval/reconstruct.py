"""Round trips through a tokenizer: token ids, reconstructions and their quality, per clip."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tokenizer.adaptive.model import AdaptiveTokenizer
from tokenizer.adaptive.tokens import AdaptiveTokens
from tokenizer.eval.metrics import psnr, ssim
from tokenizer.nn.model import VideoTokenizer
from tokenizer.video import frames_to_tensor, tensor_to_frames


@dataclass(frozen=True)
class RoundTrip:
    """indices: (t, h, w) int64; reconstruction: (T, H, W, 3) uint8; psnr in dB; ssim in [-1, 1]."""

    indices: np.ndarray
    reconstruction: np.ndarray
    psnr: float
    ssim: float


@torch.no_grad()
def round_trip(model: VideoTokenizer, clips: list[np.ndarray], batch_size: int = 4) -> list[RoundTrip]:
    """Tokenize and reconstruct uint8 clips (T, H, W, 3) of one shape on the model's device;
    metrics vs the input."""
    device = next(model.parameters()).device
    out: list[RoundTrip] = []
    for i in range(0, len(clips), batch_size):
        x = frames_to_tensor(np.stack(clips[i : i + batch_size])).to(device)
        enc = model.encode(x)
        y = model.decode_indices(enc.indices)
        ps, ss = psnr(y, x), ssim(y, x)
        frames = tensor_to_frames(y)
        for j in range(x.shape[0]):
            out.append(RoundTrip(enc.indices[j].cpu().numpy(), frames[j], float(ps[j]), float(ss[j])))
    return out


@dataclass(frozen=True)
class AdaptiveRoundTrip:
    """One clip through InfoTok: its tokens (ids, mask, info, rate), the reconstruction
    (T, H, W, 3) uint8 decoded from those tokens alone, psnr in dB and ssim."""

    tokens: AdaptiveTokens
    reconstruction: np.ndarray
    psnr: float
    ssim: float


@torch.no_grad()
def adaptive_round_trip(model: AdaptiveTokenizer, clips: list[np.ndarray], beta: float,
                        batch_size: int = 4) -> list[AdaptiveRoundTrip]:
    """Tokenize uint8 clips (T, H, W, 3) of one shape at beta on the model's device, go through
    bytes, detokenize."""
    out: list[AdaptiveRoundTrip] = []
    for i in range(0, len(clips), batch_size):
        x = frames_to_tensor(np.stack(clips[i : i + batch_size])).to(model.mean_info.device)
        tokens = [AdaptiveTokens.from_bytes(t.to_bytes()) for t in model.tokenize(x, beta)]
        y = model.detokenize(tokens)
        ps, ss = psnr(y, x), ssim(y, x)
        frames = tensor_to_frames(y)
        out.extend(AdaptiveRoundTrip(tokens[j], frames[j], float(ps[j]), float(ss[j])) for j in range(x.shape[0]))
    return out
