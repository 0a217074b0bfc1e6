"""NVIDIA Cosmos-Tokenizer DV4x8x8 as the base of InfoTok (Agarwal et al., "Cosmos World Foundation
Model Platform for Physical AI", 2025; InfoTok, arXiv 2512.16975, builds on it), from its two
TorchScript files; no Cosmos code is vendored.

    encoder.jit: video (B, 3, T, H, W) in [-1, 1], T = 1 + 4k -> (indices (B, t, h, w) int,
                 codes (B, 6, t, h, w) float, ...)
    decoder.jit: indices (B, t, h, w) -> video (B, 3, T, H, W)

FSQ levels (8, 8, 8, 5, 5, 5): 64,000 codes, ids as `tokenizer.nn.fsq.FSQ` numbers them.

Two differences from a `VideoTokenizer` base follow from the files:
- The encoder gives no pre-quantization latent, so the codes stand in for it (`Encoding.latent`).
- The decoder takes integer indices, so no gradient reaches the InfoTok decompressor through it
  (`differentiable_decoder` is False): the adaptive stage trains the compressor / decompressor on
  a code-space loss (the decompressed codes against the full-rate codes), and `decode` quantizes
  the codes it is given (the decompressor's output) to the nearest code's index before the decoder.
"""

from __future__ import annotations

import torch
from torch import nn

from tokenizer.base.checks import BaseInterfaceError, load_script, module_dtype, probe
from tokenizer.base.spec import BaseSpec
from tokenizer.nn.fsq import FSQ
from tokenizer.nn.model import Encoding, check_video_shape

COSMOS_LEVELS: tuple[int, ...] = (8, 8, 8, 5, 5, 5)
# the Cosmos DV encoder returns (indices, codes, ...): three items
COSMOS_OUTPUTS = 3


class CosmosBase(nn.Module):
    """A frozen Cosmos DV4x8x8 tokenizer (both files), checked against the interface when loaded."""

    differentiable_decoder = False

    def __init__(self, spec: BaseSpec, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.external: BaseSpec | None = spec
        self.encoder = encoder
        self.decoder = decoder
        self.fsq = FSQ(COSMOS_LEVELS)
        for p in self.parameters():
            p.requires_grad_(False)

    @classmethod
    def load(cls, spec: BaseSpec) -> CosmosBase:
        """Load and probe both files of spec (hashes as given: see `tokenizer.base.load`), on the CPU."""
        encoder = load_script(spec.encoder, "encoder")
        decoder = load_script(spec.decoder, "decoder")
        fsq = FSQ(COSMOS_LEVELS)
        indices, codes = probe(encoder, decoder, spec.encoder, spec.decoder, min_items=COSMOS_OUTPUTS,
                               codebook=fsq.codebook_size, channels=fsq.dim)
        if not torch.equal(fsq.codes_to_indices(codes.permute(0, 2, 3, 4, 1)), indices):
            # ids numbered otherwise would decode through the InfoTok layer as other codes
            raise BaseInterfaceError(f"base encoder {spec.encoder}: its codes (item 1) do not give its indices "
                                     f"(item 0) as FSQ levels {COSMOS_LEVELS} number them (codes in [-1, 1], "
                                     f"id = sum k_i prod_(j<i) L_j)")
        return cls(spec, encoder, decoder)

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> Encoding:
        """video (B, 3, T, H, W) float in [-1, 1] -> Encoding with latent = codes (B, t, h, w, 6)
        float32 in [-1, 1] and indices (B, t, h, w) int64."""
        check_video_shape(video)
        out = self.encoder(video.to(module_dtype(self.encoder)))
        indices = out[0].to(torch.int64)  # (B, t, h, w)
        codes = out[1].float().permute(0, 2, 3, 4, 1).contiguous()  # (B, t, h, w, 6)
        if tuple(codes.shape[:4]) != tuple(indices.shape):
            raise BaseInterfaceError(f"base encoder {self.external.encoder if self.external else ''}: indices "
                                     f"{tuple(indices.shape)} and codes {tuple(out[1].shape)} disagree")
        return Encoding(latent=codes, codes=codes, indices=indices)

    def quantize(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, t, h, w, 6) float, any range -> indices (B, t, h, w) int64 of the nearest codes."""
        half = self.fsq._levels // 2
        k = torch.round(codes.float() * half.to(torch.float32)).to(torch.int64) + half
        k = torch.minimum(k.clamp(min=0), self.fsq._levels - 1)
        return (k * self.fsq._basis).sum(-1)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, t, h, w, 6) -> video (B, 3, T, H, W) float32, not clamped; the codes are
        quantized to indices first, so no gradient flows back to them."""
        if codes.ndim != 5 or codes.shape[-1] != self.fsq.dim:
            raise ValueError(f"codes must be (B, t, h, w, {self.fsq.dim}), got {tuple(codes.shape)}")
        return self._decode(self.quantize(codes))

    @torch.no_grad()
    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """indices (B, t, h, w) integer ids -> video (B, 3, T, H, W) float32 clamped to [-1, 1]."""
        if indices.ndim != 4:
            raise ValueError(f"indices must be (B, t, h, w), got {tuple(indices.shape)}")
        return self._decode(indices.to(torch.int64)).clamp(-1, 1)

    def _decode(self, indices: torch.Tensor) -> torch.Tensor:
        return self.decoder(indices).float()  # (B, 3, T, H, W)
