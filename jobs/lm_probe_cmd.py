"""`infotok lm-probe DATASET`: how many bits a small causal transformer needs for a token dataset.

Trains the probe (`tokenizer.lm`) on the kept tokens of the dataset's training videos and reports,
on held-out videos (split by a hash of video_id): bits per kept token, mask bits per clip (the
combinatorial bound log2(n+1) + log2 C(n, k) for k kept of n cells) and bits per pixel of the
whole stream (tokens + mask).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import click

from jobs.options import device_option, json_option, storage_from, storage_options

logger = logging.getLogger(__name__)


@click.command("lm-probe")
@click.argument("dataset")
@click.option("--steps", default=300, show_default=True, type=click.IntRange(min=1),
              help="Training steps at most (training stops earlier when the validation split stops improving).")
@click.option("--validation-fraction", default=0.2, show_default=True, type=click.FloatRange(0, 1, max_open=True),
              help="Share of the training videos (by hash) that decides early stopping; 0 trains all --steps.")
@click.option("--patience", default=5, show_default=True, type=click.IntRange(min=1),
              help="Evaluations without a better validation figure before training stops.")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1), help="Chunks per step.")
@click.option("--lr", default=2e-3, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="AdamW peak learning rate.")
@click.option("--max-len", default=1280, show_default=True, type=click.IntRange(min=2),
              help="Kept tokens per sequence; a longer clip is cut into consecutive chunks.")
@click.option("--d-model", default=128, show_default=True, type=click.IntRange(min=8), help="Transformer width.")
@click.option("--layers", default=2, show_default=True, type=click.IntRange(min=1), help="Transformer blocks.")
@click.option("--heads", default=4, show_default=True, type=click.IntRange(min=1), help="Attention heads.")
@click.option("--eval-every", default=0, show_default=True, type=click.IntRange(min=0),
              help="Evaluation period in steps (0: a tenth of --steps, at most an epoch of a small training set).")
@click.option("--heldout-fraction", default=0.2, show_default=True,
              type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Share of videos held out (by a hash of video_id, never by row).")
@click.option("--max-clips", default=None, type=click.IntRange(min=1),
              help="Read at most this many clips (a deterministic sample by hash of video_id and clip_index).")
@click.option("--seed", default=0, show_default=True, type=int, help="Model init and batch order.")
@click.option("--threads", default=0, show_default=True, type=click.IntRange(min=0),
              help="torch CPU threads (0: torch's default).")
@click.option("--plot", "plot_path", default=None, type=click.Path(dir_okay=False),
              help="Write the learning curve (train and held-out bits per token vs step) as a PNG here.")
@device_option()
@json_option
@storage_options
def lm_probe(dataset: str, steps: int, validation_fraction: float, patience: int, batch_size: int, lr: float, max_len: int, d_model: int, layers: int,
             heads: int, eval_every: int, heldout_fraction: float, max_clips: int | None, seed: int, threads: int,
             plot_path: str | None, device: str, as_json: bool, **o: Any) -> None:
    """Bits per kept token, mask bits per clip and bits per pixel of DATASET's held-out videos under a
    small causal transformer trained on its other videos (the mask coded by the combinatorial bound)."""
    from pipeline.io.dataset import DatasetDir, DatasetNotReadyError
    from pipeline.lm.read import read_corpus
    from tokenizer.device import resolve_device
    from tokenizer.lm.corpus import split_by_video
    from tokenizer.lm.model import ProbeModelConfig
    from tokenizer.lm.probe import ProbeConfig, run_probe

    try:
        cfg = ProbeConfig(steps=steps, validation_fraction=validation_fraction, patience=patience,
                          batch_size=batch_size, lr=lr, max_len=max_len, eval_every=eval_every, seed=seed,
                          heldout_fraction=heldout_fraction, device=device, threads=threads,
                          model=ProbeModelConfig(d_model=d_model, n_layers=layers, n_heads=heads))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        resolve_device(device)  # a CUDA device this machine lacks is refused before the dataset is read
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from None
    try:
        read = read_corpus(DatasetDir(dataset, storage_from(o)), max_clips)
    except (DatasetNotReadyError, ValueError) as exc:  # no manifest, no clips, a part unlike its commit
        raise click.ClickException(str(exc)) from None
    cfg = ProbeConfig.from_dict({**cfg.to_dict(), "model": {**cfg.model.to_dict(), "levels": list(read.fsq_levels)}})
    try:
        train, heldout = split_by_video(read.corpus, heldout_fraction)
    except ValueError as exc:
        raise click.ClickException(f"dataset {dataset}: {exc}") from None
    result = run_probe(train, heldout, cfg, progress=not as_json)
    if plot_path:
        from tokenizer.lm.plot import plot_curve

        plot_curve(result, plot_path, title=f"lm-probe {dataset}")
    out = {"dataset": dataset, "dataset_clips": read.dataset_clips, "sampled": read.sampled,
           "mask_coding": "log2(n+1) + log2 C(n,k) bits per clip (k kept of n = t*h*w cells)",
           **result.to_dict(), "plot": plot_path}
    if as_json:
        click.echo(json.dumps(out, indent=1))
        return
    read_note = (f"a deterministic sample of {read.corpus.n_clips} of {read.dataset_clips} clips (--max-clips)"
                 if read.sampled else f"all {read.dataset_clips} clips")
    click.echo(f"dataset        {dataset}: {read_note}")
    click.echo(f"split          train {result.train_videos} videos / {result.train_clips} clips / "
               f"{result.train_tokens} tokens; held out {result.heldout_videos} / {result.heldout_clips} / "
               f"{result.heldout_tokens} (by hash of video_id)")
    stop = (f"best of {result.steps_run} steps at step {result.best_step} on {result.validation_videos} validation "
            f"videos" if result.validation_videos else f"{result.steps_run} steps")
    click.echo(f"probe          {result.params / 1e6:.2f}M params, {stop}, on {result.device} in "
               f"{result.seconds:.1f} s; {result.chunks_cut} clips longer than {max_len} tokens cut into chunks")
    click.echo(f"{'held-out':14s} {'bits':>10s}")
    click.echo(f"{'per token':14s} {result.bits_per_token:10.3f}   (untrained {result.bits_per_token_init:.3f}, "
               f"unigram {result.unigram_bits:.3f}, uniform {result.uniform_bits:.3f})")
    click.echo(f"{'tokens/clip':14s} {result.token_bits_per_clip:10.1f}")
    click.echo(f"{'mask/clip':14s} {result.mask_bits_per_clip:10.1f}   (log2(n+1) + log2 C(n,k); mean kept fraction "
               f"{result.mean_kept_fraction:.3f})")
    click.echo(f"{'per pixel':14s} {result.bits_per_pixel:10.5f}   (tokens {result.bpp_tokens:.5f} + mask "
               f"{result.bpp_mask:.5f})")
    if plot_path:
        click.echo(f"curve          {plot_path}")
    for line in result.warnings:
        click.echo(f"warning        {line}", err=True)
