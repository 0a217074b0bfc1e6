"""Interface checks of an external base's TorchScript files, run when they are loaded.

Each failure is one line naming the file and what is wrong (`BaseInterfaceError`). The files are
probed on the CPU with a small dummy clip, PROBE_SHAPE (B, 3, T, H, W) = (1, 3, 9, 16, 16) in
[-1, 1], against the Cosmos DV4x8x8 interface:

    encoder(video (B, 3, T, H, W) float in [-1, 1], T = 1 + 4k)
        -> tuple of >= min_items: (indices (B, t, h, w) integer in [0, codebook), codes (B, D, t, h, w) float, ...)
    decoder(indices (B, t, h, w) int64) -> video (B, 3, T, H, W)

with t = 1 + (T - 1) / 4, h = H / 8, w = W / 8.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

PROBE_SHAPE: tuple[int, int, int, int, int] = (1, 3, 9, 16, 16)


class BaseInterfaceError(ValueError):
    """An external base file is unreadable or does not follow the base interface."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def load_script(path: str | Path, role: str) -> torch.jit.ScriptModule:
    """Load a TorchScript file onto the CPU in eval mode; role ('encoder' / 'decoder') names it in errors."""
    path = Path(path)
    if not path.is_file():
        raise BaseInterfaceError(f"base {role} {path}: no such file")
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # torch raises RuntimeError or zip/pickle errors for a non-TorchScript file
        raise BaseInterfaceError(f"base {role} {path}: not a readable TorchScript file ({_first_line(exc)})") from None
    return module.eval()


def module_dtype(module: torch.nn.Module) -> torch.dtype:
    """The dtype a module's inputs are cast to: its first parameter's (float32 without any)."""
    params = list(module.parameters())
    return params[0].dtype if params else torch.float32


def _shape(x: Any) -> str:
    return f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__


@torch.no_grad()
def probe(encoder: torch.nn.Module, decoder: torch.nn.Module, encoder_path: str, decoder_path: str,
          min_items: int, codebook: int, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the dummy clip through both files; raise BaseInterfaceError at the first rule broken.
    Return the clip's (indices (B, t, h, w) int64, codes (B, channels, t, h, w) float32)."""
    b, _, frames, height, width = PROBE_SHAPE
    grid = (b, 1 + (frames - 1) // 4, height // 8, width // 8)
    video = torch.rand(PROBE_SHAPE, generator=torch.Generator().manual_seed(0)) * 2 - 1
    where = f"base encoder {encoder_path}"
    try:
        out = encoder(video.to(module_dtype(encoder)))
    except Exception as exc:
        raise BaseInterfaceError(f"{where}: fails on a {PROBE_SHAPE} clip ({_first_line(exc)})") from None
    if not isinstance(out, (tuple, list)) or len(out) < min_items:
        got = f"a tuple of {len(out)}" if isinstance(out, (tuple, list)) else _shape(out)
        raise BaseInterfaceError(f"{where}: must return a tuple of >= {min_items} items "
                                 f"(indices, codes, ...), got {got}")
    indices, codes = out[0], out[1]
    if not isinstance(indices, torch.Tensor) or indices.ndim != 4 or indices.is_floating_point() \
            or indices.dtype == torch.bool:
        raise BaseInterfaceError(f"{where}: indices (item 0) must be (B, t, h, w) integers, got {_shape(indices)}")
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= codebook):
        raise BaseInterfaceError(f"{where}: indices must lie in [0, {codebook}), got range "
                                 f"[{int(indices.min())}, {int(indices.max())}]")
    if not isinstance(codes, torch.Tensor) or codes.ndim != 5 or codes.shape[1] != channels:
        raise BaseInterfaceError(f"{where}: codes (item 1) must be (B, {channels}, t, h, w), got {_shape(codes)}")
    if tuple(indices.shape) != grid or (codes.shape[0],) + tuple(codes.shape[2:]) != grid:
        raise BaseInterfaceError(f"{where}: a {PROBE_SHAPE} clip must give the grid (B, t, h, w) = {grid} "
                                 f"(t = 1 + (T-1)/4, h = H/8, w = W/8), got indices {tuple(indices.shape)}, "
                                 f"codes {tuple(codes.shape)}")
    where = f"base decoder {decoder_path}"
    try:
        video_out = decoder(indices.to(torch.int64))
    except Exception as exc:
        raise BaseInterfaceError(f"{where}: fails on indices {grid} ({_first_line(exc)})") from None
    if not isinstance(video_out, torch.Tensor) or tuple(video_out.shape) != PROBE_SHAPE:
        raise BaseInterfaceError(f"{where}: indices {grid} must decode to (B, 3, T, H, W) = {PROBE_SHAPE}, "
                                 f"got {_shape(video_out)}")
    return indices.to(torch.int64), codes.float()
