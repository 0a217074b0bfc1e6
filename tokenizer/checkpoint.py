"""Tokenizer checkpoints: safetensors weights with the JSON config in the header.

One file holds everything needed to rebuild the model. `tokenizer_id` is a
content hash of the config and weights; every dataset records it, so a
dataset can always be traced to the exact model that wrote it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tokenizer.config import TokenizerConfig
from tokenizer.model import VideoTokenizer

logger = logging.getLogger(__name__)

FORMAT = "infotok-tokenizer"
FORMAT_VERSION = "1"
DEFAULT_CHECKPOINT = Path(__file__).parent / "checkpoints" / "tiny.safetensors"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, incompatible or not a tokenizer checkpoint."""


@dataclass(frozen=True)
class LoadedTokenizer:
    """A model rebuilt from a checkpoint, with its identity and provenance."""

    model: VideoTokenizer
    tokenizer_id: str
    path: str
    info: dict[str, Any]


def tokenizer_id_of(config: TokenizerConfig, state: dict[str, torch.Tensor]) -> str:
    """Content hash: '<preset>-<16 hex>' over the canonical config and every tensor's bytes."""
    h = hashlib.sha256()
    h.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    for name in sorted(state):
        t = state[name].detach().contiguous().cpu()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return f"{config.preset}-{h.hexdigest()[:16]}"


def save_tokenizer(
    model: VideoTokenizer,
    path: str | Path,
    info: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> str:
    """Write model weights (optionally cast to `dtype`) and config; return the tokenizer id.

    The file is written to a temporary name and renamed, so a reader never sees half a file.
    """
    from safetensors.torch import save_file

    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    tid = tokenizer_id_of(model.config, state)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": json.dumps(model.config.to_dict(), sort_keys=True),
        "tokenizer_id": tid,
        "info": json.dumps(info or {}, sort_keys=True),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return tid


def read_header(path: str | Path) -> dict[str, str]:
    """Return the safetensors metadata of a tokenizer checkpoint, validating what it can."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory, expected a .safetensors file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"checkpoint {path} is not a readable safetensors file: {exc}") from exc
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"checkpoint {path} is not an infotok tokenizer checkpoint (metadata format={meta.get('format')!r})"
        )
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format_version {meta.get('format_version')!r}, this infotok reads {FORMAT_VERSION!r}"
        )
    return meta


def load_tokenizer(
    path: str | Path | None = None,
    expect_preset: str | None = None,
    device: str | torch.device = "cpu",
) -> LoadedTokenizer:
    """Rebuild a tokenizer from a checkpoint (default: the shipped `tiny` checkpoint), in eval mode."""
    from safetensors.torch import load_file

    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    meta = read_header(path)
    try:
        config = TokenizerConfig.from_dict(json.loads(meta["config"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path} has an invalid config: {exc}") from exc
    if expect_preset is not None and config.preset != expect_preset:
        raise CheckpointError(f"checkpoint {path} is preset {config.preset!r}, expected {expect_preset!r}")
    try:
        state = load_file(str(path))
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt: {exc}") from exc
    model = VideoTokenizer(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {path} does not match preset {config.preset!r}: "
            f"missing tensors {missing[:5]}, unexpected tensors {unexpected[:5]}"
        )
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise CheckpointError(
                f"checkpoint {path}: tensor {name} has shape {tuple(tensor.shape)}, "
                f"config expects {tuple(expected[name].shape)}"
            )
    tid = tokenizer_id_of(config, state)
    if meta.get("tokenizer_id") != tid:
        raise CheckpointError(
            f"checkpoint {path}: weights do not match the recorded tokenizer_id "
            f"{meta.get('tokenizer_id')!r} (content hash {tid!r}); the file was modified"
        )
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()})
    model.eval().to(device)
    info = json.loads(meta.get("info", "{}"))
    logger.info("loaded tokenizer %s from %s", tid, path)
    return LoadedTokenizer(model=model, tokenizer_id=tid, path=str(path), info=info)
