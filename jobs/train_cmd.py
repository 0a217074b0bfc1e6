"""`infotok train`: train (or resume) the fixed-rate tokenizer, (`--stage adaptive`) the
InfoTok adaptive layer on top of a trained fixed-rate checkpoint (or of an external frozen base:
`--base cosmos:ENCODER,DECODER`, NVIDIA's Cosmos-Tokenizer DV4x8x8 TorchScript files), or (`--stage router`) the
latent router's head on a trained adaptive checkpoint."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import click

from jobs.options import clip_frames_option, device_option, json_option, storage_from, storage_options

logger = logging.getLogger(__name__)


def _parse_betas(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(b) for b in text.split(",") if b.strip())
    except ValueError as exc:
        raise click.BadParameter(f"must be comma-separated numbers, got {text!r}", param_hint="--betas") from exc


@click.command("train")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Run folder (resumes if it holds a run).")
@click.option("--data", default="procedural", show_default=True, help="'procedural' or a folder / s3:// prefix of videos.")
@click.option("--preset", default="tiny", show_default=True, help="Tokenizer preset (tiny, base).")
@click.option("--steps", default=1000, show_default=True, type=int)
@click.option("--batch-size", default=8, show_default=True, type=int)
@clip_frames_option(9, "--frames")
@click.option("--crop", default=64, show_default=True, type=int, help="Training crop size (multiple of 8).")
@click.option("--lr", default=1e-3, show_default=True, type=float)
@click.option("--warmup-steps", default=100, show_default=True, type=int)
@click.option("--ssim-weight", default=0.0, show_default=True, type=float, help="Weight of an extra (1 - SSIM) loss.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--init", default=None, help="Start from this checkpoint's weights (same preset); required by --stage "
                                           "adaptive unless --base gives the base.")
@click.option("--base", "base", default=None, metavar="KIND:ENCODER,DECODER",
              help="--stage adaptive on an external frozen base, e.g. cosmos:encoder.jit,decoder.jit (Cosmos DV4x8x8 "
                   "TorchScript files; trained with a code-space loss; the checkpoint records their SHA-256).")
@click.option("--stage", default="fixed", show_default=True, type=click.Choice(["fixed", "adaptive", "router"]),
              help="fixed: the base tokenizer; adaptive: InfoTok compressor/decompressor on a frozen --init; "
                   "router: the latent router's head on a frozen adaptive --init.")
@click.option("--router-clips", default=1024, show_default=True, type=int,
              help="Router stage: training clips (their targets are measured once and cached in --out).")
@click.option("--adaptive-preset", default="tiny", show_default=True, help="Adaptive layer size (tiny, reference).")
@click.option("--betas", default="1,0.75,0.5,0.25", show_default=True, help="Stage 2: betas sampled per clip.")
@click.option("--info-ema", default=0.99, show_default=True, type=float, help="Stage 2: EMA decay of E[I].")
@click.option("--train-decoder", is_flag=True, help="Stage 2: also fine-tune the base decoder.")
@click.option("--checkpoint-every", default=200, show_default=True, type=int)
@click.option("--eval-every", default=0, show_default=True, type=int, help="Held-out PSNR every N steps (0: never).")
@device_option()
@click.option("--autocast/--no-autocast", default=True, show_default=True,
              help="bfloat16 mixed precision on CUDA (no effect on the CPU).")
@click.option("--data-workers", default=None, type=click.IntRange(min=0),
              help="Threads computing batches ahead of the model (same batches) [default: 0 on the CPU, "
                   "up to 8 on a GPU].")
@click.option("--threads", default=0, show_default=True, type=int, help="torch threads (0: torch default).")
@click.option("--save-dtype", default="float32", show_default=True, type=click.Choice(["float32", "float16", "bfloat16"]))
@click.option("--time-limit", default=None, type=float, help="Stop (with a checkpoint) after this many seconds.")
@storage_options
@json_option
def train(out_dir: str, data: str, preset: str, steps: int, batch_size: int, clip_frames: int, crop: int, lr: float,
          warmup_steps: int, ssim_weight: float, seed: int, init: str | None, checkpoint_every: int,
          eval_every: int, threads: int, save_dtype: str, time_limit: float | None, as_json: bool, stage: str,
          adaptive_preset: str, betas: str, info_ema: float, train_decoder: bool, device: str, autocast: bool,
          data_workers: int | None, router_clips: int, base: str | None, **o: Any) -> None:
    """Train the fixed-rate tokenizer (or, with --stage adaptive, the InfoTok adaptive layer; with
    --stage router, the latent router's head) on procedural clips or on a corpus of videos."""
    from tokenizer.data.procedural import heldout_clips
    from tokenizer.train.corpus import training_batch
    from tokenizer.device import resolve_device
    from tokenizer.train.trainer import AdaptiveStageConfig, TrainConfig
    from tokenizer.train.trainer import train as run_train

    frames = clip_frames
    if base is not None and stage != "adaptive":
        raise click.UsageError(f"--base trains the InfoTok layer on an external base: it needs --stage adaptive, "
                               f"got --stage {stage}")
    if stage == "router":
        _train_router(out_dir, data, init, router_clips, steps, batch_size, lr, frames, crop, seed, device, threads,
                      save_dtype, as_json, o)
        return

    try:
        cfg = TrainConfig(preset=preset, data=data, steps=steps, batch_size=batch_size, frames=frames, crop=crop,
                      lr=lr, warmup_steps=warmup_steps, ssim_weight=ssim_weight, seed=seed, init=init,
                      checkpoint_every=checkpoint_every, eval_every=eval_every, threads=threads,
                      save_dtype=save_dtype, device=device, autocast=autocast,
                      adaptive=AdaptiveStageConfig(preset=adaptive_preset, betas=_parse_betas(betas),
                                                   info_ema=info_ema, train_decoder=train_decoder, base=base)
                      if stage == "adaptive" else None)
        dev = resolve_device(device)  # refuse an unusable device before any work
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if data == "procedural":
        def batch_fn(step: int):  # noqa: ANN202 - numpy array
            return training_batch(seed, step, batch_size, frames, crop, crop)
    else:
        from pipeline.decode.sampler import VideoClipSampler

        sampler = VideoClipSampler(data, storage_from(o), frames=frames, crop=crop, seed=seed)
        batch_fn = sampler.batch_fn(batch_size)
    eval_clips = [c for _, c in heldout_clips(10, frames, crop, crop)] if eval_every else None
    if data_workers is None:  # the CPU trains with every core; a GPU needs its batches made ahead
        data_workers = 0 if dev.type == "cpu" else max(1, min(8, (os.cpu_count() or 2) - 2))
    from tokenizer.base.checks import BaseInterfaceError

    try:
        result = run_train(cfg, out_dir, batch_fn, eval_clips=eval_clips, progress=not as_json,
                           time_limit_s=time_limit, data_workers=data_workers)
    except BaseInterfaceError as exc:  # one line naming the base file and what is wrong with it
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(result.__dict__))
    else:
        click.echo(f"trained {result.steps_done} steps ({result.steps_per_s:.2f} steps/s), final loss "
                   f"{result.final_loss:.4f}; tokenizer {result.tokenizer_id} -> {result.weights}")


