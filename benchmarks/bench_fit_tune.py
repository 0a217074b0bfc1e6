"""Does beta tuned on a router's per-corpus fit hit its target on clips the fit never saw? Measured.

For each held-out set, each router that fits per corpus (gain2, fitted) is fitted on --fit-clips
clips of other videos of the set's kinds (`tokenizer.eval.heldout.fit_seed`, as a job fits on its
corpus sample), beta is tuned on that fit for each target (`tokenizer.tuning.fit_tune.tune_on_fit`,
as `tokenize --beta auto` does), and the set's own --eval-clips clips are then routed at that beta
and reconstructed. Printed per target: beta, the fit sample's mean rate and PSNR at it (what the
tuning promised, with its 95% CI over the sample's videos), and the evaluation clips' measured mean
rate and PSNR (what a corpus gets). The last two columns are each sample's PSNR with every token
kept: a gap there is the content's level, which no tuning on a sample of other videos can know.
Targets: each rate of --rates, and PSNR floors --psnr-below dB under the fit sample's full-rate PSNR.

    python benchmarks/bench_fit_tune.py [--sets mixed,unseen] [--routers gain2,fitted] [--fit-clips 64]
        [--eval-clips 36] [--size 128] [--frames 17] [--rates 0.3,0.5] [--psnr-below 1,2.5] [--threads 2]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from tokenizer.adaptive.fitting import fit_router
from tokenizer.adaptive.router import budget_tokens, top_n_mask
from tokenizer.adaptive.routers.registry import get_router
from tokenizer.checkpoint import load_tokenizer
from tokenizer.eval.heldout import fit_seed, heldout_set
from tokenizer.tuning.budget import TuningTarget
from tokenizer.tuning.fit_tune import tune_on_fit
from tokenizer.video import frames_to_tensor, psnr

FULL = 2.0  # measured_at's key of every token kept


@torch.no_grad()
def measured_at(model, router: str, clips: list[np.ndarray], betas: list[float], batch: int
                ) -> dict[float, tuple[float, float]]:
    """Per beta: the clips' mean kept rate and mean PSNR when routed by `router` (scored once); under
    the key FULL: every token kept."""
    out: dict[float, list[tuple[float, float]]] = {b: [] for b in [*betas, FULL]}
    for i in range(0, len(clips), batch):
        x = frames_to_tensor(np.stack(clips[i : i + batch]))
        scored = model.score(x, router)
        positions = scored.scores[0].numel()
        for b in betas:
            n = budget_tokens(model.budget(scored, torch.full((x.shape[0],), b)), positions)
            y = model(x, top_n_mask(scored.scores, n), encoding=scored.encoding).reconstruction
            p = psnr(y.float().clamp(-1, 1), x.float())
            out[b].extend(zip((n.double() / positions).tolist(), p.tolist()))
        y = model(x, torch.ones_like(scored.scores, dtype=torch.bool), encoding=scored.encoding).reconstruction
        out[FULL].extend((1.0, q) for q in psnr(y.float().clamp(-1, 1), x.float()).tolist())
    return {b: (float(np.mean([r for r, _ in v])), float(np.mean([q for _, q in v]))) for b, v in out.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None, help="adaptive checkpoint (default: the shipped one)")
    p.add_argument("--sets", default="mixed,unseen")
    p.add_argument("--routers", default="gain2,fitted")
    p.add_argument("--fit-clips", type=int, default=64)
    p.add_argument("--eval-clips", type=int, default=36)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--rates", default="0.3,0.5")
    p.add_argument("--psnr-below", default="1,2.5", help="PSNR floors this many dB under the fit's full-rate PSNR")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_tokenizer(args.checkpoint).adaptive
    assert model is not None, "an adaptive checkpoint is needed"
    model.eval()
    rows = []
    for name in args.sets.split(","):
        fit_clips = [c.frames for c in heldout_set(name, args.fit_clips, args.frames, args.size, args.size,
                                                   seed=fit_seed(name))]
        eval_clips = [c.frames for c in heldout_set(name, args.eval_clips, args.frames, args.size, args.size)]
        groups = [str(i // 2) for i in range(len(fit_clips))]  # two clips a video, as the sets draw them
        with torch.no_grad():
            positions = model.base.encode(frames_to_tensor(fit_clips[0][None])).indices[0].numel()
        pixels = int(np.prod(fit_clips[0].shape[:3]))
        for router in args.routers.split(","):
            fit = fit_router(model, router, fit_clips, args.batch)
            get_router(router).use_fit(model, fit)
            full = float(fit.psnr_curves[:, -1].mean())
            targets = [TuningTarget("rate", float(r)) for r in args.rates.split(",")]
            targets += [TuningTarget("psnr", round(full - float(d), 2)) for d in args.psnr_below.split(",")]
            tuned = [tune_on_fit(fit, t, positions, pixels, model.base.fsq.codebook_size, groups) for t in targets]
            got = measured_at(model, router, eval_clips, [r.beta for r in tuned], args.batch)
            for t, r in zip(targets, tuned):
                rate, q = got[r.beta]
                rows.append({"set": name, "router": router, "target": f"{t.kind} {t.value:g}", "beta": r.beta,
                             "fit_rate": r.rate, "fit_psnr": r.psnr, "fit_psnr_ci": r.psnr_ci, "eval_rate": rate,
                             "eval_psnr": q, "fit_full_psnr": full, "eval_full_psnr": got[FULL][1]})
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"{'set':8} {'router':7} {'target':12} {'beta':>8} {'fit rate':>9} {'fit dB (95% CI)':>22} "
          f"{'eval rate':>10} {'eval dB':>8} {'full: fit':>10} {'eval':>7}")
    for r in rows:
        ci = f"{r['fit_psnr']:.2f} ({r['fit_psnr_ci'][0]:.2f}..{r['fit_psnr_ci'][1]:.2f})"
        print(f"{r['set']:8} {r['router']:7} {r['target']:12} {r['beta']:8.4f} {r['fit_rate']:9.4f} {ci:>22} "
              f"{r['eval_rate']:10.4f} {r['eval_psnr']:8.2f} {r['fit_full_psnr']:10.2f} {r['eval_full_psnr']:7.2f}")


if __name__ == "__main__":
    main()
