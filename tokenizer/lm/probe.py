"""Train the probe LM on a dataset's training videos and measure the code length of its held-out
videos: bits per kept token (the model's -log2 p of each held-out id), mask bits per clip (the
combinatorial bound, `tokenizer.lm.mask_bits`) and bits per pixel of the whole stream.

Sequences: one clip per sequence, its kept tokens in the stored raster order. A clip longer than
`max_len` kept tokens is cut into consecutive chunks of max_len; a chunk after the first starts
from the previous chunk's last token (its id and position are the first input) but sees no
earlier context, so every token is predicted exactly once and a cut costs a little context, never
a token. Training draws `batch_size` chunks per step uniformly (seeded), padded to the longest;
padding sits after the real steps, so causal attention never lets it reach them.

Training stops early: a validation split of the training videos (by another hash of video_id)
is measured every `eval_period` steps, and training ends when it has not improved for `patience`
evaluations or at the `steps` cap; the held-out figures are those of the best validation step. A
result that does not beat the unigram baseline, or rests on a held-out set too small to mean much,
carries a plain `warnings` line saying so.

Held-out bits per kept token = sum of -log2 p over every held-out token / their number (the
natural code length an arithmetic coder driven by the model reaches within 2 bits per clip).
Bits per pixel = (token bits + mask bits) / sum over held-out clips of frame_count * height * width.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from schemas.config import FrozenConfig
from tokenizer.device import check_device_spec
from tokenizer.lm.corpus import ClipCorpus, validation_split
from tokenizer.lm.mask_bits import mask_bits_array
from tokenizer.lm.model import ProbeModelConfig

logger = logging.getLogger(__name__)


MIN_EVAL_PERIOD = 5  # steps between evaluations at the least (each costs a pass over the validation videos)


@dataclass(frozen=True)
class ProbeConfig(FrozenConfig):
    """steps (the cap), batch_size (chunks per step), lr (AdamW peak; linear warmup over the first 10%
    of steps, at most 50, then cosine to 10% of it), max_len (kept tokens per chunk), eval_every
    (evaluation period in steps; 0: steps // 10, at most one epoch of the training chunks), seed (model init and batch order),
    heldout_fraction (share of videos, by hash, held out), validation_fraction (share of the
    training videos, by another hash, that decides early stopping; 0: train all `steps`), patience
    (evaluations without a better validation figure before stopping), device, threads (torch CPU
    threads; 0: leave torch's setting), model."""

    steps: int = 300
    batch_size: int = 8
    lr: float = 2e-3
    max_len: int = 1280
    eval_every: int = 0
    seed: int = 0
    heldout_fraction: float = 0.2
    validation_fraction: float = 0.2
    patience: int = 5
    device: str = "auto"
    threads: int = 0
    model: ProbeModelConfig = ProbeModelConfig()

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.max_len < 2:
            raise ValueError(f"max_len must be >= 2, got {self.max_len}")
        if self.eval_every < 0:
            raise ValueError(f"eval_every must be >= 0, got {self.eval_every}")
        if not 0 < self.heldout_fraction < 1:
            raise ValueError(f"heldout_fraction must be in (0, 1), got {self.heldout_fraction}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience}")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0, got {self.threads}")
        check_device_spec(self.device)

    def eval_period(self, train_chunks: int | None = None) -> int:
        """eval_every, or by default steps // 10, but at least once an epoch of `train_chunks`
        (a small training set overfits within a few epochs: early stopping has to look that often)."""
        if self.eval_every:
            return self.eval_every
        period = max(1, self.steps // 10)
        if train_chunks is not None:
            period = min(period, max(MIN_EVAL_PERIOD, -(-train_chunks // self.batch_size)))
        return period


@dataclass(frozen=True)
class CurvePoint:
    """step; train_bits: mean train bits per token over the steps since the previous point (None
    at step 0); heldout_bits: held-out bits per kept token at this step; val_bits: the validation
    split's (None without one)."""

    step: int
    train_bits: float | None
    heldout_bits: float
    val_bits: float | None = None


@dataclass(frozen=True)
class ProbeResult:
    """Held-out code length of a token dataset under the probe (see the module docstring).

    bits_per_token: at the best validation step (the last step without a validation split);
    bits_per_token_init: the untrained model (step 0); uniform_bits: log2(codebook);
    unigram_bits: the training ids' frequencies (add-1/2) on the held-out ids, a context-free
    reference; mask_bits_per_clip / token_bits_per_clip: means over held-out clips;
    bits_per_pixel = bpp_tokens + bpp_mask. best_step / steps_run: where the reported model was
    taken and where training stopped; validation_videos: the training videos that decided it
    (0: no split); beats_baselines: bits_per_token below both the unigram and the uniform
    figure; warnings: plain sentences on why the figure may not measure the dataset.
    """

    train_clips: int
    train_videos: int
    train_tokens: int
    heldout_clips: int
    heldout_videos: int
    heldout_tokens: int
    heldout_pixels: int
    bits_per_token: float
    bits_per_token_init: float
    uniform_bits: float
    unigram_bits: float
    token_bits_per_clip: float
    mask_bits_per_clip: float
    bits_per_pixel: float
    bpp_tokens: float
    bpp_mask: float
    mean_kept_fraction: float
    chunks_cut: int
    params: int
    device: str
    seconds: float
    best_step: int = 0
    steps_run: int = 0
    validation_videos: int = 0
    validation_clips: int = 0
    beats_baselines: bool = False
    warnings: list[str] = field(default_factory=list)
    curve: list[CurvePoint] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "curve"}
        d["curve"] = [vars(p) for p in self.curve]
        return d


@dataclass(frozen=True)
class _Chunks:
    """Chunks of at most max_len tokens: global start index, length, and whether each starts its clip."""

    start: np.ndarray
    length: np.ndarray
    first: np.ndarray

    @classmethod
    def of(cls, corpus: ClipCorpus, max_len: int) -> _Chunks:
        n = corpus.kept
        per_clip = np.maximum(1, -(-n // max_len)) * (n > 0)
        clip = np.repeat(np.arange(corpus.n_clips), per_clip)
        k = np.arange(len(clip)) - np.repeat(np.cumsum(per_clip) - per_clip, per_clip)  # chunk index in its clip
        start = corpus.offsets[clip] + k * max_len
        length = np.minimum(max_len, corpus.offsets[clip + 1] - start)
        return cls(start=start.astype(np.int64), length=length.astype(np.int64), first=k == 0)


def _batch(corpus: ClipCorpus, chunks: _Chunks, rows: np.ndarray, device: Any) -> tuple[Any, ...]:
    """Tensors (prev_ids, prev_pos, next_pos, target, valid) of the chunks at rows, padded to the longest."""
    import torch

    length = chunks.length[rows]
    width = int(length.max())
    j = np.arange(width)
    valid = j[None, :] < length[:, None]  # (B, W)
    idx = np.minimum(chunks.start[rows, None] + j, chunks.start[rows, None] + length[:, None] - 1)  # pads repeat
    prev_idx = idx - 1
    bos = (j[None, :] == 0) & chunks.first[rows, None]
    tokens, pos = corpus.tokens, corpus.positions.astype(np.int64)
    prev_ids = np.where(bos, -1, tokens[np.maximum(prev_idx, 0)])
    prev_pos = np.where(bos[..., None], -1, pos[np.maximum(prev_idx, 0)])
    out = (prev_ids, prev_pos, pos[idx], tokens[idx], valid)
    return tuple(torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in out)


def _check_grid(corpus: ClipCorpus, cfg: ProbeModelConfig, name: str) -> None:
    if corpus.n_clips and np.any(corpus.grids.max(axis=0) > np.asarray(cfg.max_grid)):
        raise ValueError(f"{name} grid {tuple(corpus.grids.max(axis=0).tolist())} exceeds the probe's max_grid "
                         f"{cfg.max_grid}")
    if corpus.n_tokens and int(corpus.tokens.max()) >= cfg.codebook_size:
        raise ValueError(f"{name} holds token id {int(corpus.tokens.max())} >= codebook {cfg.codebook_size}")


def unigram_bits(train: ClipCorpus, heldout: ClipCorpus, codebook: int) -> float:
    """Held-out bits per token of the training ids' frequencies, add-1/2 smoothed over the codebook."""
    counts = np.bincount(train.tokens, minlength=codebook).astype(np.float64) + 0.5
    p = counts / counts.sum()
    return float(-np.log2(p[heldout.tokens]).mean()) if heldout.n_tokens else float("nan")


def evaluate(model: Any, corpus: ClipCorpus, chunks: _Chunks, device: Any, token_budget: int = 16384) -> float:
    """Summed -log2 p (bits) of every token of corpus under model (eval mode, no gradients)."""
    import torch

    order = np.argsort(-chunks.length, kind="stable")  # similar lengths together: little padding
    total, i = 0.0, 0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        while i < len(order):
            per = max(1, token_budget // int(chunks.length[order[i]]))
            rows = order[i : i + per]
            prev_ids, prev_pos, next_pos, target, valid = _batch(corpus, chunks, rows, device)
            bits = model(prev_ids, prev_pos, next_pos, target).bits  # (B, W)
            total += float(bits[valid].double().sum())
            i += per
    model.train(was_training)
    return total


# below these, a held-out figure says little about the dataset (one video's content decides it)
MIN_HELDOUT_VIDEOS = 3
MIN_HELDOUT_CLIPS = 8


def _warnings(train: ClipCorpus, heldout: ClipCorpus, val: ClipCorpus | None, best: CurvePoint, unigram: float,
              uniform: float, steps: int) -> list[str]:
    out = []
    bits = best.heldout_bits
    if heldout.n_videos < MIN_HELDOUT_VIDEOS or heldout.n_clips < MIN_HELDOUT_CLIPS:
        out.append(f"the held-out set is {heldout.n_videos} video(s) / {heldout.n_clips} clip(s): too few for a "
                   f"stable figure (want >= {MIN_HELDOUT_VIDEOS} videos and {MIN_HELDOUT_CLIPS} clips); use a larger "
                   f"dataset or a larger --heldout-fraction")
    if val is None:
        out.append(f"no validation split (fewer than 3 training videos or --validation-fraction 0): trained all "
                   f"{steps} steps without early stopping")
    if val is not None and best.step == 0:
        out.append(f"the probe never improved on its validation videos: from {train.n_tokens} training tokens it "
                   f"learnt nothing, and the figure is the untrained model's; the dataset is too small to measure "
                   f"(tokenize more clips)")
    baseline, name = min((unigram, "unigram"), (uniform, "uniform"))
    if not bits < baseline:
        out.append(f"the probe ({bits:.3f} bits/token) does not beat the {name} baseline ({baseline:.3f}): the "
                   f"training set is too small for the model to learn context, so this figure does not measure "
                   f"the dataset; measure a larger dataset")
    return out


def run_probe(train: ClipCorpus, heldout: ClipCorpus, cfg: ProbeConfig, progress: bool = False) -> ProbeResult:
    """Train a fresh probe on `train` until its validation split stops improving (at most cfg.steps)
    and measure `heldout` with the best model (see the module docstring)."""
    import torch
    from tqdm import tqdm

    from tokenizer.device import resolve_device
    from tokenizer.lm.model import ProbeLM

    if train.n_tokens == 0 or heldout.n_tokens == 0:
        raise ValueError(f"the probe needs kept tokens on both sides, got {train.n_tokens} train and "
                         f"{heldout.n_tokens} held-out")
    _check_grid(train, cfg.model, "training set")
    _check_grid(heldout, cfg.model, "held-out set")
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = ProbeLM(cfg.model).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.01)
    warmup = min(50, max(1, cfg.steps // 10))

    def lr_at(step: int) -> float:
        if step < warmup:
            return cfg.lr * (step + 1) / warmup
        frac = (step - warmup) / max(1, cfg.steps - warmup)
        return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    unigram = unigram_bits(train, heldout, cfg.model.codebook_size)
    fit, val = validation_split(train, cfg.validation_fraction)
    train_chunks, held_chunks = _Chunks.of(fit, cfg.max_len), _Chunks.of(heldout, cfg.max_len)
    val_chunks = _Chunks.of(val, cfg.max_len) if val is not None else None
    cut = int((train.kept > cfg.max_len).sum() + (heldout.kept > cfg.max_len).sum())  # clips cut into chunks
    t0 = time.perf_counter()

    def val_bits() -> float | None:
        return None if val is None else evaluate(model, val, val_chunks, device) / val.n_tokens

    init_bits = evaluate(model, heldout, held_chunks, device) / heldout.n_tokens
    curve = [CurvePoint(0, None, init_bits, val_bits())]
    best = curve[0]
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    since_best = 0
    eval_period = cfg.eval_period(len(train_chunks.start))
    sum_bits, sum_tokens = 0.0, 0
    model.train()
    bar = tqdm(total=cfg.steps, disable=not progress, desc="lm-probe", unit="step")
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        rows = rng.integers(0, len(train_chunks.start), cfg.batch_size)
        prev_ids, prev_pos, next_pos, target, valid = _batch(fit, train_chunks, rows, device)
        bits = model(prev_ids, prev_pos, next_pos, target).bits
        loss = bits[valid].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        n = int(valid.sum())
        sum_bits += float(loss.detach()) * n
        sum_tokens += n
        bar.update(1)
        done = step + 1
        if done % eval_period == 0 or done == cfg.steps:
            held = evaluate(model, heldout, held_chunks, device) / heldout.n_tokens
            point = CurvePoint(done, sum_bits / max(sum_tokens, 1), held, val_bits())
            curve.append(point)
            bar.set_postfix(train=f"{point.train_bits:.2f}", heldout=f"{held:.2f}",
                            **({} if point.val_bits is None else {"val": f"{point.val_bits:.2f}"}))
            sum_bits, sum_tokens = 0.0, 0
            if point.val_bits is None or point.val_bits < best.val_bits:
                best, since_best = point, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                since_best += 1
                if since_best >= cfg.patience:
                    logger.info("probe: validation has not improved for %d evaluations; stopping at step %d",
                                cfg.patience, done)
                    break
    bar.close()
    model.load_state_dict(best_state)
    seconds = time.perf_counter() - t0
    bits = best.heldout_bits
    token_bits = bits * heldout.n_tokens
    mask = mask_bits_array(heldout.cells, heldout.kept)
    pixels = int(heldout.pixels.sum())
    logger.info("probe: %d steps (best %d) in %.1f s on %s, held-out %.3f bits/token", curve[-1].step, best.step,
                seconds, device, bits)
    return ProbeResult(
        train_clips=train.n_clips, train_videos=train.n_videos, train_tokens=train.n_tokens,
        heldout_clips=heldout.n_clips, heldout_videos=heldout.n_videos, heldout_tokens=heldout.n_tokens,
        heldout_pixels=pixels,
        bits_per_token=bits, bits_per_token_init=init_bits,
        uniform_bits=math.log2(cfg.model.codebook_size), unigram_bits=unigram,
        token_bits_per_clip=token_bits / heldout.n_clips, mask_bits_per_clip=float(mask.mean()),
        bits_per_pixel=(token_bits + float(mask.sum())) / pixels, bpp_tokens=token_bits / pixels,
        bpp_mask=float(mask.sum()) / pixels,
        mean_kept_fraction=float((heldout.kept / heldout.cells).mean()), chunks_cut=cut,
        params=model.num_params(), device=str(device), seconds=seconds, best_step=best.step,
        steps_run=curve[-1].step, validation_videos=val.n_videos if val is not None else 0,
        validation_clips=val.n_clips if val is not None else 0,
        beats_baselines=bool(bits < min(unigram, math.log2(cfg.model.codebook_size))),
        warnings=_warnings(train, heldout, val, best, unigram, math.log2(cfg.model.codebook_size), cfg.steps),
        curve=curve, config=cfg.to_dict(),
    )
