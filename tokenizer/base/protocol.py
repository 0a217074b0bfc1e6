"""The base-tokenizer interface the InfoTok adaptive layer (arXiv 2512.16975) sits on.

`tokenizer.nn.model.VideoTokenizer` (the shipped `tiny` / `base` models, weights stored in the
checkpoint) and `tokenizer.base.cosmos.CosmosBase` (NVIDIA Cosmos-Tokenizer DV4x8x8 TorchScript
files, recorded in the checkpoint by `BaseSpec`) implement it.

Layouts: video (B, 3, T, H, W) float in [-1, 1], T = 1 + 4k; grid (t, h, w) = (1 + k, H/8, W/8);
codes (B, t, h, w, D) float in [-1, 1] on the FSQ grid of `fsq`; indices (B, t, h, w) int64.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from tokenizer.base.spec import BaseSpec
from tokenizer.nn.fsq import FSQ
from tokenizer.nn.model import Encoding


@runtime_checkable
class BaseTokenizer(Protocol):
    """A fixed-rate FSQ video tokenizer.

    fsq: its quantizer (levels, ids <-> codes).
    differentiable_decoder: whether `decode` passes gradients to its codes. When it does not (a
    decoder taking integer indices), the adaptive stage trains its compressor / decompressor in
    code space (`tokenizer.train.adaptive_stage`).
    external: the recorded identity of a base whose weights live outside the checkpoint, or None
    (the checkpoint stores the base's weights).
    """

    fsq: FSQ
    differentiable_decoder: bool
    external: BaseSpec | None

    def encode(self, video: torch.Tensor) -> Encoding:
        """video (B, 3, T, H, W) in [-1, 1] -> Encoding(latent, codes, indices) on the (t, h, w) grid."""
        ...

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, t, h, w, D) -> video (B, 3, T, H, W), not clamped."""
        ...

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """indices (B, t, h, w) -> video (B, 3, T, H, W) clamped to [-1, 1]."""
        ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]:
        """Its weights (an nn.Module's)."""
        ...
