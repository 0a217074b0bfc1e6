"""Causal FSQ video tokenizer (Cosmos DV4x8x8 style; Agarwal et al., "Cosmos World
Foundation Model Platform for Physical AI", 2025).

Public layout: video (B, 3, T, H, W) float in [-1, 1], T = 1 + 4k, H and W
multiples of 8. Latent grid (t, h, w) = (1 + k, H/8, W/8). Token ids are int64
in [0, 64000) for the default FSQ levels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tokenizer.config import SPATIAL_COMPRESSION, TEMPORAL_COMPRESSION, TokenizerConfig
from tokenizer.nn.fsq import FSQ
from tokenizer.nn.layers import (
    CausalConv,
    Downsample,
    FrameAttention,
    FrameNorm,
    ResBlock,
    Upsample,
    causal_patchify,
    causal_unpatchify,
)


@dataclass(frozen=True)
class Encoding:
    """Result of `VideoTokenizer.encode`.

    latent: (B, t, h, w, D) float, pre-quantization (unbounded).
    codes: (B, t, h, w, D) float in [-1, 1], quantized (straight-through in training).
    indices: (B, t, h, w) int64 token ids.
    """

    latent: torch.Tensor
    codes: torch.Tensor
    indices: torch.Tensor


@dataclass(frozen=True)
class TokenizerOutput:
    """Result of `VideoTokenizer.forward`, the same in train and eval.

    reconstruction: (B, 3, T, H, W) float, nominally in [-1, 1] (not clamped).
    encoding: the `Encoding` of the input.
    """

    reconstruction: torch.Tensor
    encoding: Encoding


def check_video_shape(video: torch.Tensor) -> None:
    """Raise ValueError unless video is (B, 3, 1 + 4k, H, W) with H, W multiples of 8."""
    if video.ndim != 5 or video.shape[1] != 3:
        raise ValueError(f"video must be (B, 3, T, H, W), got shape {tuple(video.shape)}")
    t, h, w = video.shape[2:]
    if (t - 1) % TEMPORAL_COMPRESSION != 0:
        raise ValueError(f"frame count must be 1 + 4k, got {t}")
    if h % SPATIAL_COMPRESSION or w % SPATIAL_COMPRESSION:
        raise ValueError(f"height and width must be multiples of {SPATIAL_COMPRESSION}, got {h}x{w}")


class Encoder(nn.Module):
    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        widths = cfg.widths
        in_ch = 3 * TEMPORAL_COMPRESSION * cfg.patch * cfg.patch
        self.patch = cfg.patch
        self.stem = CausalConv(in_ch, widths[0], ks=3)
        stages: list[nn.Module] = []
        for i, width in enumerate(widths):
            if i > 0:
                stages.append(Downsample(widths[i - 1], width))
            stages.extend(ResBlock(width, width, cfg.temporal_kernel) for _ in range(cfg.enc_blocks))
        if cfg.mid_attention:
            stages.append(FrameAttention(widths[-1]))
            stages.append(ResBlock(widths[-1], widths[-1], cfg.temporal_kernel))
        self.stages = nn.Sequential(*stages)
        self.norm_out = FrameNorm(widths[-1])
        self.head = CausalConv(widths[-1], len(cfg.levels), ks=3)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        x = causal_patchify(video, self.patch)  # (B, t, 48*p*p/4.., H/p, W/p)
        x = self.stem(x)  # (B, t, C0, H/p, W/p)
        x = self.stages(x)  # (B, t, C_last, H/8, W/8)
        return self.head(F.silu(self.norm_out(x)))  # (B, t, D, h, w)


class Decoder(nn.Module):
    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        widths = cfg.widths
        out_ch = 3 * TEMPORAL_COMPRESSION * cfg.patch * cfg.patch
        self.patch = cfg.patch
        self.stem = CausalConv(len(cfg.levels), widths[-1], ks=3)
        stages: list[nn.Module] = []
        if cfg.mid_attention:
            stages.append(ResBlock(widths[-1], widths[-1], cfg.temporal_kernel))
            stages.append(FrameAttention(widths[-1]))
        for i in reversed(range(len(widths))):
            stages.extend(ResBlock(widths[i], widths[i], cfg.temporal_kernel) for _ in range(cfg.dec_blocks))
            if i > 0:
                stages.append(Upsample(widths[i], widths[i - 1]))
        self.stages = nn.Sequential(*stages)
        self.norm_out = FrameNorm(widths[0])
        self.head = CausalConv(widths[0], out_ch, ks=3)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        x = self.stem(codes)  # (B, t, C_last, h, w)
        x = self.stages(x)  # (B, t, C0, H/p, W/p)
        x = self.head(F.silu(self.norm_out(x)))  # (B, t, 48*p*p/4.., H/p, W/p)
        return causal_unpatchify(x, self.patch)  # (B, 3, T, H, W)


class VideoTokenizer(nn.Module):
    """Fixed-rate causal FSQ video tokenizer: 4x temporal, 8x8 spatial compression; a
    `tokenizer.base.protocol.BaseTokenizer` whose weights its checkpoint stores."""

    differentiable_decoder = True
    external = None  # no external files: the checkpoint holds the weights

    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.fsq = FSQ(cfg.levels)

    def encode(self, video: torch.Tensor) -> Encoding:
        """video: (B, 3, T, H, W) float in [-1, 1] -> Encoding on the (t, h, w) grid."""
        check_video_shape(video)
        latent = self.encoder(video).permute(0, 1, 3, 4, 2)  # (B, t, h, w, D)
        codes = self.fsq(latent)
        return Encoding(latent=latent, codes=codes, indices=self.fsq.codes_to_indices(codes))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes: (B, t, h, w, D) in [-1, 1] -> video (B, 3, 1 + 4(t-1), 8h, 8w), not clamped."""
        if codes.ndim != 5 or codes.shape[-1] != self.fsq.dim:
            raise ValueError(f"codes must be (B, t, h, w, {self.fsq.dim}), got {tuple(codes.shape)}")
        return self.decoder(codes.permute(0, 1, 4, 2, 3))

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """indices: (B, t, h, w) integer token ids -> video (B, 3, T, H, W) clamped to [-1, 1]."""
        if indices.ndim != 4:
            raise ValueError(f"indices must be (B, t, h, w), got {tuple(indices.shape)}")
        codes = self.fsq.indices_to_codes(indices).to(self._dtype())
        return self.decode(codes).clamp(-1, 1)

    def forward(self, video: torch.Tensor) -> TokenizerOutput:
        enc = self.encode(video)
        return TokenizerOutput(reconstruction=self.decode(enc.codes), encoding=enc)

    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
