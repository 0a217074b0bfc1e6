"""Where the model runs: a device spec ('auto', 'cpu', 'cuda', 'cuda:N') checked and resolved
in one place, and the mixed-precision context every model pass of a command uses on it.

'auto' picks the first CUDA device when one is visible, else the CPU. An explicit 'cuda'
on a machine without one (or an index past the last GPU) is an error that names the spec
and what the machine has. Mixed precision is bfloat16 autocast on CUDA only; CPU passes
stay float32, so CPU results are exact and comparable across runs.

torch is imported only by the functions that need it: configs validate a spec without it.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import TYPE_CHECKING, ContextManager

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
_SPEC = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device_spec(spec: object) -> str:
    """The spec normalised ('auto', 'cpu', 'cuda', 'cuda:N'); ValueError for anything else.

    Spelling only: a driver without a GPU may configure work for GPU actors elsewhere.
    """
    text = str(spec).strip().lower()
    if not _SPEC.fullmatch(text):
        raise ValueError(f"device must be {DEVICE_CHOICES}, got {spec!r}")
    return text


def resolve_device(spec: str | torch.device) -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' (or a torch.device) -> a usable torch.device."""
    import torch

    text = check_device_spec(spec)
    if text == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise ValueError(f"device {spec!r} asks for CUDA, but this machine has no usable CUDA device "
                         f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); use 'cpu' or 'auto'")
    index = int(text.partition(":")[2] or 0)
    if index >= count:
        raise ValueError(f"device {spec!r}: this machine has {count} CUDA device(s), cuda:0..cuda:{count - 1}")
    return torch.device("cuda", index)


def mixed_precision(device: torch.device, enabled: bool = True) -> ContextManager[object]:
    """bfloat16 autocast on CUDA when enabled; a no-op context on the CPU."""
    import torch

    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
