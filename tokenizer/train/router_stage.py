"""Router stage: fit the `latent` router on a frozen adaptive tokenizer.

1. Targets, measured once with the frozen tokenizer and cached in the run folder
   (`router_targets.safetensors`): for each training clip, the bounded encoder latent, its clip
   descriptors (`tokenizer.adaptive.clip_descriptors`), the full-rate token scores and the gain
   router's slope s (one encode, the full-rate decode and one probe, exactly what `--router gain` runs).
2. The head (`tokenizer.adaptive.latent_router.LatentRouterHead`, everything else frozen) is
   fit to the log token scores (mean squared error); the slope regressor
   (`SlopeRegressor`) to s by least squares on the descriptors, in closed form.
3. The weight of the pixel detail in the token scores (`LatentRouterHead.detail_weight`) is the
   one of DETAIL_WEIGHTS whose kept tokens reconstruct best (mean PSNR at SELECT_RATES) on
   `select_clips` further clips of the same recipe (seed + 1): a choice on training data.
4. E[s] (gain) is set to the mean target slope and E[s^] (latent) to the mean prediction,
   both over the training clips; the checkpoint is written with the head, the fit and both means.

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
    measured once per clip); heldout: clips of the held-out check; select_clips: clips (seed + 1)
    on which the detail weight is chosen; steps / batch_size / lr: the
    head's optimisation; frames / crop: clip size; seed: clips and initialisation; save_dtype:
    the checkpoint's float dtype (the head is rounded to it before E[s^] is measured, so the
    stored mean is the loaded model's)."""

    init: str
    clips: int = 1024
    heldout: int = 48
    select_clips: int = 64
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
        if self.clips < 8 or self.heldout < 4 or self.select_clips < 1:
            raise ValueError(f"clips must be >= 8, heldout >= 4 and select_clips >= 1, got {self.clips}, "
                             f"{self.heldout}, {self.select_clips}")
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
    detail_weight: float
    target_seconds: float
    train_seconds: float


# bumped when the cached targets change meaning or gain a field (2: clip descriptors)
TARGETS_VERSION = 2
# candidate weights of the pixel detail in the latent router's token scores, and the rates at
# which each is scored (budgets span 1/16 .. 1; most clips land between these)
DETAIL_WEIGHTS: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
SELECT_RATES: tuple[float, ...] = (0.125, 0.25, 0.5)


@torch.no_grad()
def measure_targets(model: torch.nn.Module, clips: np.ndarray, batch: int = 8) -> dict[str, torch.Tensor]:
    """uint8 clips (N, T, H, W, 3) -> {'latent': (N, t, h, w, D), 'descriptors': (N, F),
    'log_scores': (N, t, h, w), 'slope': (N,)}."""
    from tokenizer.adaptive.clip_descriptors import clip_descriptors
    from tokenizer.adaptive.latent_router import score_target
    from tokenizer.video import frames_to_tensor

    device = model.mean_info.device
    lat, desc, sc, sl = [], [], [], []
    for i in range(0, len(clips), batch):
        x = frames_to_tensor(clips[i : i + batch]).to(device)
        scored = model.score(x, "gain")
        bounded = model.bounded_latent(scored.encoding.latent)
        lat.append(bounded.float().cpu())
        desc.append(clip_descriptors(x, bounded).cpu())
        sc.append(score_target(scored.scores).cpu())
        sl.append(scored.signal.float().cpu())
    return {"latent": torch.cat(lat), "descriptors": torch.cat(desc), "log_scores": torch.cat(sc),
            "slope": torch.cat(sl)}


