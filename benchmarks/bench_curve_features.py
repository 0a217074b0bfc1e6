"""Would more clip features predict the fitted router's curve better at low budgets? Measured.

The `fitted` router predicts each clip's curve (PSNR at gain2's probes and 1, with its own token
scores: the latent head plus the checkpoint's pixel-detail weight) by a ridge fit on 11 clip
descriptors (`tokenizer.adaptive.curve_fit.CurvePredictor`). This tries the descriptors plus, at each
probe rate r, the log fraction of some per-token energy left outside the top r of tokens by the
router's scores (what a budget of r drops):
- `conc_detail`: the pixel detail (variance of the token's 8 x 8 block);
- `conc_head`: the head's predicted full-rate error;
- `conc_inov`: the latent's distance from the mean of its 4 spatial neighbours;
and `head_stats` (the head's mean, spread and log mean error). For each held-out set it fits on
--fit-clips clips of other videos (`fit_seed`), predicts the set's own --eval-clips clips, splits
equal totals at mean rates .5 / .34 / .17 by gain2's rule on the predictions (`lagrange_counts`) and
prints each variant's leave-one-out RMSE, curve RMSE per probe on the evaluation clips and mean PSNR.

    python benchmarks/bench_curve_features.py [--sets mixed,unseen] [--fit-clips 64] [--eval-clips 36]
        [--size 128] [--frames 17] [--threads 2]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from tokenizer.adaptive.clip_descriptors import describe_clip
from tokenizer.adaptive.curve_fit import CurvePredictor
from tokenizer.adaptive.model import AdaptiveTokenizer
from tokenizer.adaptive.router import top_n_mask
from tokenizer.adaptive.routers.gain import full_rate_pass
from tokenizer.adaptive.routers.gain2 import curve_rates
from tokenizer.checkpoint import load_tokenizer
from tokenizer.eval.heldout import fit_seed, heldout_set
from tokenizer.eval.splits import lagrange_counts
from tokenizer.video import frames_to_tensor, psnr

MEAN_RATES = (0.5, 0.34, 0.17)


def outside_top(scores: torch.Tensor, energy: torch.Tensor, r: float) -> torch.Tensor:
    """log of the fraction of energy (B, N) in the tokens outside the top r by scores (B, N) -> (B,)."""
    k = max(1, int(round(r * scores.shape[1])))
    kept = energy.gather(1, scores.topk(k, dim=1).indices).sum(1)
    return torch.log((1 - kept / energy.sum(1)).clamp_min(1e-6))


@torch.no_grad()
def measure(model: AdaptiveTokenizer, clips: list[np.ndarray], batch: int
            ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Descriptors (N, F), curves (N, K) with the router's scores, and each extra feature set (N, *)."""
    rates = curve_rates(model)
    desc, curves, extra = [], [], {}
    for i in range(0, len(clips), batch):
        x = frames_to_tensor(np.stack(clips[i : i + batch]))
        enc = model.base.encode(x)
        bounded = model.bounded_latent(enc.latent)
        d = describe_clip(x, bounded)
        scores = model.latent_head.scores(bounded, d.detail)
        head = model.latent_head(bounded)
        full = full_rate_pass(model, x, enc)[1].double()
        curves.append(torch.stack([model.probe_psnr(x, enc, scores, r).double() for r in rates[:-1]] + [full], 1))
        desc.append(d.descriptors.double())
        b = x.shape[0]
        flat = scores.reshape(b, -1).double()
        detail = torch.exp(d.detail.reshape(b, -1).double())
        head_err = torch.exp(head.reshape(b, -1).double())
        lat = bounded.double().permute(0, 4, 1, 2, 3)  # (B, D, t, h, w)
        pad = F.pad(lat, (1, 1, 1, 1, 0, 0), mode="replicate")
        neighbours = (pad[..., 1:-1, :-2] + pad[..., 1:-1, 2:] + pad[..., :-2, 1:-1] + pad[..., 2:, 1:-1]) / 4
        innovation = (lat - neighbours).pow(2).sum(1).reshape(b, -1)
        feats = {
            "conc_detail": torch.stack([outside_top(flat, detail, r) for r in rates[:-1]], 1),
            "conc_head": torch.stack([outside_top(flat, head_err, r) for r in rates[:-1]], 1),
            "head_stats": torch.stack([head.reshape(b, -1).double().mean(1), head.reshape(b, -1).double().std(1),
                                       torch.log(head_err.mean(1))], 1),
            "conc_inov": torch.stack([outside_top(flat, innovation + 1e-8, r) for r in rates[:-1]], 1),
        }
        for k, v in feats.items():
            extra.setdefault(k, []).append(v)
    return torch.cat(desc), torch.cat(curves), {k: torch.cat(v) for k, v in extra.items()}


@torch.no_grad()
def reconstruct(model: AdaptiveTokenizer, clips: list[np.ndarray], counts: list[int], batch: int) -> list[float]:
    """PSNR of each clip keeping counts[i] tokens by the router's scores."""
    out: list[float] = []
    for i in range(0, len(clips), batch):
        x = frames_to_tensor(np.stack(clips[i : i + batch]))
        enc = model.base.encode(x)
        bounded = model.bounded_latent(enc.latent)
        keep = top_n_mask(model.latent_head.scores(bounded, describe_clip(x, bounded).detail),
                          torch.tensor(counts[i : i + batch]))
        out.extend(psnr(model(x, keep, encoding=enc).reconstruction.float().clamp(-1, 1), x).tolist())
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default="mixed,unseen")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--fit-clips", type=int, default=64)
    p.add_argument("--eval-clips", type=int, default=36)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_tokenizer(args.checkpoint).adaptive.eval()
    rates = curve_rates(model)
    for name in args.sets.split(","):
        fit_clips = [c.frames for c in heldout_set(name, args.fit_clips, args.frames, args.size, args.size,
                                                   seed=fit_seed(name))][: args.fit_clips]
        eval_clips = [c.frames for c in heldout_set(name, args.eval_clips, args.frames, args.size,
                                                    args.size)][: args.eval_clips]
        fd, fc, fe = measure(model, fit_clips, args.batch)
        ed, ec, ee = measure(model, eval_clips, args.batch)
        truth = ec - ec[:, -1:]
        variants = {"base": (fd, ed), **{"+" + k: (torch.cat([fd, fe[k]], 1), torch.cat([ed, ee[k]], 1)) for k in fe}}
        grid_n = int(model.base.encode(frames_to_tensor(eval_clips[0][None])).indices[0].numel())
        print(f"{name}: fit {len(fit_clips)} clips, eval {len(eval_clips)}; mean PSNR at mean rates "
              f"{' / '.join(format(r, 'g') for r in MEAN_RATES)}")
        for k, (fx, ex) in variants.items():
            predictor = CurvePredictor.fit(fx, fc)
            pred = predictor.predict(ex)
            rmse = (pred - truth).pow(2).mean(0).sqrt()[:-1].tolist()
            quality = []
            for mr in MEAN_RATES:
                counts = lagrange_counts(pred.numpy(), rates, int(round(mr * grid_n * len(eval_clips))), grid_n)
                quality.append(float(np.mean(reconstruct(model, eval_clips, counts, args.batch))))
            print(f"  {k:14} leave-one-out {predictor.loo_rmse:.3f} dB, eval curve RMSE "
                  f"{' / '.join(f'{v:.2f}' for v in rmse)} dB, PSNR {' / '.join(f'{q:.3f}' for q in quality)}")


if __name__ == "__main__":
    main()
