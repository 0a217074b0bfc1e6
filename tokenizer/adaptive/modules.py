"""Adaptive compressor / decompressor of InfoTok ("InfoTok: Adaptive Discrete Video
Tokenizer via Information-Theoretic Compression", arXiv 2512.16975).

Two small pre-norm transformers around the FSQ quantizer, with 3-D RoPE over the latent
grid (t, h, w) and block-causal attention over latent frames (a token of latent frame i
sees every token of frames <= i), so the adaptive path stays causal like the base model;
spatially within the whole frame or a window of it (`tokenizer.adaptive.attention`).

- Compressor: pre-quantization latent + a learned kept/dropped embedding -> a residual
  correction of the latent; only kept positions are quantized. It can move information
  from dropped positions into kept ones.
- Decompressor: codes at kept positions and a learned [MASK] embedding at dropped ones ->
  a residual correction of the zero-filled code grid -> full (B, t, h, w, D) for the base
  decoder.

Output projections are zero-initialised: an untrained adaptive layer is the identity, so
at r = 1 the adaptive path equals the fixed-rate tokenizer exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from schemas.config import FrozenConfig
from tokenizer.adaptive.attention import windowed_attention, windowed_attention_at_rows


@dataclass(frozen=True)
class AdaptiveConfig(FrozenConfig):
    """Size of the adaptive layer.

    preset: name recorded in checkpoints.
    dim: transformer width; heads: attention heads (dim / heads must be even).
    compressor_blocks, decompressor_blocks: pre-norm transformer blocks of each side.
    mlp_ratio: hidden width of each MLP as a multiple of dim.
    rope_base: RoPE frequency base.
    attention_window: side in latent tokens of the spatial tiles attention stays within
      (`tokenizer.adaptive.attention`; 0: the whole frame). A layer trained on crops no larger than
      the window is the same layer either way; at inference on larger frames the window keeps
      the cost linear in a frame's pixels and the context the one it was trained on.
    attention_halo: tokens each tile's keys reach past its edges (0: the tile alone).
    """

    preset: str = "tiny"
    dim: int = 64
    heads: int = 4
    compressor_blocks: int = 4
    decompressor_blocks: int = 4
    mlp_ratio: int = 4
    rope_base: float = 100.0
    attention_window: int = 0
    attention_halo: int = 0

    def __post_init__(self) -> None:
        if self.attention_window < 0 or self.attention_halo < 0:
            raise ValueError(f"attention_window and attention_halo must be >= 0, got "
                             f"{self.attention_window}, {self.attention_halo}")
        if self.attention_halo and not self.attention_window:
            raise ValueError(f"attention_halo {self.attention_halo} needs an attention_window")
        if self.dim % self.heads or (self.dim // self.heads) % 2:
            raise ValueError(f"dim / heads must be an even integer, got dim={self.dim}, heads={self.heads}")
        if (self.dim // self.heads) < 6:
            raise ValueError(f"head dim must be >= 6 for 3-D RoPE, got {self.dim // self.heads}")
        if self.compressor_blocks < 1 or self.decompressor_blocks < 1:
            raise ValueError(
                f"block counts must be >= 1, got {self.compressor_blocks}, {self.decompressor_blocks}"
            )


    def identity(self) -> dict[str, object]:
        """The dict a tokenizer id hashes: the fields added after format 2 only when set, so the
        ids of layers that attend over the whole frame stay what they were."""
        d = self.to_dict()
        for key in ("attention_window", "attention_halo"):
            if not d[key]:
                del d[key]
        return d


ADAPTIVE_PRESETS: dict[str, AdaptiveConfig] = {
    # ~0.40M params, ~12% of the `tiny` base tokenizer; trainable on CPU. Attention within 16x16-token
    # tiles: the 128x128 frame it is trained on, and at 256x256 0.45x the cost of the whole frame
    # (`benchmarks/bench_compressor_context.py`).
    "tiny": AdaptiveConfig(attention_window=16),
    # The paper's reference size: 8 + 8 pre-norm blocks at d = 256.
    "reference": AdaptiveConfig(preset="reference", dim=256, heads=8, compressor_blocks=8, decompressor_blocks=8),
}


def adaptive_preset(name: str) -> AdaptiveConfig:
    if name not in ADAPTIVE_PRESETS:
        raise ValueError(f"unknown adaptive preset {name!r}; choose from {sorted(ADAPTIVE_PRESETS)}")
    return ADAPTIVE_PRESETS[name]


def _rope_pairs(head_dim: int) -> tuple[int, int, int]:
    """Rotation pairs given to the (t, h, w) axes; the spatial axes get the larger share."""
    pairs = head_dim // 2
    spatial = pairs // 3
    return pairs - 2 * spatial, spatial, spatial


def rope_angles(grid: tuple[int, int, int], head_dim: int, base: float, device: torch.device) -> torch.Tensor:
    """Rotation angles (t*h*w, head_dim / 2) float32 for raster positions of the grid."""
    t, h, w = grid
    pos = torch.stack(
        torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij"), dim=-1
    ).reshape(-1, 3).to(device=device, dtype=torch.float32)  # (N, 3)
    parts = []
    for axis, n_pairs in enumerate(_rope_pairs(head_dim)):
        freqs = base ** (-torch.arange(n_pairs, device=device, dtype=torch.float32) / n_pairs)
        parts.append(pos[:, axis : axis + 1] * freqs)  # (N, n_pairs)
    return torch.cat(parts, dim=1)


def rope_rotation(angles: torch.Tensor) -> torch.Tensor:
    """Angles (..., head_dim / 2) -> the unit complex64 rotations `apply_rope` multiplies by."""
    return torch.polar(torch.ones_like(angles), angles)


def apply_rope(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """x: (..., N, head_dim), dims (2i, 2i+1) a pair; rotation: (N, head_dim / 2) complex64
    (`rope_rotation`), or any shape broadcasting to x's pairs -> x with each pair rotated.

    One complex multiply on the pairs (x1 cos - x2 sin, x1 sin + x2 cos), in float32 whatever x's
    dtype (a half-precision x is rotated in float32 and cast back).
    """
    pairs = x.float().unflatten(-1, (-1, 2))  # (..., N, hd / 2, 2)
    if pairs.storage_offset() % 2 or any(stride % 2 for stride in pairs.stride()[:-1]):
        pairs = pairs.contiguous()  # a complex view needs whole (re, im) pairs
    return torch.view_as_real(torch.view_as_complex(pairs) * rotation).flatten(-2).to(x.dtype)


class Block(nn.Module):
    """Pre-norm transformer block with 3-D RoPE attention and a GELU MLP."""

    def __init__(self, cfg: AdaptiveConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.window = cfg.attention_window, cfg.attention_halo
        self.norm1 = nn.LayerNorm(cfg.dim)
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim)
        self.proj = nn.Linear(cfg.dim, cfg.dim)
        self.norm2 = nn.LayerNorm(cfg.dim)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.dim, cfg.mlp_ratio * cfg.dim), nn.GELU(), nn.Linear(cfg.mlp_ratio * cfg.dim, cfg.dim)
        )

    def forward(self, x: torch.Tensor, rotation: torch.Tensor, grid: tuple[int, int, int],
                needed: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, N, d) over grid (t, h, w) in raster order, rotation (N, hd / 2) complex (`rope_rotation`)
        -> (B, N, d).

        needed: (B, N) bool, the positions whose output is read; elsewhere the output is x unchanged.
        Every position is still a key, so needed positions get exactly the full block's output while
        queries and the MLP run only there.
        """
        b, n, d = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, d // self.heads)  # (B, N, 3, heads, hd)
        if needed is None:
            qk = apply_rope(qkv[:, :, :2].permute(2, 0, 3, 1, 4), rotation)  # (2, B, heads, N, hd)
            y = windowed_attention(qk[0], qk[1], qkv[:, :, 2].transpose(1, 2), grid, *self.window)  # (B, heads, N, hd)
            return self._residual(x, y.transpose(1, 2).reshape(b, n, d))
        rows = needed.reshape(-1).nonzero().squeeze(1)  # (M,) b * N + position, ascending
        k = apply_rope(qkv[:, :, 1].transpose(1, 2), rotation)  # (B, heads, N, hd)
        q = apply_rope(qkv[:, :, 0].reshape(b * n, self.heads, -1)[rows].transpose(0, 1), rotation[rows % n])
        y = windowed_attention_at_rows(q, rows, k, qkv[:, :, 2].transpose(1, 2), grid, *self.window)  # (heads, M, hd)
        kept = self._residual(x.reshape(b * n, d)[rows], y.transpose(0, 1).reshape(-1, d))  # (M, d)
        return x.reshape(b * n, d).index_copy(0, rows, kept).reshape(b, n, d)

    def _residual(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x (..., d) plus the projected attention output y (..., d), then the MLP's residual."""
        x = x + self.proj(y)
        return x + self.mlp(self.norm2(x))


class GridTransformer(nn.Module):
    """in (B, t, h, w, c_in) + keep (B, t, h, w) bool -> residual (B, t, h, w, c_out), zero at init."""

    def __init__(self, cfg: AdaptiveConfig, c_in: int, c_out: int, n_blocks: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.inp = nn.Linear(c_in, cfg.dim)
        self.keep_embed = nn.Embedding(2, cfg.dim)  # 0: dropped, 1: kept
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(n_blocks))
        self.norm = nn.LayerNorm(cfg.dim)
        self.out = nn.Linear(cfg.dim, c_out)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, keep: torch.Tensor, content: torch.Tensor | None = None,
                needed: torch.Tensor | None = None) -> torch.Tensor:
        """needed: (B, t, h, w) bool, the positions whose output is read (None: all); the last block
        computes only there and the output elsewhere is unspecified (finite)."""
        b, t, h, w, _ = x.shape
        tokens = self.inp(x.reshape(b, t * h * w, -1))  # (B, N, d)
        if content is not None:  # positions whose input is meaningless take `content` (d,) instead
            tokens = torch.where(keep.reshape(b, -1, 1), tokens, content)
        tokens = tokens + self.keep_embed(keep.reshape(b, -1).long())  # (B, N, d)
        rotation = rope_rotation(rope_angles((t, h, w), self.cfg.dim // self.cfg.heads, self.cfg.rope_base, x.device))
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            tokens = block(tokens, rotation, (t, h, w), needed.reshape(b, -1) if needed is not None and i == last else None)
        return self.out(self.norm(tokens)).reshape(b, t, h, w, -1)  # (B, t, h, w, c_out)


class Compressor(nn.Module):
    """Moves information from dropped latent positions into kept ones before FSQ."""

    def __init__(self, cfg: AdaptiveConfig, latent_dim: int) -> None:
        super().__init__()
        self.net = GridTransformer(cfg, latent_dim, latent_dim, cfg.compressor_blocks)

    def forward(self, bounded: torch.Tensor, latent: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """bounded: (B, t, h, w, D) latent in ~[-1, 1] (network input); latent: (B, t, h, w, D)
        pre-quantization; keep: (B, t, h, w) bool -> corrected pre-quantization latent, meaningful at
        kept positions only (the last block runs there alone; the rest is quantized and then dropped)."""
        return latent + self.net(bounded, keep, needed=keep)  # (B, t, h, w, D)


class Decompressor(nn.Module):
    """Rebuilds the full code grid from kept codes and the keep mask."""

    def __init__(self, cfg: AdaptiveConfig, latent_dim: int) -> None:
        super().__init__()
        self.net = GridTransformer(cfg, latent_dim, latent_dim, cfg.decompressor_blocks)
        self.mask_token = nn.Parameter(torch.zeros(cfg.dim))
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, codes: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """codes: (B, t, h, w, D) in [-1, 1]; keep: (B, t, h, w) bool -> (B, t, h, w, D) decoder input."""
        filled = codes * keep.unsqueeze(-1).to(codes.dtype)  # dropped positions carry no content
        return filled + self.net(filled, keep, content=self.mask_token)  # (B, t, h, w, D)
