"""`infotok calibrate`: estimate a router's E[signal] over a set of videos and write it out:
E[I], the mean clip information of InfoTok's ELBO router (arXiv 2512.16975), E[s], the mean
quality slope of the gain router, or E[s^], the latent router's mean predicted slope. For the
gain2 router it measures each clip's curve (PSNR at its probes and at full rate) and stores the
curves (`--write-checkpoint`): its budgets solve lam from them for any beta; E[s] is printed for
the record.

The result is a JSON document (tokenizer id, router, E[signal], clip count, settings) that
dataset jobs can pass as their E[signal]; `--write-checkpoint` also writes a copy of the
adaptive checkpoint whose stored E[signal] of that router is the new value (a new tokenizer
id, since budgets change).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click

from jobs.options import (
    clip_frames_option,
    json_option,
    parse_resolution,
    resolution_option,
    router_option,
    storage_from,
    storage_options,
)

logger = logging.getLogger(__name__)


@click.command("calibrate")
@click.argument("input_uri", metavar="INPUT")
@click.option("--checkpoint", default=None, help="Adaptive tokenizer checkpoint (default: the shipped one).")
@click.option("--out", "out_path", default=None, type=click.Path(dir_okay=False), help="Write the JSON here too.")
@click.option("--write-checkpoint", default=None, type=click.Path(dir_okay=False),
              help="Write a copy of the checkpoint with this E[I] stored in it.")
@resolution_option("128")
@clip_frames_option(17)
@click.option("--max-videos", default=None, type=int, help="Use the first N videos only.")
@click.option("--max-clips", default=4, show_default=True, type=int, help="Clips per video at most.")
@click.option("--num-procedural", default=50, show_default=True, type=int, help="Clips when INPUT is a held-out set.")
@click.option("--batch-size", default=4, show_default=True, type=int)
@router_option()
@storage_options
@json_option
def calibrate(input_uri: str, checkpoint: str | None, out_path: str | None, write_checkpoint: str | None,
              resolution: str, clip_frames: int, max_videos: int | None, max_clips: int, num_procedural: int,
              batch_size: int, as_json: bool, router: str, **o: Any) -> None:
    """A router's mean clip signal E[signal] over INPUT (folder, s3:// prefix, list file or a
    held-out set: 'procedural' or 'mixed')."""
    import numpy as np
    import torch

    from jobs.eval_cmd import collect_clips
    from tokenizer.adaptive.routers.gain2_curves import curve_rate
    from tokenizer.adaptive.routers.registry import get_router
    from tokenizer.checkpoint import load_tokenizer, save_tokenizer, stored_float_dtype
    from tokenizer.video import frames_to_tensor

    hw = parse_resolution(resolution)
    tok = load_tokenizer(checkpoint)
    if tok.adaptive is None:
        raise click.ClickException(f"{tok.path} is a fixed-rate checkpoint ({tok.tokenizer_id}); calibrate needs "
                                   "an adaptive one")
    try:
        tok.adaptive.check_router_ready(router, calibrated=False)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    groups, failures = collect_clips(input_uri, hw, clip_frames, max_videos, max_clips, num_procedural,
                                     storage_from(o))
    clips = [c for _, cs in groups for c in cs]
    if not clips:
        raise click.ClickException(f"no clips to calibrate on in {input_uri} ({len(failures)} videos failed)")
    chosen = get_router(router)
    infos: list[float] = []
    curves: list[torch.Tensor] = []
    with torch.no_grad(), chosen.fresh_measurement(tok.adaptive):  # e.g. gain2 at this version's probe rates
        for i in range(0, len(clips), batch_size):
            scored = tok.adaptive.score(frames_to_tensor(np.stack(clips[i : i + batch_size])), router)
            infos.extend(scored.signal.tolist())
            if scored.curve is not None:
                curves.append(scored.curve.float().cpu())
    mean_info = float(np.mean(infos))
    gain2 = chosen.calibration(tok.adaptive, curves)  # gain2: its curves; None for an E[signal] router
    doc = {
        "tokenizer_id": tok.tokenizer_id,
        "input": input_uri,
        "resolution": list(hw),
        "clip_frames": clip_frames,
        "clips": len(infos),
        "router": router,
        "mean_info": mean_info,
        "checkpoint_mean_info": tok.adaptive.mean_signal(router),
        "info_quantiles": {q: float(np.quantile(infos, float(q))) for q in ("0.1", "0.5", "0.9")},
        "failures": len(failures),
    }
    if gain2 is not None:
        doc["gain2"] = {"rates": list(gain2.rates), "lam": {str(b): gain2.lam(b) for b in (1.0, 0.75, 0.5, 0.25)},
                        "mean_rate_at_beta_1": float(curve_rate(gain2.curves, gain2.rates, gain2.lam(1.0)).mean()),
                        "curves": gain2.curves.tolist()}
    if write_checkpoint:
        chosen.write_calibration(tok.adaptive, mean_info, len(infos), gain2)
        info = dict(tok.info, calibration={k: doc[k] for k in ("input", "resolution", "clip_frames", "clips", "router")},
                    calibrated_from=tok.tokenizer_id)
        doc["written_checkpoint"] = write_checkpoint
        # in the source's storage dtype: the weights stay bit for bit, only the calibration changes
        doc["written_tokenizer_id"] = save_tokenizer(tok.adaptive, write_checkpoint, info=info,
                                                     dtype=stored_float_dtype(tok.path))
    text = json.dumps(doc, indent=1)
    if out_path:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        Path(out_path).write_text(text + "\n")
    if as_json:
        click.echo(text)
        return
    q = doc["info_quantiles"]
    sig = chosen.signal_name
    click.echo(f"{sig} {mean_info:.6g} ({router} router) over {len(infos)} clips of {input_uri} (the checkpoint's: "
               f"{doc['checkpoint_mean_info']:.6g}); per clip 10/50/90%: {q['0.1']:.4g} / {q['0.5']:.4g} / "
               f"{q['0.9']:.4g}"
               + (f"; {len(failures)} videos failed" if failures else ""))
    if gain2 is not None:
        click.echo(f"gain2 curves at r = {', '.join(format(r, '.4g') for r in gain2.rates)} over {gain2.count} clips; "
                   "lam at beta 1 / .75 / .5 / .25: " + " / ".join(f"{v:.4g}" for v in doc["gain2"]["lam"].values())
                   + (f" (mean rate at beta 1 is {doc['gain2']['mean_rate_at_beta_1']:.3f}: flat clips stay at "
                      "the floor)"
                      if doc["gain2"]["mean_rate_at_beta_1"] < 0.99 else ""))
    if write_checkpoint:
        click.echo(f"wrote {write_checkpoint} (tokenizer {doc['written_tokenizer_id']})")
    if out_path:
        click.echo(f"wrote {out_path}")
