"""`infotok eval`: reconstruction quality (PSNR, SSIM) of a tokenizer over a corpus.

Without --methods: fixed-rate round trips per source. With --methods (an adaptive
checkpoint): the InfoTok rate-distortion harness (arXiv 2512.16975) over the same clips,
every method at equal total tokens per beta, with an optional PNG plot.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import click

from jobs.options import (
    clip_frames_option,
    device_option,
    json_option,
    parse_resolution,
    resolution_option,
    router_option,
    storage_from,
    storage_options,
)

HELDOUT_SETS = ("procedural", "mixed", "unseen")  # tokenizer.eval.heldout.HELDOUT_SETS, without importing torch
METHOD_ALIASES = {"infotok": "elbo"}  # the name of the elbo router's row before there were three routers

if TYPE_CHECKING:
    from pipeline.io.storage import StorageConfig
    from tokenizer.checkpoint import LoadedTokenizer

logger = logging.getLogger(__name__)


def collect_clips(input_uri: str, resolution: tuple[int, int], clip_frames: int, max_videos: int | None,
                  max_clips: int, num_procedural: int, storage: StorageConfig) -> tuple[list[tuple[str, list]], list[dict]]:
    """Clips grouped by source ((source, [uint8 (T, H, W, 3)]), ...) and per-video failures."""
    failures: list[dict] = []
    if input_uri in HELDOUT_SETS:
        from tokenizer.eval.heldout import heldout_set

        by_video: dict[str, list] = defaultdict(list)
        for c in heldout_set(input_uri, num_procedural, clip_frames, *resolution):
            by_video[f"{input_uri}:{c.video}"].append(c.frames)
        return list(by_video.items()), failures
    from pipeline.decode.clips import SourcedClip, iter_clips
    from pipeline.decode.step import DecodeConfig

    decode = DecodeConfig(resolution=resolution, clip_frames=clip_frames, max_clips=max_clips)
    by_uri: dict[str, list] = defaultdict(list)
    for item in iter_clips(input_uri, decode, storage, max_videos):
        if isinstance(item, SourcedClip):
            by_uri[item.uri].append(item.clip.frames)
        else:
            failures.append(item.to_dict())
    return list(by_uri.items()), failures


def _floats(text: str, name: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise click.BadParameter(f"must be comma-separated numbers, got {text!r}", param_hint=name) from exc


@click.command("eval")
@click.argument("input_uri", metavar="INPUT")
@click.option("--checkpoint", default=None, help="Tokenizer checkpoint (default: the shipped one).")
@resolution_option("128")
@clip_frames_option(17)
@click.option("--max-videos", default=None, type=int, help="Evaluate the first N videos only.")
@click.option("--max-clips", default=4, show_default=True, type=int, help="Clips per video at most.")
@click.option("--num-procedural", default=20, show_default=True, type=int,
              help="Clips when INPUT is a held-out set ('procedural' or 'mixed').")
@click.option("--batch-size", default=4, show_default=True, type=int)
@storage_options
@device_option()
@json_option
@click.option("--methods", default=None,
              help="Rate-distortion mode: comma list of elbo,gain,latent,fixed,random,raster,jump,elastic,oracle,full "
                   "(every method at the total the first router listed keeps).")
@click.option("--betas", default="1,0.75,0.5,0.25", show_default=True, help="Rate-distortion mode: betas.")
@router_option(None, "Rate-distortion mode: the router whose own budgets set each beta's total (default: the "
                     "first router in --methods; added to them if missing).")
@click.option("--plot", "plot_path", default=None, type=click.Path(dir_okay=False),
              help="Rate-distortion mode: write a PSNR vs BPP16 PNG here.")
@click.option("--mean-info", default=None, type=float,
              help="Rate-distortion mode: the first router's E[signal] instead of the checkpoint's.")
@click.option("--fit-clips", default=64, show_default=True, type=int,
              help="Rate-distortion mode, --methods with fitted: clips of the fit's sample (a held-out set: other "
                   "videos of its kinds; a folder: its evaluated clips, in-sample).")
@click.option("--spearman-psnr", default=None, type=float,
              help="Also search each clip's fewest tokens reaching this PSNR and report Spearman(I(x), tokens).")
def eval_cmd(input_uri: str, checkpoint: str | None, resolution: str, clip_frames: int, max_videos: int | None,
             max_clips: int, num_procedural: int, batch_size: int, as_json: bool, methods: str | None, betas: str,
             plot_path: str | None, mean_info: float | None, spearman_psnr: float | None, device: str,
             router: str | None, fit_clips: int, **o: Any) -> None:
    """PSNR / SSIM of reconstructions over INPUT: a folder, s3:// prefix, list file, or a held-out
    set made offline: 'procedural' (the training families, held-out seeds and photographs) or
    'mixed' (stills, soft footage, fast pans, fine detail, zooms and low-quality encodes of
    photographs training never saw)."""
    from tqdm import tqdm

    from tokenizer.checkpoint import load_tokenizer
    from tokenizer.device import resolve_device
    from tokenizer.eval.reconstruct import round_trip

    hw = parse_resolution(resolution)
    try:
        dev = resolve_device(device)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from exc
    tok = load_tokenizer(checkpoint, device=dev)
    groups, failures = collect_clips(input_uri, hw, clip_frames, max_videos, max_clips, num_procedural,
                                     storage_from(o))
    if not groups:
        raise click.ClickException(f"no clips to evaluate in {input_uri} ({len(failures)} videos failed)")
    if methods is not None:
        _rate_distortion(tok, groups, failures, input_uri, hw, clip_frames, batch_size, methods, betas,
                         plot_path, mean_info, spearman_psnr, as_json, router, fit_clips)
        return
    rows, all_p, all_s, n_clips = [], [], [], 0
    t0 = time.perf_counter()
    for source, clips in tqdm(groups, desc="eval", unit="video", disable=as_json):
        results = round_trip(tok.model, clips, batch_size)
        p = [r.psnr for r in results]
        s = [r.ssim for r in results]
        all_p += p
        all_s += s
        n_clips += len(clips)
        rows.append({"source": source, "clips": len(clips), "psnr": sum(p) / len(p), "ssim": sum(s) / len(s)})
    elapsed = time.perf_counter() - t0
    summary = {
        "tokenizer_id": tok.tokenizer_id,
        "input": input_uri,
        "resolution": list(hw),
        "clip_frames": clip_frames,
        "clips": n_clips,
        "psnr": sum(all_p) / len(all_p),
        "ssim": sum(all_s) / len(all_s),
        "clips_per_s": n_clips / elapsed,
        "per_source": rows,
        "failures": failures,
    }
    if as_json:
        click.echo(json.dumps(summary, indent=1))
        return
    width = max(len(r["source"]) for r in rows)
    click.echo(f"{'source':<{width}}  clips   PSNR dB   SSIM")
    for r in rows:
        click.echo(f"{r['source']:<{width}}  {r['clips']:>5}  {r['psnr']:8.2f}  {r['ssim']:.3f}")
    click.echo(f"{'mean':<{width}}  {n_clips:>5}  {summary['psnr']:8.2f}  {summary['ssim']:.3f}   "
               f"({summary['clips_per_s']:.2f} clips/s, tokenizer {tok.tokenizer_id})")
    for f in failures:
        click.echo(f"failed: {f['message']}")


def _rate_distortion(tok: LoadedTokenizer, groups: list[tuple[str, list]], failures: list[dict], input_uri: str,
                     resolution: tuple[int, int], clip_frames: int, batch_size: int, methods: str, betas: str,
                     plot_path: str | None, mean_info: float | None, spearman_psnr: float | None,
                     as_json: bool, router: str | None = None, fit_clips: int = 64) -> None:
    import dataclasses

    from tokenizer.adaptive.routers.registry import check_mean_info, get_router, router_names
    from tokenizer.eval.metrics import spearman
    from tokenizer.eval.gaps import gaps
    from tokenizer.eval.rate_distortion import RDConfig, evaluate_rd, fewest_tokens_for_psnr, plot_rd

    if tok.adaptive is None:
        raise click.ClickException(
            f"--methods needs an adaptive (InfoTok) checkpoint; {tok.path} is fixed-rate ({tok.tokenizer_id}). "
            "Train one with `infotok train --stage adaptive --init CKPT`."
        )
    try:
        names = tuple(METHOD_ALIASES.get(m.strip(), m.strip()) for m in methods.split(",") if m.strip())
        names = (router, *names) if router else names  # the reference router goes first
        cfg = RDConfig(methods=tuple(dict.fromkeys(names)), betas=_floats(betas, "--betas"), batch_size=batch_size,
                       mean_info=mean_info)
        for name in (m for m in cfg.methods if m in router_names()):  # only the reference needs gain2's calibration
            tok.adaptive.check_router_ready(name, calibrated=name == cfg.reference)
        if mean_info is not None and get_router(cfg.reference).budgets_from_curves:
            raise ValueError(f"--mean-info {mean_info!r} cannot set the {cfg.reference} router's budgets (they come "
                             "from its calibration curves); list another router first or drop --mean-info")
        if mean_info is None and not get_router(cfg.reference).budgets_from_curves:
            check_mean_info(tok.adaptive.mean_signal(cfg.reference), cfg.reference)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    clips = [c for _, cs in groups for c in cs]
    videos = [source for source, cs in groups for _ in cs]
    fitted = [m for m in cfg.methods if m in router_names() and get_router(m).fits_corpus and m != "gain2"]
    fit_summary = _fit_for_eval(tok, fitted, input_uri, clips, fit_clips, batch_size) if fitted else None
    rows = evaluate_rd(tok.adaptive, clips, cfg, videos)
    router_gaps = gaps(rows)
    ref_mean = tok.adaptive.mean_signal(cfg.reference) if mean_info is None else mean_info
    summary: dict = {
        "tokenizer_id": tok.tokenizer_id, "input": input_uri, "resolution": list(resolution), "clip_frames": clip_frames,
        "clips": len(clips), "videos": len(groups), "reference_router": cfg.reference, "mean_info": ref_mean,
        "param_overhead": tok.adaptive.param_overhead(), "rows": [dataclasses.asdict(r) for r in rows],
        "failures": failures, "gaps": [dataclasses.asdict(g) for g in router_gaps], "fit": fit_summary,
    }
    if spearman_psnr is not None:
        infos, counts = fewest_tokens_for_psnr(tok.adaptive, clips, spearman_psnr, batch_size)
        frames, height, width = clips[0].shape[:3]
        grid_n = (1 + (frames - 1) // 4) * (height // 8) * (width // 8)
        summary["difficulty"] = {"target_psnr": spearman_psnr, "spearman": spearman(infos, [float(c) for c in counts]),
                                 "info": infos, "fewest_tokens": counts,
                                 "unreached": int(sum(c >= grid_n for c in counts))}
    if plot_path:
        summary["plot"] = str(plot_rd(rows, plot_path, title=f"{input_uri} ({len(clips)} clips, {tok.tokenizer_id})"))
    if as_json:
        click.echo(json.dumps(summary, indent=1))
        return
    click.echo(f"{'method':<8} {'beta':>5} {'tokens':>8} {'BPP16':>7} {'+mask':>7} {'PSNR':>7} {'pooled':>7} "
               f"{'video':>7} {'SSIM':>6} {'passes':>7} {'clips/s':>8}")
    for r in rows:
        click.echo(f"{r.method:<8} {r.beta:>5.2f} {r.mean_tokens:>8.1f} {r.bpp16:>7.3f} {r.bpp16_mask:>7.3f} "
                   f"{r.psnr:>7.2f} {r.psnr_pooled:>7.2f} {r.psnr_video:>7.2f} {r.ssim:>6.3f} {r.passes_per_clip:>7.1f} "
                   f"{r.clips_per_s:>8.2f}")
    if router_gaps:
        click.echo(f"\n{'method':<8} {'vs fixed':>9} {'vs oracle':>10} {'passes':>7}   (mean PSNR difference over "
                   f"{len(cfg.betas)} betas at equal total tokens)")
        for g in router_gaps:
            over = f"{g.over_fixed:+9.2f}" if g.over_fixed is not None else f"{'-':>9}"
            under = f"{-g.under_oracle:+10.2f}" if g.under_oracle is not None else f"{'-':>10}"
            click.echo(f"{g.method:<8} {over} {under} {g.passes:>7.1f}")
    click.echo(f"{len(clips)} clips of {len(groups)} videos, tokenizer {tok.tokenizer_id}; totals set by the "
               f"{cfg.reference} router ({get_router(cfg.reference).budget_basis(ref_mean)}); adaptive layer "
               f"{100 * summary['param_overhead']:.1f}% of base params")
    if fit_summary is not None:
        click.echo(f"fit: {fit_summary['describe']}; its sample {fit_summary['sample']} "
                   f"({fit_summary['seconds']:.1f} s)")
    if "difficulty" in summary:
        d = summary["difficulty"]
        click.echo(f"Spearman(I(x), fewest tokens for {d['target_psnr']:g} dB) = {d['spearman']:.3f} "
                   f"({d['unreached']} clips never reach it)")
    if plot_path:
        click.echo(f"plot: {summary['plot']}")


def _fit_for_eval(tok: LoadedTokenizer, routers: list[str], input_uri: str, clips: list, n: int,
                  batch_size: int) -> dict[str, Any]:
    """Fit each per-corpus router (`fitted`) on a sample of INPUT: a held-out set's other videos of the same
    kinds (`fit_seed`), or a folder's own evaluated clips (in-sample, said so)."""
    from tokenizer.adaptive.curve_fit import FitTooSmallError
    from tokenizer.adaptive.fitting import fit_router
    from tokenizer.adaptive.routers.registry import get_router

    if input_uri in HELDOUT_SETS:
        from tokenizer.eval.heldout import fit_seed, heldout_set

        frames, height, width = clips[0].shape[:3]
        sample = [c.frames for c in heldout_set(input_uri, n, frames, height, width, seed=fit_seed(input_uri))][:n]
        where = f"{len(sample)} clips of other {input_uri} videos"
    else:
        sample = clips[:n]
        where = f"{len(sample)} of the evaluated clips (in-sample)"
        logger.warning("the fit's sample is %s: a folder has no other videos to fit on", where)
    t0 = time.perf_counter()
    described = []
    for name in routers:
        try:
            fit = fit_router(tok.adaptive, name, sample, batch_size)
        except (FitTooSmallError, ValueError) as exc:
            raise click.UsageError(str(exc)) from exc
        get_router(name).use_fit(tok.adaptive, fit)
        described.append(fit.describe())
    return {"describe": "; ".join(described), "sample": where, "clips": len(sample),
            "seconds": time.perf_counter() - t0}