def _train_router(out_dir: str, data: str, init: str | None, clips: int, steps: int, batch_size: int, lr: float,
                  frames: int, crop: int, seed: int, device: str, threads: int, save_dtype: str, as_json: bool,
                  o: dict[str, Any]) -> None:
    import numpy as np
    import torch

    from tokenizer.device import resolve_device
    from tokenizer.eval.heldout import heldout_set
    from tokenizer.train.router_stage import RouterStageConfig, procedural_router_clips, train_router

    if not init:
        raise click.UsageError("--stage router trains on a frozen adaptive checkpoint: give it with --init")
    try:
        cfg = RouterStageConfig(init=init, clips=clips, steps=steps, batch_size=batch_size, lr=lr, frames=frames,
                                crop=crop, seed=seed, device=device, save_dtype=save_dtype)
        resolve_device(device)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if threads:
        torch.set_num_threads(threads)
    if data == "procedural":
        def clip_fn(s: int, n: int) -> np.ndarray:
            return procedural_router_clips(s, n, frames, crop)
    else:
        from pipeline.decode.sampler import VideoClipSampler

        sampler = VideoClipSampler(data, storage_from(o), frames=frames, crop=crop, seed=seed)

        def clip_fn(s: int, n: int) -> np.ndarray:  # another seed: the batches after the training clips'
            fn = sampler.batch_fn(16)
            first = 0 if s == seed else -(-clips // 16)
            return np.concatenate([fn(first + i) for i in range(-(-n // 16))])[:n]
    heldout = np.stack([c.frames for c in heldout_set("mixed", cfg.heldout, frames, crop, crop)])
    result = train_router(cfg, out_dir, clip_fn, heldout, progress=not as_json,
                          data_id="procedural+camera-v1" if data == "procedural" else data)
    if as_json:
        click.echo(json.dumps(result.__dict__))
    else:
        click.echo(f"router head: loss {result.first_loss:.4f} -> {result.final_loss:.4f}; held-out slope Spearman "
                   f"{result.slope_spearman:.3f}, top-half token agreement {result.token_agreement:.3f} (detail weight "
                   f"{result.detail_weight:g}); "
                   f"E[s] {result.mean_gain:.4g}, E[s^] {result.mean_latent:.4g}; tokenizer {result.tokenizer_id} "
                   f"-> {result.weights}")
