"""Training of the fixed-rate tokenizer: L1 reconstruction (optional SSIM term), AdamW,
warmup + cosine schedule, resumable from its own checkpoints, deterministic from a seed.

Data arrives through `batch_fn(step) -> uint8 (B, T, H, W, 3)`, a pure function of the
step, so a resumed run sees exactly the batches an uninterrupted run would have.

With `adaptive` set (an `AdaptiveStageConfig`), it trains the InfoTok adaptive layer
(arXiv 2512.16975) on top of the fixed-rate checkpoint `init` instead (see
`tokenizer.train.adaptive_stage`); the loop, the checkpoints and the resume rules are the same.
On an external base (`AdaptiveStageConfig.base`, e.g. Cosmos DV) no `init` is needed, the loss is
taken in code space (the base's decoder passes no gradient) and the resume state omits the base's
weights (the checkpoint records the base's files instead).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tokenizer.checkpoint import load_tokenizer, save_tokenizer
from tokenizer.config import preset
from tokenizer.device import check_device_spec, mixed_precision, resolve_device
from tokenizer.eval.metrics import psnr, ssim
from tokenizer.nn.model import VideoTokenizer
from tokenizer.train.prefetch import BatchPrefetcher
from tokenizer.video import frames_to_tensor
from schemas.config import FrozenConfig

logger = logging.getLogger(__name__)

BatchFn = Callable[[int], np.ndarray]
STATE_JSON = "train_state.json"
STATE_TENSORS = "train_state.safetensors"
WEIGHTS = "tokenizer.safetensors"

# Fields that may change when a run is resumed (they do not change what was already trained).
# A run resumed on another device (or with autocast switched) continues correctly, but its
# later steps are not bit-identical to an uninterrupted run on the first device.
_RESUMABLE_CHANGES = {"steps", "checkpoint_every", "log_every", "eval_every", "threads", "save_dtype",
                      "device", "autocast"}


@dataclass(frozen=True)
class AdaptiveStageConfig(FrozenConfig):
    """Stage 2: the InfoTok layer trained on a frozen fixed-rate base (`TrainConfig.init`).

    preset: adaptive layer size (`tokenizer.adaptive.modules.ADAPTIVE_PRESETS`); betas: sampled
    per clip; info_ema: EMA decay of E[I]; train_decoder: also fine-tune the base decoder.
    base: an external frozen base 'KIND:ENCODER,DECODER' (`tokenizer.base.spec.BaseSpec.parse`;
    e.g. cosmos:encoder.jit,decoder.jit) instead of the fixed-rate checkpoint `init`.
    """

    preset: str = "tiny"
    betas: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25)
    info_ema: float = 0.99
    train_decoder: bool = False
    base: str | None = None

    def __post_init__(self) -> None:
        from tokenizer.adaptive.router import check_beta
        from tokenizer.base.spec import BaseSpec

        if self.base is not None:
            BaseSpec.parse(self.base)
            if self.train_decoder:
                raise ValueError(f"an external base ({self.base}) stays frozen: train_decoder must be off")

        if not self.betas:
            raise ValueError("betas must not be empty for the adaptive stage")
        for b in self.betas:
            check_beta(b)
        if not 0.0 <= self.info_ema < 1.0:
            raise ValueError(f"info_ema must be in [0, 1), got {self.info_ema}")


@dataclass(frozen=True)
class TrainConfig(FrozenConfig):
    """One training run. `data` is 'procedural' or a folder / s3:// prefix of videos.

    adaptive: None trains the fixed-rate tokenizer (stage 1); set, the InfoTok layer on the
    fixed-rate checkpoint `init` (stage 2).
    device: 'auto' (the first GPU if there is one), 'cpu', 'cuda' or 'cuda:N'.
    autocast: bfloat16 mixed precision for the model passes on CUDA (weights, optimizer
    state and checkpoints stay float32 until `save_dtype`); ignored on the CPU.
    """

    preset: str = "tiny"
    data: str = "procedural"
    steps: int = 1000
    batch_size: int = 8
    frames: int = 9
    crop: int = 64
    lr: float = 1e-3
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    ssim_weight: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    init: str | None = None
    checkpoint_every: int = 200
    log_every: int = 10
    eval_every: int = 0
    threads: int = 0
    save_dtype: str = "float32"
    adaptive: AdaptiveStageConfig | None = None
    device: str = "auto"
    autocast: bool = True

    def __post_init__(self) -> None:
        if (self.frames - 1) % 4:
            raise ValueError(f"frames must be 1 + 4k, got {self.frames}")
        if self.crop % 8 or self.crop <= 0:
            raise ValueError(f"crop must be a positive multiple of 8, got {self.crop}")
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError(f"steps must be >= 0 and batch_size >= 1, got {self.steps}, {self.batch_size}")
        if self.save_dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"save_dtype must be float32, float16 or bfloat16, got {self.save_dtype!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        check_device_spec(self.device)
        external = self.adaptive is not None and self.adaptive.base is not None
        if self.adaptive is not None and not self.init and not external:
            raise ValueError("the adaptive stage starts from a trained checkpoint: set init (or an external base)")
        if external and self.init:
            raise ValueError(f"an adaptive stage on the external base {self.adaptive.base} starts fresh: "
                             f"leave init unset, got {self.init!r}")
        if external and self.ssim_weight > 0:
            raise ValueError("an external base is trained with a code-space loss: ssim_weight must be 0")

    @property
    def stage(self) -> str:
        """'fixed' (stage 1) or 'adaptive' (stage 2)."""
        return "fixed" if self.adaptive is None else "adaptive"


@dataclass(frozen=True)
class TrainResult:
    steps_done: int
    final_loss: float
    tokenizer_id: str
    weights: str
    steps_per_s: float


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warmup, then cosine decay to min_lr_ratio * lr at cfg.steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def _save_state(out: Path, cfg: TrainConfig, step: int, model: VideoTokenizer, opt: torch.optim.Optimizer,
                history: list[dict[str, float]]) -> None:
    from safetensors.torch import save

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in _resume_state(model).items()}
    osd = opt.state_dict()
    for pid, st in osd["state"].items():
        for key, val in st.items():
            tensors[f"optim.{pid}.{key}"] = torch.as_tensor(val).detach().cpu().contiguous()
    tmp = out / (STATE_TENSORS + ".tmp")
    with open(tmp, "wb") as f:  # a plain open, so the mode follows the umask (save_file makes it 0600)
        f.write(save(tensors, metadata={"param_groups": json.dumps(osd["param_groups"])}))
    os.replace(tmp, out / STATE_TENSORS)
    # The JSON is the commit point of a checkpoint: written last, atomically.
    doc = {"step": step, "config": cfg.to_dict(), "history": history}
    tmp_json = out / (STATE_JSON + ".tmp")
    tmp_json.write_text(json.dumps(doc, indent=1))
    os.replace(tmp_json, out / STATE_JSON)


def _load_state(out: Path, model: VideoTokenizer, opt: torch.optim.Optimizer) -> tuple[int, list[dict[str, float]]]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    doc = json.loads((out / STATE_JSON).read_text())
    tensors = load_file(str(out / STATE_TENSORS))
    with safe_open(str(out / STATE_TENSORS), framework="pt") as f:
        groups = json.loads(f.metadata()["param_groups"])
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")},
                          strict=not _external_base(model))
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, pid, key = k.split(".", 2)
            state.setdefault(int(pid), {})[key] = v
    opt.load_state_dict({"state": state, "param_groups": groups})
    return int(doc["step"]), list(doc.get("history", []))


def _external_base(model: torch.nn.Module) -> bool:
    base = getattr(model, "base", None)
    return base is not None and base.external is not None


def _resume_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's tensors a resume restores: all but an external base's (its files are its state)."""
    state = model.state_dict()
    return {k: v for k, v in state.items() if not k.startswith("base.")} if _external_base(model) else state


