"""Router stage: train the `latent` router's head on a frozen adaptive tokenizer.

1. Targets, measured once with the frozen tokenizer and cached in the run folder
   (`router_targets.safetensors`): for each training clip, the bounded encoder latent, the
   full-rate token scores and the gain router's slope s (one encode, the full-rate decode and
   one probe, exactly what `--router gain` runs).
2. The head (`tokenizer.adaptive.latent_router.LatentRouterHead`, everything else frozen) is
   fit to them: mean squared error of the log token scores plus that of s / E[s].
3. E[s] (gain) is set to the mean target slope and E[s^] (latent) to the mean prediction,
   both over the training clips; the checkpoint is written with the head and both means.

The loss history, the held-out Spearman of predicted vs measured slope and the agreement of the
predicted top-half tokens with the measured ones go to `router_log.json`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from schemas.config import FrozenConfig

logger = logging.getLogger(__name__)

TARGETS = "router_targets.safetensors"
LOG = "router_log.json"
WEIGHTS = "tokenizer.safetensors"


@dataclass(frozen=True)
class RouterStageConfig(FrozenConfig):
    """init: the adaptive checkpoint whose head is trained; clips: training clips (targets are
    measured once per clip); heldout: clips of the held-out check; steps / batch_size / lr: the
    head's optimisation; frames / crop: clip size; seed: clips and initialisation; save_dtype:
    the checkpoint's float dtype (the head is rounded to it before E[s^] is measured, so the
    stored mean is the loaded model's)."""

    init: str
    clips: int = 1024
    heldout: int = 48
    steps: int = 2000
    batch_size: int = 32
    lr: float = 2e-3
    frames: int = 17
    crop: int = 128
    seed: int = 0
    device: str = "auto"
    save_dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.save_dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"save_dtype must be float32, float16 or bfloat16, got {self.save_dtype!r}")
        if self.clips < 8 or self.heldout < 4:
            raise ValueError(f"clips must be >= 8 and heldout >= 4, got {self.clips}, {self.heldout}")
        if self.steps < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(f"steps, batch_size and lr must be positive, got {self.steps}, {self.batch_size}, {self.lr}")
        if (self.frames - 1) % 4 or self.crop % 8 or self.crop <= 0:
            raise ValueError(f"frames must be 1 + 4k and crop a positive multiple of 8, got {self.frames}, {self.crop}")


@dataclass(frozen=True)
class RouterStageResult:
    """What `train_router` did: the checkpoint written, its id, the head's final training loss,
    the held-out Spearman of predicted vs measured slope and the top-half token agreement."""

    weights: str
    tokenizer_id: str
    final_loss: float
    first_loss: float
    slope_spearman: float
    token_agreement: float
    mean_gain: float
    mean_latent: float
    target_seconds: float
    train_seconds: float


@torch.no_grad()
def measure_targets(model: torch.nn.Module, clips: np.ndarray, batch: int = 8) -> dict[str, torch.Tensor]:
    """uint8 clips (N, T, H, W, 3) -> {'latent': (N, t, h, w, D), 'log_scores': (N, t, h, w), 'slope': (N,)}."""
    from tokenizer.adaptive.latent_router import score_target
    from tokenizer.video import frames_to_tensor

    device = model.mean_info.device
    lat, sc, sl = [], [], []
    for i in range(0, len(clips), batch):
        x = frames_to_tensor(clips[i : i + batch]).to(device)
        scored = model.score(x, "gain")
        lat.append(model.bounded_latent(scored.encoding.latent).float().cpu())
        sc.append(score_target(scored.scores).cpu())
        sl.append(scored.signal.float().cpu())
    return {"latent": torch.cat(lat), "log_scores": torch.cat(sc), "slope": torch.cat(sl)}


