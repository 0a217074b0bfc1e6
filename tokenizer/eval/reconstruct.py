"""Round trips through a tokenizer: token ids, reconstructions and their quality, per clip."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

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
