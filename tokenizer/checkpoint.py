"""Tokenizer checkpoints: safetensors weights with the JSON config in the header.

One file holds everything needed to rebuild the model. `tokenizer_id` is a
content hash of the config and weights; every dataset records it, so a
dataset can always be traced to the exact model that wrote it.

Format versions: "1" is a fixed-rate tokenizer. "2" adds the InfoTok adaptive layer
(arXiv 2512.16975): an `adaptive_config` JSON header entry and tensors named
`adaptive.compressor.*`, `adaptive.decompressor.*`, `adaptive.mean_info` (E[I], float64)
and `adaptive.info_count`; base tensors keep their version-1 names. Fixed-rate
checkpoints are still written as version 1, so their bytes and ids do not change.
Version 2 files written since the gain and latent routers also hold `adaptive.latent_head.*`,
`adaptive.latent_head_steps`, `adaptive.mean_gain` / `adaptive.gain_count` (E[s]) and
`adaptive.mean_latent` / `adaptive.latent_count` (E[s^]); an older file without them loads with
those routers uncalibrated (NaN) and the head untrained. Since the latent router's slope comes
from clip descriptors they also hold `adaptive.latent_slope.*` (float32); a file from before it
holds `adaptive.latent_head.clip.*` instead, which loads (and counts in its id) but is not used:
its latent router must be retrained.
"3" is the adaptive layer over an external base (NVIDIA Cosmos-Tokenizer DV4x8x8, `tokenizer.base`):
no base tensors and no `config`; a `base` JSON header entry (`tokenizer.base.spec.BaseSpec`: kind,
the SHA-256 of each TorchScript file, the paths it was trained from). Its id is
'<kind>-adaptive-<16 hex>' over the base's kind and file hashes, the adaptive config and the
tensors. Loading finds the files at the recorded paths, or where `INFOTOK_BASE=KIND:ENCODER,DECODER`
(or `load_tokenizer(base=...)`) points, and refuses a file whose hash differs.
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

from tokenizer.adaptive.modules import AdaptiveConfig
from tokenizer.adaptive.routers.gain2_curves import GAIN2_CURVES_KEY, GAIN2_RATES_KEY, Gain2Calibration
from tokenizer.adaptive.model import LEGACY_STATE_PREFIXES, OPTIONAL_STATE_PREFIXES, AdaptiveTokenizer
from tokenizer.base.protocol import BaseTokenizer
from tokenizer.base.spec import BaseSpec
from tokenizer.config import TokenizerConfig
from tokenizer.nn.model import VideoTokenizer

logger = logging.getLogger(__name__)

FORMAT = "infotok-tokenizer"
FORMAT_VERSION = "1"
ADAPTIVE_FORMAT_VERSION = "2"
EXTERNAL_BASE_FORMAT_VERSION = "3"
READABLE_VERSIONS = (FORMAT_VERSION, ADAPTIVE_FORMAT_VERSION, EXTERNAL_BASE_FORMAT_VERSION)
ADAPTIVE_PREFIX = "adaptive."
# Tensors kept in their own dtype when a checkpoint is exported in half precision.
_EXACT_TENSORS = {"adaptive.mean_info", "adaptive.mean_gain", "adaptive.mean_latent", "adaptive.gain2_rates",
                  "adaptive.gain2_curves", "adaptive.latent_slope.shift", "adaptive.latent_slope.scale",
                  "adaptive.latent_slope.weight", "adaptive.latent_slope.bias", "adaptive.latent_head.detail_weight"}
DEFAULT_CHECKPOINT = Path(__file__).parent / "checkpoints" / "tiny.safetensors"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, incompatible or not a tokenizer checkpoint."""