def _cached_targets(path: Path, key: str, make: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    from safetensors import safe_open
    from safetensors.torch import load_file, save

    if path.exists():
        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get("key") == key:
                logger.info("router targets from %s", path)
                return load_file(str(path))
        logger.info("router targets in %s were measured for another run; measuring again", path)
    targets = make()
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:  # a plain open, so the mode follows the umask (save_file makes it 0600)
        f.write(save({k: v.contiguous() for k, v in targets.items()}, metadata={"key": key}))
    tmp.replace(path)
    return targets


def top_half_agreement(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean over clips of |top half by pred & top half by target| / half."""
    p, t = pred.flatten(1), target.flatten(1)
    k = p.shape[1] // 2
    tp = torch.zeros_like(p, dtype=torch.bool).scatter_(1, p.topk(k, dim=1).indices, True)
    tt = torch.zeros_like(t, dtype=torch.bool).scatter_(1, t.topk(k, dim=1).indices, True)
    return float((tp & tt).sum(1).double().div(k).mean())


def procedural_router_clips(seed: int, n: int, frames: int, size: int) -> np.ndarray:
    """The router stage's built-in data recipe, uint8 (n, frames, size, size, 3): half clips of the
    training corpus's families, half camera work over training photographs (stills, defocused
    drifts, fast pans, full-resolution detail, zooms, low-quality x264 encodes: the kinds of
    `tokenizer.eval.heldout.MIXED_KINDS`, never its held-out photographs)."""
    from tokenizer.eval.heldout import mixed_clips
    from tokenizer.train.corpus import TRAIN_PHOTOS, training_batch

    half = n // 2
    proc = [training_batch(seed, i, min(16, half - 16 * i), frames, size, size) for i in range(-(-half // 16))]
    cam = mixed_clips(-(-(n - half) // 2), 2, frames, size, size, seed=seed, photos=TRAIN_PHOTOS)[: n - half]
    parts = [p for p in proc if len(p)] + ([np.stack([c.frames for c in cam])] if cam else [])
    return np.concatenate(parts)[:n]


def train_router(cfg: RouterStageConfig, out_dir: str | Path, clip_fn: Callable[[int, int], np.ndarray],
                 heldout: np.ndarray, progress: bool = False, data_id: str = "") -> RouterStageResult:
    """Train the latent router head of cfg.init on clips from clip_fn(seed, n) (uint8 (n, T, H, W, 3)),
    check it on the uint8 `heldout` clips, write the checkpoint to out_dir/tokenizer.safetensors.
    data_id names the data (part of the target cache's key)."""
    from tokenizer.checkpoint import CheckpointError, load_tokenizer, save_tokenizer
    from tokenizer.device import resolve_device
    from tokenizer.eval.metrics import spearman as rank_correlation

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    loaded = load_tokenizer(cfg.init, device=device)
    if loaded.adaptive is None:
        raise CheckpointError(f"checkpoint {cfg.init} is fixed-rate; the router stage needs an adaptive one "
                              "(train it with --stage adaptive)")
    model = loaded.adaptive.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    key = json.dumps({"tokenizer": loaded.tokenizer_id, "data": data_id, **cfg.to_dict(), "steps": None, "lr": None,
                      "batch_size": None, "device": None, "save_dtype": None}, sort_keys=True)
    t0 = time.perf_counter()
    targets = _cached_targets(out / TARGETS, key, lambda: measure_targets(model, clip_fn(cfg.seed, cfg.clips)))
    held = measure_targets(model, heldout)
    target_seconds = time.perf_counter() - t0
    mean_gain = float(targets["slope"].double().mean())
    if not (math.isfinite(mean_gain) and mean_gain > 0):
        raise ValueError(f"the training clips' mean gain slope is {mean_gain!r}; the tokenizer does not gain "
                         "from tokens on this data, so no router can be trained on it")

    head = model.latent_head.train()
    for p in head.parameters():
        p.requires_grad_(True)
    gen = torch.Generator().manual_seed(cfg.seed)
    for m in head.modules():  # a fresh head for every run: the result depends on the config only
        if isinstance(m, (torch.nn.Conv3d, torch.nn.Linear)):
            torch.nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=gen)
            torch.nn.init.zeros_(m.bias)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    lat, tgt_sc, tgt_sl = (targets[k].to(device) for k in ("latent", "log_scores", "slope"))
    history: list[dict[str, float]] = []
    t1 = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, desc="router head", unit="step")
    for step in range(cfg.steps):
        idx = torch.randint(0, lat.shape[0], (min(cfg.batch_size, lat.shape[0]),), generator=gen).to(device)
        pred_sc, pred_sl = head(lat[idx])
        token_loss = (pred_sc - tgt_sc[idx]).pow(2).mean()
        slope_loss = ((pred_sl - tgt_sl[idx]) / mean_gain).pow(2).mean()
        loss = token_loss + slope_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == cfg.steps - 1:
            history.append({"step": step, "loss": float(loss.detach()), "token": float(token_loss.detach()),
                            "slope": float(slope_loss.detach())})
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
    if bar is not None:
        bar.close()
    train_seconds = time.perf_counter() - t1
    head.eval()
    save_dtype = getattr(torch, cfg.save_dtype)
    for p in head.parameters():
        p.requires_grad_(False)
        p.copy_(p.to(save_dtype).float())  # what the saved checkpoint will hold
    with torch.no_grad():
        train_pred = torch.cat([head(lat[i : i + 256])[1] for i in range(0, lat.shape[0], 256)])
        h_sc, h_sl = head(held["latent"].to(device))
    mean_latent = float(train_pred.double().mean())
    model.set_mean_info(mean_gain, int(lat.shape[0]), "gain")
    model.set_mean_info(mean_latent, int(lat.shape[0]), "latent")
    model.latent_head_steps.fill_(int(model.latent_head_steps) + cfg.steps)
    spearman = rank_correlation(h_sl.cpu().tolist(), held["slope"].tolist())
    agreement = top_half_agreement(h_sc.cpu(), held["log_scores"])
    info = dict(loaded.info)
    info["router_stage"] = {"init": loaded.tokenizer_id, "config": cfg.to_dict(), "slope_spearman": spearman,
                            "token_agreement": agreement, "mean_gain": mean_gain, "mean_latent": mean_latent}
    tid = save_tokenizer(model.cpu(), out / WEIGHTS, info=info,
                         dtype=None if cfg.save_dtype == "float32" else save_dtype)
    result = RouterStageResult(weights=str(out / WEIGHTS), tokenizer_id=tid, final_loss=history[-1]["loss"],
                               first_loss=history[0]["loss"], slope_spearman=spearman, token_agreement=agreement,
                               mean_gain=mean_gain, mean_latent=mean_latent, target_seconds=target_seconds,
                               train_seconds=train_seconds)
    (out / LOG).write_text(json.dumps({"result": result.__dict__, "history": history}, indent=1))
    logger.info("router head: loss %.4f -> %.4f, held-out slope Spearman %.3f, top-half token agreement %.3f",
                result.first_loss, result.final_loss, spearman, agreement)
    return result