_STAGE2_FLAT = {"adaptive_preset": "preset", "betas": "betas", "info_ema": "info_ema", "train_decoder": "train_decoder"}


def saved_config(old: dict[str, Any]) -> dict[str, Any]:
    """A saved run's config in today's shape: a run saved before a field existed ran with that
    field's default; runs saved before stage 2 had its own config kept its fields flat (`stage`,
    `adaptive_preset`, `betas`, `info_ema`, `train_decoder`)."""
    old = dict(old)
    if "stage" in old:
        flat = {k: old.pop(k) for k in list(_STAGE2_FLAT) if k in old}
        old["adaptive"] = ({_STAGE2_FLAT[k]: v for k, v in flat.items()} if old.pop("stage") == "adaptive" else None)
        if old["adaptive"] is not None:
            old["adaptive"] = {**AdaptiveStageConfig().to_dict(), **old["adaptive"]}
    return {**TrainConfig().to_dict(), **old}


def check_resume_compatible(out: Path, cfg: TrainConfig) -> None:
    """Raise ValueError naming every field that differs from the run being resumed."""
    old = saved_config(json.loads((out / STATE_JSON).read_text())["config"])
    new = cfg.to_dict()
    diff = []
    for k in new:
        if k in _RESUMABLE_CHANGES or old.get(k) == new[k]:
            continue
        a, b = old.get(k), new[k]
        if isinstance(a, dict) and isinstance(b, dict):
            diff += [f"{k}.{f}: {a.get(f)!r} -> {b.get(f)!r}" for f in b if a.get(f) != b.get(f)]
        else:
            diff.append(f"{k}: {a!r} -> {b!r}")
    if diff:
        raise ValueError(
            f"{out} holds a run with a different configuration ({'; '.join(diff)}); "
            "use another output folder or the same settings"
        )