@dataclass(frozen=True)
class LoadedTokenizer:
    """A model rebuilt from a checkpoint, with its identity and provenance.

    model: the fixed-rate tokenizer (for an adaptive checkpoint, the base inside `adaptive`: a
    `VideoTokenizer`, or for format 3 the external base it records).
    adaptive: the InfoTok adaptive tokenizer, or None for a fixed-rate checkpoint.
    """

    model: BaseTokenizer
    tokenizer_id: str
    path: str
    info: dict[str, Any]
    adaptive: AdaptiveTokenizer | None = None

    @property
    def is_adaptive(self) -> bool:
        return self.adaptive is not None


def checkpoint_state(model: VideoTokenizer | AdaptiveTokenizer) -> dict[str, torch.Tensor]:
    """Tensors as stored in a checkpoint: base names unchanged, adaptive ones under `adaptive.`
    (an external base's weights are not stored)."""
    if isinstance(model, AdaptiveTokenizer):
        state = {k: v for k, v in model.base.state_dict().items()} if model.base.external is None else {}
        state.update({ADAPTIVE_PREFIX + k: v for k, v in model.state_dict().items() if not k.startswith("base.")})
        if model.gain2 is not None:  # only a calibrated checkpoint has them (older ids stay the same)
            state.update({ADAPTIVE_PREFIX + k: v for k, v in model.gain2.tensors().items()})
    else:
        state = dict(model.state_dict())
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def tokenizer_id_of(config: TokenizerConfig | BaseSpec, state: dict[str, torch.Tensor],
                    adaptive: AdaptiveConfig | None = None) -> str:
    """Content hash over the canonical config(s) (an external base: its kind and file hashes) and
    every tensor's bytes: '<preset>-<16 hex>' for a fixed-rate model, '<preset>-adaptive-<16 hex>'
    for InfoTok, '<kind>-adaptive-<16 hex>' for InfoTok on an external base."""
    h = hashlib.sha256()
    head = config.identity() if isinstance(config, BaseSpec) else config.to_dict()
    h.update(json.dumps(head, sort_keys=True).encode())
    if adaptive is not None:
        h.update(json.dumps(adaptive.identity(), sort_keys=True).encode())
    for name in sorted(state):
        t = state[name].detach().contiguous().cpu()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    name = config.name if isinstance(config, BaseSpec) else config.preset
    kind = f"{name}-adaptive" if adaptive is not None else name
    return f"{kind}-{h.hexdigest()[:16]}"


def save_tokenizer(
    model: VideoTokenizer | AdaptiveTokenizer,
    path: str | Path,
    info: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> str:
    """Write model weights (optionally cast to `dtype`) and config; return the tokenizer id.

    An `AdaptiveTokenizer` is written as format version 2 (base + adaptive layer + E[I]), or 3
    on an external base (adaptive layer + E[I] + the base's `BaseSpec`).
    The file is written to a temporary name and renamed, so a reader never sees half a file; it
    is readable by others as the umask allows (safetensors' own writer makes it 0600).
    """
    from safetensors.torch import save

    path = Path(path)
    adaptive = model.config if isinstance(model, AdaptiveTokenizer) else None
    external = model.base.external if isinstance(model, AdaptiveTokenizer) else None
    base_config = external if external is not None else (
        model.base.config if isinstance(model, AdaptiveTokenizer) else model.config)
    state = checkpoint_state(model)
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() and k not in _EXACT_TENSORS else v for k, v in state.items()}
    tid = tokenizer_id_of(base_config, state, adaptive)
    meta = {
        "format": FORMAT,
        "format_version": ADAPTIVE_FORMAT_VERSION if adaptive is not None else FORMAT_VERSION,
        "config": json.dumps(base_config.to_dict(), sort_keys=True),
        "tokenizer_id": tid,
        "info": json.dumps(info or {}, sort_keys=True),
    }
    if external is not None:
        meta["format_version"] = EXTERNAL_BASE_FORMAT_VERSION
        meta["base"] = meta.pop("config")
    if adaptive is not None:
        meta["adaptive_config"] = json.dumps(adaptive.to_dict(), sort_keys=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:  # a plain open: the file gets 0666 less the umask, like any other
        f.write(save(state, metadata=meta))
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
    if meta.get("format_version") not in READABLE_VERSIONS:
        raise CheckpointError(
            f"checkpoint {path} has format_version {meta.get('format_version')!r}, "
            f"this infotok reads {', '.join(map(repr, READABLE_VERSIONS))}"
        )
    return meta


def stored_float_dtype(path: str | Path) -> torch.dtype | None:
    """The dtype most of a checkpoint's floating-point tensors are stored in (None: it has none), so
    that a rewritten copy keeps the weights bit for bit (`save_tokenizer(..., dtype=...)`)."""
    from collections import Counter

    from safetensors import safe_open

    names = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64}
    with safe_open(str(path), framework="pt") as f:
        kinds = Counter(str(f.get_slice(k).get_dtype()) for k in f.keys() if k not in _EXACT_TENSORS)
    floats = [(n, k) for k, n in kinds.items() if k in names]
    return names[max(floats)[1]] if floats else None


