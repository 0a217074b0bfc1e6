"""Tokenizer configuration: frozen dataclasses and named presets.

Architecture (Cosmos DV4x8x8 style, patchified for speed): frames are grouped
causally in fours (frame 0 alone, replicated), pixel-unshuffled by `patch`,
then encoded by per-frame 2D convolutions interleaved with causal temporal
convolutions over latent frames. Temporal compression is 4, spatial
compression is `patch * 2 ** (len(channel_mult) - 1)` and must be 8.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.config import FrozenConfig
from schemas.tokens import FSQ_LEVELS

TEMPORAL_COMPRESSION = 4
SPATIAL_COMPRESSION = 8


@dataclass(frozen=True)
class TokenizerConfig(FrozenConfig):
    """Shape of a causal FSQ video tokenizer.

    preset: name recorded in checkpoints; loading checks it.
    patch: spatial pixel-unshuffle factor applied before the first conv.
    base_channels, channel_mult: width of each resolution level (first level at H / patch).
    enc_blocks, dec_blocks: residual blocks per level in encoder / decoder.
    temporal_kernel: causal kernel size over latent frames in the first conv of each block.
    mid_attention: a single-head spatial self-attention block at the bottleneck.
    levels: FSQ levels; their product is the codebook size.
    """

    preset: str = "tiny"
    patch: int = 4
    base_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2)
    enc_blocks: int = 2
    dec_blocks: int = 3
    temporal_kernel: int = 2
    mid_attention: bool = False
    levels: tuple[int, ...] = FSQ_LEVELS

    def __post_init__(self) -> None:
        down = self.patch * 2 ** (len(self.channel_mult) - 1)
        if down != SPATIAL_COMPRESSION:
            raise ValueError(
                f"patch * 2**(len(channel_mult)-1) must be {SPATIAL_COMPRESSION}, got "
                f"patch={self.patch}, channel_mult={self.channel_mult} -> {down}"
            )
        if self.temporal_kernel < 1:
            raise ValueError(f"temporal_kernel must be >= 1, got {self.temporal_kernel}")
        if any(level < 2 for level in self.levels):
            raise ValueError(f"FSQ levels must all be >= 2, got {self.levels}")

    @property
    def codebook_size(self) -> int:
        n = 1
        for level in self.levels:
            n *= level
        return n

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(self.base_channels * m for m in self.channel_mult)


PRESETS: dict[str, TokenizerConfig] = {
    # CPU-trainable default that ships with the package.
    "tiny": TokenizerConfig(),
    # Cosmos DV4x8x8 scale (~100M params, widths 128 x [2, 4, 4]); for GPU training.
    "base": TokenizerConfig(
        preset="base",
        patch=2,
        base_channels=128,
        channel_mult=(2, 4, 4),
        enc_blocks=2,
        dec_blocks=2,
        temporal_kernel=2,
        mid_attention=True,
    ),
}


def preset(name: str) -> TokenizerConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown tokenizer preset {name!r}; choose from {sorted(PRESETS)}")
    return PRESETS[name]