def evaluate(model: torch.nn.Module, clips: list[np.ndarray], batch: int = 4) -> dict[str, float]:
    """Mean PSNR / SSIM of reconstructions of uint8 clips (T, H, W, 3), all of one shape, on the
    model's device in float32 (like `infotok eval`, whatever precision the training passes use)."""
    from tokenizer.adaptive.model import AdaptiveTokenizer

    if isinstance(model, AdaptiveTokenizer):
        from tokenizer.train.adaptive_stage import evaluate_adaptive

        return evaluate_adaptive(model, clips, batch)
    device = next(model.parameters()).device
    model.eval()
    ps, ss = [], []
    with torch.no_grad():
        for i in range(0, len(clips), batch):
            x = frames_to_tensor(np.stack(clips[i : i + batch])).to(device)
            y = model(x).reconstruction.clamp(-1, 1)
            ps.append(psnr(y, x))
            ss.append(ssim(y, x))
    model.train()
    return {"psnr": float(torch.cat(ps).mean()), "ssim": float(torch.cat(ss).mean())}


def train(
    cfg: TrainConfig,
    out_dir: str | Path,
    batch_fn: BatchFn,
    eval_clips: list[np.ndarray] | None = None,
    progress: bool = True,
    time_limit_s: float | None = None,
    data_workers: int = 0,
) -> TrainResult:
    """Train (or resume) into out_dir; return when cfg.steps are done or time_limit_s passed.

    data_workers > 0 computes batches that many threads ahead of the model (same batches).

    out_dir receives `tokenizer.safetensors` (the model, in cfg.save_dtype) and the resume
    state (`train_state.safetensors` + `train_state.json`) every cfg.checkpoint_every steps.
    """
    from tqdm import tqdm

    out = Path(out_dir)
    device = resolve_device(cfg.device)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # every step has the same shapes
    torch.manual_seed(cfg.seed)
    adaptive = cfg.adaptive is not None
    if cfg.adaptive is not None:
        from tokenizer.train import adaptive_stage as stage2

        model = stage2.build_adaptive(cfg.preset, cfg.adaptive.preset, cfg.adaptive.base)
        params = stage2.freeze_base(model, cfg.adaptive.train_decoder)
    else:
        model = VideoTokenizer(preset(cfg.preset))
        params = list(model.parameters())
    model.to(device)  # before the optimizer and the resume, which then load onto this device
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    step, history = 0, []
    if (out / STATE_JSON).exists():
        check_resume_compatible(out, cfg)
        step, history = _load_state(out, model, opt)
        logger.info("resuming %s at step %d", out, step)
    elif adaptive and cfg.init:
        init_id = stage2.init_from_checkpoint(model, cfg.init, cfg.preset)
        logger.info("stage 2 from %s (%s); adaptive layer %.1f%% of base params", cfg.init, init_id,
                    100 * model.param_overhead())
    elif cfg.init:
        init = load_tokenizer(cfg.init, expect_preset=cfg.preset)
        model.load_state_dict(init.model.state_dict())
        logger.info("initialised from %s (%s)", cfg.init, init.tokenizer_id)
    model.train()
    logger.info("training on %s%s", device, " (bfloat16 autocast)" if cfg.autocast and device.type == "cuda" else "")
    start_step, t0, loss_val = step, time.monotonic(), float("nan")
    last_loss: torch.Tensor | None = None
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc="train", unit="step")
    dtype = getattr(torch, cfg.save_dtype)

    def checkpoint() -> str:
        _save_state(out, cfg, step, model, opt, history)
        return save_tokenizer(model, out / WEIGHTS, info={"train": cfg.to_dict(), "step": step,
                                                          "history": history[-1:]}, dtype=dtype)

    batches = BatchPrefetcher(batch_fn, data_workers, last=cfg.steps)
    try:
        while step < cfg.steps:
            if time_limit_s is not None and time.monotonic() - t0 > time_limit_s:
                logger.info("time limit reached at step %d", step)
                break
            for group in opt.param_groups:
                group["lr"] = lr_at(cfg, step)
            x = frames_to_tensor(batches.get(step)).to(device, non_blocking=True)  # (B, 3, T, H, W) in [-1, 1]
            with mixed_precision(device, cfg.autocast):
                if adaptive:
                    betas = stage2.sample_betas(cfg.seed, step, x.shape[0], cfg.adaptive.betas)
                    y, target = stage2.adaptive_forward(model, x, betas, cfg.adaptive.info_ema)
                else:
                    y, target = model(x).reconstruction, x
            y = y.float()  # the loss in float32 whatever the passes ran in
            loss = (y - target).abs().mean()  # target: x, or the full-rate codes on an external base
            if cfg.ssim_weight > 0:
                loss = loss + cfg.ssim_weight * (1 - ssim(y, x).mean())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            step += 1
            last_loss = loss.detach()  # read back (a GPU sync) only when logged and at the end
            bar.update(1)
            if step % cfg.log_every == 0 or step == cfg.steps:
                loss_val = float(last_loss)
                with torch.no_grad():
                    p = float(psnr(y.detach(), target).mean())  # codes lie in [-1, 1] like pixels
                rec: dict[str, float] = {"step": step, "loss": loss_val, "psnr" if target is x else "code_psnr": p,
                                         "lr": lr_at(cfg, step - 1), "elapsed_s": time.monotonic() - t0}
                if adaptive:
                    rec["mean_info"] = float(model.mean_info)
                if cfg.eval_every and eval_clips and step % cfg.eval_every == 0:
                    rec.update({f"heldout_{k}": v for k, v in evaluate(model, eval_clips).items()})
                history.append(rec)
                bar.set_postfix({"loss": f"{loss_val:.4f}", "psnr" if target is x else "code_psnr": f"{p:.2f}"})
                logger.info("step %d %s", step, rec)
            if step % cfg.checkpoint_every == 0:
                checkpoint()
    finally:
        batches.close()
    if last_loss is not None:
        loss_val = float(last_loss)
    tid = checkpoint()
    bar.close()
    elapsed = time.monotonic() - t0
    done = step - start_step
    return TrainResult(steps_done=step, final_loss=loss_val, tokenizer_id=tid, weights=str(out / WEIGHTS),
                       steps_per_s=done / elapsed if elapsed > 0 else 0.0)
