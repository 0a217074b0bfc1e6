"""Which tokens? The same budgets kept by measured or by predicted token scores, side by side.

For each held-out set, each clip is scored by the `gain` router (measured: the per-token error of
the full-rate adaptive reconstruction; slope s from one probe) and by the `latent` router
(predicted: the head's log-scores plus detail_weight x the token's pixel detail; slope s^ from
the descriptor fit). At each beta the ELBO rule's total over the set (the harness's convention)
is split by each slope (`rescaled_counts`), and each split is kept by each kind of score:
four PSNRs per beta, so the slope's and the tokens' shares of the gap between the routers
separate. `--detail-weight W` re-scores the latent tokens with another weight (0: the head alone).

    python benchmarks/bench_token_choice.py [--checkpoint CKPT] [--sets mixed,procedural] [--clips 36]
        [--betas 1,0.75,0.5,0.25] [--detail-weight W] [--threads 2] [--json]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from tokenizer.adaptive.clip_descriptors import describe_clip
from tokenizer.adaptive.router import top_n_mask
from tokenizer.checkpoint import load_tokenizer
from tokenizer.eval.heldout import heldout_set
from tokenizer.eval.splits import rescaled_counts
from tokenizer.video import frames_to_tensor, psnr


@torch.no_grad()
def run_set(model: torch.nn.Module, name: str, clips: int, betas: list[float], detail_weight: float | None,
            batch: int = 4) -> dict[str, dict[str, float]]:
    x = frames_to_tensor(np.stack([c.frames for c in heldout_set(name, clips, 17, 128, 128)]))
    n = x.shape[0]
    parts = [x[i : i + batch] for i in range(0, n, batch)]
    gain = [model.score(p, "gain") for p in parts]
    latent = [model.score(p, "latent", encoding=g.encoding) for p, g in zip(parts, gain)]
    if detail_weight is not None:  # the same head, another weight of the pixel detail
        bounded = [model.bounded_latent(g.encoding.latent) for g in gain]
        latent_scores = torch.cat([model.latent_head.scores(b, describe_clip(p, b).detail, detail_weight)
                                   for p, b in zip(parts, bounded)])
    else:
        latent_scores = torch.cat([s.scores for s in latent])
    scores = {"measured": torch.cat([g.scores for g in gain]), "predicted": latent_scores}
    slopes = {"gain": torch.cat([g.signal for g in gain]).numpy(),
              "latent": torch.cat([s.signal for s in latent]).numpy()}
    n_pos = scores["measured"][0].numel()
    out: dict[str, dict[str, float]] = {}
    for beta in betas:
        total = int(sum(int(model.route(p, beta, router="elbo").n_keep.sum()) for p in parts))
        row: dict[str, float] = {}
        for slope_name, slope in slopes.items():
            counts = torch.tensor(rescaled_counts(slope, total, n_pos))
            for score_name, sc in scores.items():
                keep = top_n_mask(sc, counts)
                ps = [psnr(model(p, keep[i * batch : i * batch + p.shape[0]], encoding=g.encoding)
                           .reconstruction.clamp(-1, 1), p) for i, (p, g) in enumerate(zip(parts, gain))]
                row[f"{slope_name} slope, {score_name} tokens"] = float(torch.cat(ps).mean())
        out[str(beta)] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--sets", default="mixed,procedural")
    ap.add_argument("--clips", type=int, default=36)
    ap.add_argument("--betas", default="1,0.75,0.5,0.25")
    ap.add_argument("--detail-weight", type=float, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_tokenizer(args.checkpoint).adaptive
    if model is None:
        raise SystemExit("bench_token_choice needs an adaptive checkpoint")
    model.check_router_ready("latent")
    betas = [float(b) for b in args.betas.split(",")]
    report = {name: run_set(model, name, args.clips, betas, args.detail_weight) for name in args.sets.split(",")}
    if args.json:
        print(json.dumps(report, indent=1))
        return
    for name, rows in report.items():
        print(f"\n{name}: mean PSNR (dB) at the ELBO rule's totals")
        keys = list(next(iter(rows.values())))
        print("beta  " + " | ".join(keys))
        for beta, row in rows.items():
            print(f"{beta:<5} " + " | ".join(f"{row[k]:.3f}".rjust(len(k)) for k in keys))


if __name__ == "__main__":
    main()
