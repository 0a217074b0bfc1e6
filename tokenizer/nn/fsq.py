"""Finite Scalar Quantization (Mentzer et al., "Finite Scalar Quantization: VQ-VAE
Made Simple", 2023), as used by the Cosmos discrete video tokenizers.

Each latent channel i is bounded with tanh to L_i levels and rounded with a
straight-through gradient. Codes are normalized to [-1, 1]; the token id of a
code vector k (integers 0 <= k_i < L_i) is sum_i k_i * prod_{j<i} L_j.
"""

from __future__ import annotations

import torch
from torch import nn


class FSQ(nn.Module):
    """Quantizer over the last dimension.

    levels: one level count per channel; codebook size = prod(levels).
    """

    def __init__(self, levels: tuple[int, ...]) -> None:
        super().__init__()
        lv = torch.tensor(levels, dtype=torch.int64)
        basis = torch.cumprod(torch.cat([torch.ones(1, dtype=torch.int64), lv[:-1]]), 0)
        self.register_buffer("_levels", lv, persistent=False)
        self.register_buffer("_basis", basis, persistent=False)
        self.levels = tuple(levels)
        self.dim = len(levels)
        self.codebook_size = int(torch.prod(lv))

    def bound(self, z: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
        """Map unbounded z (..., dim) into (-L/2, L/2) so that rounding gives L values."""
        lv = self._levels.to(z.dtype)
        half_l = (lv - 1) * (1 + eps) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0).to(z.dtype)
        shift = torch.atanh(offset / half_l)
        return torch.tanh(z + shift) * half_l - offset

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: (..., dim) float -> normalized codes (..., dim) in [-1, 1], straight-through."""
        bounded = self.bound(z)
        rounded = bounded + (torch.round(bounded) - bounded).detach()
        half_width = (self._levels // 2).to(z.dtype)
        return rounded / half_width

    def codes_to_indices(self, codes: torch.Tensor) -> torch.Tensor:
        """codes: (..., dim) normalized -> token ids (...) int64 in [0, codebook_size)."""
        if codes.shape[-1] != self.dim:
            raise ValueError(f"codes last dim must be {self.dim}, got {tuple(codes.shape)}")
        half_width = self._levels // 2
        k = torch.round(codes * half_width.to(codes.dtype)).to(torch.int64) + half_width
        return (k * self._basis).sum(-1)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """indices: (...) integer ids -> normalized codes (..., dim) float32."""
        idx = indices.to(torch.int64)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.codebook_size):
            raise ValueError(
                f"token ids must lie in [0, {self.codebook_size}), got range "
                f"[{int(idx.min())}, {int(idx.max())}]"
            )
        k = (idx.unsqueeze(-1) // self._basis) % self._levels
        half_width = self._levels // 2
        return ((k - half_width).to(torch.float32)) / half_width.to(torch.float32)