def router_problem(path: str | Path, router: str, need_mean: bool = True) -> str | None:
    """Why the checkpoint at path cannot route with `router` as it stands (None: it can), read
    without loading the weights (`Router.problem`: the latent head untrained, gain2's curves missing,
    or (need_mean) the router's E[signal] never set). A fixed-rate checkpoint has no router and no problem."""
    from safetensors import safe_open

    from tokenizer.adaptive.routers.registry import get_router

    meta = read_header(path)
    if meta.get("format_version") not in (ADAPTIVE_FORMAT_VERSION, EXTERNAL_BASE_FORMAT_VERSION):
        return None
    chosen = get_router(router)
    with safe_open(str(path), framework="pt") as f:
        return chosen.problem(_FileState(str(path), f), calibrated=True, need_mean=need_mean)


class _FileState:
    """A checkpoint file's adaptive tensors as a router's readiness check reads them (`RouterState`)."""

    def __init__(self, path: str, handle: Any) -> None:
        self.where = f"checkpoint {path}"
        self._file = handle
        self._names = set(handle.keys())

    def has(self, name: str) -> bool:
        return ADAPTIVE_PREFIX + name in self._names

    def value(self, name: str) -> float:
        return float(self._file.get_tensor(ADAPTIVE_PREFIX + name)) if self.has(name) else float("nan")


