"""Which curve predictor, and which token scores, for the one-pass `fitted` router: measured.

For each held-out set, a fit sample (other videos of its kinds, `tokenizer.eval.heldout.fit_seed`)
and an evaluation sample are measured once: clip descriptors, and each clip's curve (PSNR at gain2's
probe rates and 1) with the latent head's token scores at several pixel-detail weights. Then, at
equal total tokens (each mean rate of --rates), every variant splits the total by gain2's rule on
its curves (`lagrange_counts`) and the evaluation clips are reconstructed at those counts:
- `mean`: every clip the fit sample's mean curve (an equal split: the fixed-rate split of these scores);
- `ridge`: the shipped predictor (`CurvePredictor`: ridge on the standardised descriptors, the
  strength by leave-one-out);
- `ridge+sq`: the same with the squared descriptors as well;
- `knn8`: the mean curve of the 8 nearest fit clips in standardised descriptor space;
- `measured`: each evaluation clip's own measured curve (what no one-pass predictor can beat);
- `gain2`: the gain2 router itself (its own token scores and measured curve), the reference.
Each variant runs with the detail weight the fit chose (the best mean PSNR at the probes on the fit
sample) and with a per-rate choice (`perrate`: the weight best at the probe rate nearest the clip's
rate). Printed: mean PSNR minus `mean`'s, per set and rate, and the curve RMSE on the evaluation clips.

    python benchmarks/bench_curve_fit.py [--sets mixed,unseen,procedural] [--fit-clips 64]
        [--eval-clips 36] [--size 128] [--frames 17] [--rates 0.75,0.5,0.25,0.125] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch

from tokenizer.adaptive.clip_descriptors import describe_clip
from tokenizer.adaptive.curve_fit import CurvePredictor
from tokenizer.adaptive.router import budget_tokens, top_n_mask
from tokenizer.adaptive.routers.gain import full_rate_pass
from tokenizer.adaptive.routers.gain2 import curve_rates
from tokenizer.checkpoint import load_tokenizer
from tokenizer.eval.heldout import fit_seed, heldout_set
from tokenizer.eval.splits import lagrange_counts
from tokenizer.video import frames_to_tensor, psnr

WEIGHTS = (0.0, 1.0, 2.0, 4.0)


@torch.no_grad()
def measure(model, clips: list[np.ndarray], batch: int) -> dict[str, object]:
    """Descriptors (N, F), per weight the head+detail scores' curves (N, K), gain2's curves (N, K)."""
    rates = curve_rates(model)
    desc, curves, g2 = [], {w: [] for w in WEIGHTS}, []
    for i in range(0, len(clips), batch):
        x = frames_to_tensor(np.stack(clips[i : i + batch]))
        enc = model.base.encode(x)
        bounded = model.bounded_latent(enc.latent)
        d = describe_clip(x, bounded)
        desc.append(d.descriptors.double())
        full = full_rate_pass(model, x, enc)[1].double()
        for w in WEIGHTS:
            s = model.latent_head.scores(bounded, d.detail, w)
            curves[w].append(torch.stack([model.probe_psnr(x, enc, s, r).double() for r in rates[:-1]] + [full], 1))
        g2.append(model.score(x, "gain2", enc).curve.double())
    return {"desc": torch.cat(desc), "curves": {w: torch.cat(c) for w, c in curves.items()}, "gain2": torch.cat(g2),
            "rates": rates}


@torch.no_grad()
def reconstruct(model, clips: list[np.ndarray], counts: list[int], weights: list[float], batch: int,
                router_scores: str | None = None) -> list[float]:
    """PSNR of each clip keeping counts[i] tokens by head + weights[i] * detail (or gain2's own scores)."""
    out: list[float] = []
    for i in range(0, len(clips), batch):
        x = frames_to_tensor(np.stack(clips[i : i + batch]))
        enc = model.base.encode(x)
        if router_scores is not None:
            scores = model.score(x, router_scores, enc).scores
        else:
            bounded = model.bounded_latent(enc.latent)
            d = describe_clip(x, bounded)
            head = model.latent_head(bounded)
            scores = head + torch.tensor(weights[i : i + x.shape[0]], dtype=head.dtype)[:, None, None, None] * d.detail
        keep = top_n_mask(scores, torch.tensor(counts[i : i + x.shape[0]]))
        out.extend(psnr(model(x, keep, encoding=enc).reconstruction.float().clamp(-1, 1), x).tolist())
    return out


def _knn(fit_x: torch.Tensor, fit_c: torch.Tensor, x: torch.Tensor, k: int = 8) -> torch.Tensor:
    mu, sd = fit_x.mean(0), fit_x.std(0).clamp_min(1e-6)
    d = torch.cdist((x - mu) / sd, (fit_x - mu) / sd)
    idx = d.topk(min(k, len(fit_x)), largest=False).indices
    rel = fit_c - fit_c[:, -1:]
    return rel[idx].mean(1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default="mixed,unseen,procedural")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--fit-clips", type=int, default=64)
    p.add_argument("--eval-clips", type=int, default=36)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--rates", default="0.75,0.5,0.25,0.125")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_tokenizer(args.checkpoint).adaptive.eval()
    mean_rates = [float(r) for r in args.rates.split(",")]
    report: dict[str, object] = {}
    for name in args.sets.split(","):
        fit_clips = [c.frames for c in heldout_set(name, args.fit_clips, args.frames, args.size, args.size,
                                                   seed=fit_seed(name))][: args.fit_clips]
        ev = heldout_set(name, args.eval_clips, args.frames, args.size, args.size)[: args.eval_clips]
        eval_clips = [c.frames for c in ev]
        fm, em = measure(model, fit_clips, args.batch), measure(model, eval_clips, args.batch)
        rates = fm["rates"]
        grid_n = int(np.prod(model.base.encode(frames_to_tensor(eval_clips[0][None])).indices.shape[1:]))
        w_best = max(WEIGHTS, key=lambda w: float(fm["curves"][w][:, :-1].mean()))
        w_rate = [max(WEIGHTS, key=lambda w: float(fm["curves"][w][:, k].mean())) for k in range(len(rates) - 1)]
        fx, ex = fm["desc"], em["desc"]
        fc = fm["curves"][w_best]
        sq = lambda x: torch.cat([x, x.pow(2)], 1)  # noqa: E731
        ridge, ridge_sq = CurvePredictor.fit(fx, fc), CurvePredictor.fit(sq(fx), fc)
        truth = em["curves"][w_best] - em["curves"][w_best][:, -1:]
        preds = {"mean": (fc - fc[:, -1:]).mean(0, keepdim=True).expand(len(eval_clips), -1),
                 "ridge": ridge.predict(ex), "ridge+sq": ridge_sq.predict(sq(ex)), "knn8": _knn(fx, fc, ex),
                 "measured": truth}
        rmse = {k: float((v - truth).pow(2).mean().sqrt()) for k, v in preds.items()}
        rows: dict[str, list[float]] = {}
        for mr in mean_rates:
            total = int(round(mr * grid_n * len(eval_clips)))
            for k, curves in preds.items():
                counts = lagrange_counts(curves.numpy(), rates, total, grid_n)
                for tag, weights in (("", [w_best] * len(counts)),
                                     ("/perrate", [w_rate[int(np.argmin([abs(math.log(c / grid_n / r)) for r in rates[:-1]]))]
                                                  for c in counts])):
                    rows.setdefault(k + tag, []).append(float(np.mean(reconstruct(model, eval_clips, counts, weights,
                                                                                  args.batch))))
            counts = lagrange_counts(em["gain2"].numpy(), rates, total, grid_n)
            rows.setdefault("gain2", []).append(float(np.mean(reconstruct(model, eval_clips, counts, [], args.batch,
                                                                          router_scores="gain2"))))
        base = rows["mean"]
        print(f"\n{name}: fit {len(fit_clips)} clips, eval {len(eval_clips)}; detail weight {w_best:g} (per probe "
              f"rate {w_rate}); ridge {ridge.ridge:g}; curve RMSE on eval clips: "
              + ", ".join(f"{k} {v:.2f}" for k, v in rmse.items()))
        print(f"{'variant':<18}" + "".join(f"{'r=' + format(r, 'g'):>9}" for r in mean_rates) + f"{'mean':>9}")
        for k, v in rows.items():
            d = [a - b for a, b in zip(v, base)]
            print(f"{k:<18}" + "".join(f"{x:>+9.2f}" for x in d) + f"{np.mean(d):>+9.2f}")
        print(f"(mean PSNR of `mean`: {' / '.join(f'{b:.2f}' for b in base)} dB)")
        report[name] = {"rows": rows, "rmse": rmse, "detail_weight": w_best, "per_rate_weights": w_rate,
                        "ridge": ridge.ridge}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
