"""The probe's model: a small causal transformer over one clip's kept tokens, predicting each
next token's FSQ digits (Mentzer et al. 2023, "Finite Scalar Quantization") with one head per
digit instead of one 64,000-way softmax.

A code id is the mixed-radix number of its digits, as `tokenizer.nn.fsq.FSQ` defines it:
id = sum_i k_i * prod_{j<i} L_j, levels L = (8, 8, 8, 5, 5, 5), so k_0 = id % 8 is the least
significant. Head i predicts k_i from the transformer state plus embeddings of the true digits
k_0..k_{i-1} (teacher forcing), so p(id) = prod_i p(k_i | context, k_<i) is an exact chain-rule
factorisation of a distribution over the 64,000 codes, and -log2 p(id) is a valid code length.

Input at step j (predicting kept token j of the clip, in the stored raster order):
  embedding of token j-1 (the sum of its digit embeddings; BOS at j = 0)
  + embeddings of token j-1's (t, h, w) position (a "none" row for BOS)
  + embeddings of token j's (t, h, w) position: the mask is coded before the tokens, so the
    decoder knows where the next kept token sits; only its id is predicted here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from schemas.config import FrozenConfig
from schemas.tokens import FSQ_LEVELS

LN2 = math.log(2.0)


@dataclass(frozen=True)
class ProbeModelConfig(FrozenConfig):
    """d_model, n_layers, n_heads: the transformer; max_grid: the largest (t, h, w) latent grid
    the position embeddings cover; levels: the FSQ levels whose mixed-radix digits are predicted."""

    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    max_grid: tuple[int, int, int] = (64, 128, 128)
    levels: tuple[int, ...] = FSQ_LEVELS

    def __post_init__(self) -> None:
        if self.d_model < 8 or self.n_heads < 1 or self.d_model % self.n_heads:
            raise ValueError(f"d_model must be >= 8 and a multiple of n_heads, got {self.d_model} / {self.n_heads}")
        if self.n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {self.n_layers}")
        if len(self.max_grid) != 3 or min(self.max_grid) < 1:
            raise ValueError(f"max_grid must be 3 positive ints, got {self.max_grid}")
        if not self.levels or min(self.levels) < 2:
            raise ValueError(f"levels must be ints >= 2, got {self.levels}")

    @property
    def codebook_size(self) -> int:
        return math.prod(self.levels)


def to_digits(ids: torch.Tensor, levels: tuple[int, ...]) -> torch.Tensor:
    """ids (...) int64 in [0, prod(levels)) -> digits (..., len(levels)) int64, k_0 least significant."""
    lv = torch.tensor(levels, dtype=torch.int64, device=ids.device)
    basis = torch.cumprod(torch.cat([torch.ones(1, dtype=torch.int64, device=ids.device), lv[:-1]]), 0)
    return (ids.unsqueeze(-1) // basis) % lv


@dataclass(frozen=True)
class ProbeOutput:
    """bits: (B, L) float32, -log2 p(target id) of every step (padding steps included: mask them)."""

    bits: torch.Tensor


class _Block(nn.Module):
    """Pre-norm causal self-attention + MLP."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, length, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, heads, L, d/heads)
        x = x + self.proj(a.transpose(1, 2).reshape(b, length, d))
        return x + self.mlp(self.norm2(x))


class ProbeLM(nn.Module):
    """Causal transformer with one categorical head per FSQ digit (see the module docstring)."""

    def __init__(self, cfg: ProbeModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        # digit value L_i is the BOS symbol of digit i
        self.digit_in = nn.ModuleList(nn.Embedding(n + 1, d) for n in cfg.levels)
        # position p is row p + 1; row 0 is "no position" (BOS)
        self.pos_prev = nn.ModuleList(nn.Embedding(n + 1, d) for n in cfg.max_grid)
        self.pos_next = nn.ModuleList(nn.Embedding(n + 1, d) for n in cfg.max_grid)
        self.blocks = nn.ModuleList(_Block(d, cfg.n_heads) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(d)
        self.digit_cond = nn.ModuleList(nn.Embedding(n, d) for n in cfg.levels[:-1])
        self.heads = nn.ModuleList(nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, n)) for n in cfg.levels)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, prev_ids: torch.Tensor, prev_pos: torch.Tensor, next_pos: torch.Tensor,
                target: torch.Tensor) -> ProbeOutput:
        """prev_ids (B, L) int64: the previous token's id, or -1 for BOS; prev_pos, next_pos
        (B, L, 3) int64 (t, h, w), -1 for none; target (B, L) int64 ids in [0, codebook)."""
        levels = self.cfg.levels
        bos = prev_ids < 0
        prev_digits = to_digits(prev_ids.clamp(min=0), levels)  # (B, L, D)
        prev_digits = torch.where(bos.unsqueeze(-1), torch.tensor(levels, device=prev_ids.device), prev_digits)
        x = sum(emb(prev_digits[..., i]) for i, emb in enumerate(self.digit_in))  # (B, L, d)
        x = x + sum(emb(prev_pos[..., i] + 1) for i, emb in enumerate(self.pos_prev))
        x = x + sum(emb(next_pos[..., i] + 1) for i, emb in enumerate(self.pos_next))
        for block in self.blocks:
            x = block(x)
        h = self.norm(x)  # (B, L, d)
        digits = to_digits(target, levels)  # (B, L, D)
        nats = torch.zeros(target.shape, dtype=torch.float32, device=target.device)
        cond = torch.zeros_like(h)
        for i, head in enumerate(self.heads):
            logits = head(h + cond)  # (B, L, L_i)
            nats = nats + F.cross_entropy(logits.float().flatten(0, 1), digits[..., i].flatten(),
                                          reduction="none").view(target.shape)
            if i < len(self.digit_cond):
                cond = cond + self.digit_cond[i](digits[..., i])
        return ProbeOutput(bits=nats / LN2)