@torch.no_grad()
def choose_detail_weight(model: torch.nn.Module, clips: np.ndarray, weights: tuple[float, ...] = DETAIL_WEIGHTS,
                         rates: tuple[float, ...] = SELECT_RATES, batch: int = 8) -> tuple[float, dict[str, float]]:
    """Mean PSNR (dB) of uint8 clips (N, T, H, W, 3) through the adaptive path keeping the top r of
    tokens by head + w * detail, over `rates`, for each w -> (the best w, {str(w): its PSNR}).
    Ties go to the smaller weight."""
    from tokenizer.adaptive.clip_descriptors import describe_clip
    from tokenizer.adaptive.router import budget_tokens, top_n_mask
    from tokenizer.video import frames_to_tensor, psnr

    device = model.mean_info.device
    total = {w: 0.0 for w in weights}
    for i in range(0, len(clips), batch):
        x = frames_to_tensor(clips[i : i + batch]).to(device)
        enc = model.base.encode(x)
        bounded = model.bounded_latent(enc.latent)
        detail = describe_clip(x, bounded).detail
        for w in weights:
            scores = model.latent_head.scores(bounded, detail, w)
            for r in rates:
                n = budget_tokens(torch.full((x.shape[0],), float(r), device=device), scores[0].numel())
                y = model(x, top_n_mask(scores, n), encoding=enc).reconstruction
                total[w] += float(psnr(y.float().clamp(-1, 1), x.float()).sum())
    mean = {w: t / (len(clips) * len(rates)) for w, t in total.items()}
    best = max(weights, key=lambda w: (round(mean[w], 6), -w))
    return best, {str(w): mean[w] for w in weights}


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
    `tokenizer.data.mixed.MIXED_KINDS`, never its held-out photographs)."""
    from tokenizer.eval.heldout import mixed_clips
    from tokenizer.data.photos import TRAIN_PHOTOS
    from tokenizer.train.corpus import training_batch

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
    measured = {k: v for k, v in cfg.to_dict().items() if k != "select_clips"}  # what the targets depend on
    key = json.dumps({"tokenizer": loaded.tokenizer_id, "data": data_id, "targets": TARGETS_VERSION, **measured,
                      "steps": None, "lr": None,
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
    lat, tgt_sc = (targets[k].to(device) for k in ("latent", "log_scores"))
    history: list[dict[str, float]] = []
    t1 = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, desc="router head", unit="step")
    for step in range(cfg.steps):
        idx = torch.randint(0, lat.shape[0], (min(cfg.batch_size, lat.shape[0]),), generator=gen).to(device)
        loss = (head(lat[idx]) - tgt_sc[idx]).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == cfg.steps - 1:
            history.append({"step": step, "loss": float(loss.detach())})
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
    regressor = model.latent_slope
    regressor.fit(targets["descriptors"].to(device), targets["slope"].to(device))
    t2 = time.perf_counter()
    detail_weight, detail_psnr = choose_detail_weight(model, clip_fn(cfg.seed + 1, cfg.select_clips))
    head.detail_weight.fill_(detail_weight)
    logger.info("token detail weight %g (mean PSNR by weight: %s; %.0f s)", detail_weight,
                ", ".join(f"{w}: {v:.3f}" for w, v in detail_psnr.items()), time.perf_counter() - t2)
    with torch.no_grad():
        from tokenizer.adaptive.clip_descriptors import describe_clip
        from tokenizer.video import frames_to_tensor

        train_pred = regressor(targets["descriptors"].to(device))
        held_detail = describe_clip(frames_to_tensor(heldout).to(device), held["latent"].to(device)).detail
        h_sc = head.scores(held["latent"].to(device), held_detail)
        h_sl = regressor(held["descriptors"].to(device))
    mean_latent = float(train_pred.double().mean())
    if not (math.isfinite(mean_latent) and mean_latent > 0):
        raise ValueError(f"the slope fit predicts a mean slope of {mean_latent!r} on its own training clips; "
                         "the descriptors do not describe this data")
    model.set_mean_info(mean_gain, int(lat.shape[0]), "gain")
    model.set_mean_info(mean_latent, int(lat.shape[0]), "latent")
    model.latent_head_steps.fill_(int(model.latent_head_steps) + cfg.steps)
    spearman = rank_correlation(h_sl.cpu().tolist(), held["slope"].tolist())
    agreement = top_half_agreement(h_sc.cpu(), held["log_scores"])
    info = dict(loaded.info)
    info["router_stage"] = {"init": loaded.tokenizer_id, "config": cfg.to_dict(), "slope_spearman": spearman,
                            "token_agreement": agreement, "mean_gain": mean_gain, "mean_latent": mean_latent,
                            "detail_weight": detail_weight, "detail_psnr": detail_psnr}
    tid = save_tokenizer(model.cpu(), out / WEIGHTS, info=info,
                         dtype=None if cfg.save_dtype == "float32" else save_dtype)
    result = RouterStageResult(weights=str(out / WEIGHTS), tokenizer_id=tid, final_loss=history[-1]["loss"],
                               first_loss=history[0]["loss"], slope_spearman=spearman, token_agreement=agreement,
                               mean_gain=mean_gain, mean_latent=mean_latent, detail_weight=detail_weight,
                               target_seconds=target_seconds,
                               train_seconds=train_seconds)
    (out / LOG).write_text(json.dumps({"result": result.__dict__, "detail_psnr": detail_psnr, "history": history},
                                      indent=1))
    logger.info("router head: loss %.4f -> %.4f, held-out slope Spearman %.3f, top-half token agreement %.3f",
                result.first_loss, result.final_loss, spearman, agreement)
    return result