def load_tokenizer(
    path: str | Path | None = None,
    expect_preset: str | None = None,
    device: str | torch.device = "cpu",
    base: str | None = None,
) -> LoadedTokenizer:
    """Rebuild a tokenizer from a checkpoint (default: the shipped `tiny` checkpoint), in eval mode.

    For a version-2 or 3 checkpoint the result's `adaptive` holds the InfoTok tokenizer and
    `model` is its base; for a version-1 checkpoint `adaptive` is None. base ('KIND:ENCODER,DECODER',
    default $INFOTOK_BASE): where a version-3 checkpoint's base files are, instead of the recorded paths.
    """
    from safetensors.torch import load_file

    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    meta = read_header(path)
    spec = _recorded_base(path, meta) if meta.get("format_version") == EXTERNAL_BASE_FORMAT_VERSION else None
    if spec is not None:
        id_config: TokenizerConfig | BaseSpec = spec
        if expect_preset is not None:
            raise CheckpointError(f"checkpoint {path} is on a {spec.kind!r} base, expected preset {expect_preset!r}")
    else:
        try:
            id_config = config = TokenizerConfig.from_dict(json.loads(meta["config"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(f"checkpoint {path} has an invalid config: {exc}") from exc
        if expect_preset is not None and config.preset != expect_preset:
            raise CheckpointError(f"checkpoint {path} is preset {config.preset!r}, expected {expect_preset!r}")
    adaptive_cfg = None
    if meta.get("format_version") in (ADAPTIVE_FORMAT_VERSION, EXTERNAL_BASE_FORMAT_VERSION):
        try:
            adaptive_cfg = AdaptiveConfig.from_dict(json.loads(meta["adaptive_config"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(f"checkpoint {path} has an invalid adaptive config: {exc}") from exc
    try:
        state = load_file(str(path))
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt: {exc}") from exc
    if spec is not None:
        from tokenizer.base.load import load_recorded_base

        try:
            model: BaseTokenizer = load_recorded_base(spec, base, where=f"checkpoint {path}")
        except ValueError as exc:  # BaseInterfaceError: one line naming the file
            raise CheckpointError(str(exc)) from None
    else:
        model = VideoTokenizer(config)
    full: BaseTokenizer | AdaptiveTokenizer = model if adaptive_cfg is None else AdaptiveTokenizer(model, adaptive_cfg)
    gain2 = {k: state.pop(ADAPTIVE_PREFIX + k) for k in (GAIN2_RATES_KEY, GAIN2_CURVES_KEY)
             if ADAPTIVE_PREFIX + k in state}
    legacy_names = tuple(ADAPTIVE_PREFIX + p for p in LEGACY_STATE_PREFIXES)
    legacy = {k: state.pop(k) for k in list(state) if adaptive_cfg is not None and k.startswith(legacy_names)}
    expected = checkpoint_state(full)
    optional = tuple(ADAPTIVE_PREFIX + p for p in OPTIONAL_STATE_PREFIXES)
    missing = sorted(k for k in set(expected) - set(state) if not k.startswith(optional))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {path} does not match "
            f"{f'base {spec.kind!r}' if spec is not None else f'preset {config.preset!r}'}: "
            f"missing tensors {missing[:5]}, unexpected tensors {unexpected[:5]}"
        )
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise CheckpointError(
                f"checkpoint {path}: tensor {name} has shape {tuple(tensor.shape)}, "
                f"config expects {tuple(expected[name].shape)}"
            )
    stored = {**state, **legacy, **{ADAPTIVE_PREFIX + k: v for k, v in gain2.items()}}
    tid = tokenizer_id_of(id_config, stored, adaptive_cfg)
    if meta.get("tokenizer_id") != tid:
        raise CheckpointError(
            f"checkpoint {path}: weights do not match the recorded tokenizer_id "
            f"{meta.get('tokenizer_id')!r} (content hash {tid!r}); the file was modified"
        )
    if gain2 and isinstance(full, AdaptiveTokenizer):
        if len(gain2) != 2:
            raise CheckpointError(f"checkpoint {path} has only {sorted(gain2)} of the gain2 calibration tensors")
        try:
            full.set_gain2(Gain2Calibration.from_tensors(gain2[GAIN2_RATES_KEY], gain2[GAIN2_CURVES_KEY]))
        except ValueError as exc:
            raise CheckpointError(f"checkpoint {path}: {exc}") from None
    cast = {k: v.to(expected[k].dtype) for k, v in state.items()}
    if spec is None:
        model.load_state_dict({k: v for k, v in cast.items() if not k.startswith(ADAPTIVE_PREFIX)})
    if isinstance(full, AdaptiveTokenizer):
        full.load_state_dict({k[len(ADAPTIVE_PREFIX):]: v for k, v in cast.items() if k.startswith(ADAPTIVE_PREFIX)},
                             strict=False)
    full.eval().to(device)
    info = json.loads(meta.get("info", "{}"))
    logger.info("loaded tokenizer %s from %s", tid, path)
    return LoadedTokenizer(model=model, tokenizer_id=tid, path=str(path), info=info,
                           adaptive=full if isinstance(full, AdaptiveTokenizer) else None)


def _recorded_base(path: Path, meta: dict[str, str]) -> BaseSpec:
    """The external base a version-3 checkpoint records."""
    try:
        return BaseSpec.from_dict(json.loads(meta["base"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path} has an invalid base record: {exc}") from exc
