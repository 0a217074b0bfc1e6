"""Building blocks of the causal video tokenizer.

Internal activations use the layout (B, T, C, H, W): spatial convolutions run
on (B*T, C, H, W) views, temporal mixing concatenates causally shifted frames
along channels. No operation mixes information from a later frame into an
earlier one, which makes the tokenizer causal over latent frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tokenizer.config import TEMPORAL_COMPRESSION


def causal_patchify(video: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, 3, T, H, W), T = 1 + 4k -> (B, t, 3*4*patch*patch, H/patch, W/patch), t = 1 + k.

    Frame 0 is replicated three times in front, so latent frame 0 sees only
    pixel frame 0 and latent frame j sees pixel frames 4(j-1)+1 .. 4j.
    """
    b, c, t_pix, h, w = video.shape
    g = TEMPORAL_COMPRESSION
    x = torch.cat([video[:, :, :1].expand(b, c, g - 1, h, w), video], dim=2)  # (B, 3, T+3, H, W)
    t = x.shape[2] // g
    x = x.reshape(b, c, t, g, h // patch, patch, w // patch, patch)
    x = x.permute(0, 2, 1, 3, 5, 7, 4, 6)  # (B, t, 3, g, p, p, H/p, W/p)
    return x.reshape(b, t, c * g * patch * patch, h // patch, w // patch)


def causal_unpatchify(x: torch.Tensor, patch: int, channels: int = 3) -> torch.Tensor:
    """Inverse of causal_patchify: (B, t, 3*4*p*p, h, w) -> (B, 3, 1 + 4(t-1), h*p, w*p)."""
    b, t, _, h, w = x.shape
    g = TEMPORAL_COMPRESSION
    x = x.reshape(b, t, channels, g, patch, patch, h, w)
    x = x.permute(0, 2, 1, 3, 6, 4, 7, 5)  # (B, 3, t, g, h, p, w, p)
    x = x.reshape(b, channels, t * g, h * patch, w * patch)
    return x[:, :, g - 1 :]


class FrameNorm(nn.Module):
    """GroupNorm over (C, H, W) of each frame separately (statistics never cross time)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(min(32, channels // 4) or 1, channels, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        return self.norm(x.reshape(b * t, c, h, w)).reshape(b, t, c, h, w)


class CausalConv(nn.Module):
    """Convolution with a causal temporal kernel `kt` and a spatial kernel `ks`.

    Output frame i depends on input frames i-kt+1 .. i (frame 0 replicated in front).
    """

    def __init__(self, c_in: int, c_out: int, ks: int = 3, kt: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.kt = kt
        self.conv = nn.Conv2d(c_in * kt, c_out, ks, stride=stride, padding=ks // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        if self.kt > 1:
            padded = torch.cat([x[:, :1].expand(b, self.kt - 1, c, h, w), x], dim=1)
            # channels of frame i: [x_i, x_{i-1}, ..., x_{i-kt+1}]
            x = torch.cat([padded[:, self.kt - 1 - j : self.kt - 1 - j + t] for j in range(self.kt)], dim=2)
        y = self.conv(x.reshape(b * t, x.shape[2], h, w))
        return y.reshape(b, t, y.shape[1], y.shape[2], y.shape[3])


class ResBlock(nn.Module):
    """Pre-norm residual block: causal temporal+spatial conv, then spatial conv."""

    def __init__(self, c_in: int, c_out: int, kt: int) -> None:
        super().__init__()
        self.norm1 = FrameNorm(c_in)
        self.conv1 = CausalConv(c_in, c_out, ks=3, kt=kt)
        self.norm2 = FrameNorm(c_out)
        self.conv2 = CausalConv(c_out, c_out, ks=3, kt=1)
        self.skip = CausalConv(c_in, c_out, ks=1) if c_in != c_out else None
        nn.init.zeros_(self.conv2.conv.weight)
        nn.init.zeros_(self.conv2.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.skip is None else self.skip(x)) + h


class Downsample(nn.Module):
    """Spatial /2 with a strided conv."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = CausalConv(c_in, c_out, ks=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Spatial x2: conv to 4x channels at low resolution, then pixel shuffle."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = CausalConv(c_in, 4 * c_out, ks=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        b, t, c, h, w = y.shape
        y = F.pixel_shuffle(y.reshape(b * t, c, h, w), 2)
        return y.reshape(b, t, c // 4, 2 * h, 2 * w)


class FrameAttention(nn.Module):
    """Single-head self-attention over the spatial positions of each latent frame."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = FrameNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        y = self.norm(x).reshape(b * t, c, h * w).transpose(1, 2)  # (B*t, hw, C)
        q, k, v = self.qkv(y).chunk(3, dim=-1)
        y = F.scaled_dot_product_attention(q, k, v)
        y = self.proj(y).transpose(1, 2).reshape(b, t, c, h, w)
        return x + y
