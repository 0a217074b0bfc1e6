"""Where the model runs: a device spec ('auto', 'cpu', 'cuda', 'cuda:N') resolved once, and
the mixed-precision context every model pass of a command uses on it.

'auto' picks the first CUDA device when one is visible, else the CPU. An explicit 'cuda'
on a machine without one (or an index past the last GPU) is an error that names the spec
and what the machine has. Mixed precision is bfloat16 autocast on CUDA only; on the CPU
every pass runs in float32 (bfloat16 convolutions are slower there, not faster).
"""

from __future__ import annotations

import contextlib
import logging
from typing import ContextManager

import torch

logger = logging.getLogger(__name__)

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def resolve_device(spec: str | torch.device) -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' (or a torch.device) -> a usable torch.device."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = str(spec).strip().lower()
    if text == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(text)
    except RuntimeError as exc:
        raise ValueError(f"device must be {DEVICE_CHOICES}, got {spec!r}") from exc
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise ValueError(f"device must be {DEVICE_CHOICES}, got {spec!r}")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise ValueError(f"device {spec!r} asks for CUDA, but this machine has no usable CUDA device "
                         f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); use 'cpu' or 'auto'")
    index = 0 if dev.index is None else dev.index
    if index >= count:
        raise ValueError(f"device {spec!r}: this machine has {count} CUDA device(s), cuda:0..cuda:{count - 1}")
    return torch.device("cuda", index)


def mixed_precision(device: torch.device, enabled: bool = True) -> ContextManager[object]:
    """bfloat16 autocast on CUDA when enabled; a no-op context on the CPU."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
