"""Where do the tokens go? Per-clip rate-distortion curves and three ways to split one budget.

For each held-out procedural clip: its kind, its router information I(x), and its PSNR when
it keeps the top r of its tokens by router score (the adaptive path, r on a grid). Then, at
each beta, the same total number of tokens is split across clips three ways and scored on
those curves (linear interpolation between grid rates):
- infotok: r_x = clip(beta * I(x) / E[I], 1/16, 1) (the ELBO router's rule);
- fixed:   every clip gets the mean rate;
- oracle:  greedy by the marginal gain of mean PSNR (knows every curve; an upper bound).
Mean PSNR (mean of per-clip dB) and pooled PSNR (of the mean MSE) are both reported, with
infotok's and fixed's rate and PSNR per clip kind, to show which clips gain or lose.

    python benchmarks/bench_allocation.py --checkpoint tokenizer/checkpoints/tiny.safetensors \
        [--clips 20] [--size 128] [--frames 17] [--threads 1] [--json] \
        [--drop-kinds texture,noise] [--mean-info-from clips] [--device auto]

--drop-kinds leaves clip kinds out of the splits (e.g. content the base tokenizer cannot
reconstruct at any rate); --mean-info-from clips replaces the checkpoint's E[I] by the mean
I(x) of the clips that remain, so that a beta gives about the same mean rate.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import numpy as np
import torch

from tokenizer.adaptive.model import AdaptiveTokenizer
from tokenizer.eval.rate_distortion import pooled_psnr

RATES: tuple[float, ...] = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 3 / 4, 1.0)


def curves(model: AdaptiveTokenizer, clips: list[tuple[str, np.ndarray]]) -> list[dict[str, object]]:
    from tokenizer.eval.metrics import psnr
    from tokenizer.adaptive.router import top_n_mask
    from tokenizer.video import frames_to_tensor

    out = []
    with torch.no_grad():
        for kind, clip in clips:
            x = frames_to_tensor(clip[None]).to(model.mean_info.device)
            enc, scores = model.information(x)
            n = scores[0].numel()
            ps = []
            for r in RATES:
                keep = top_n_mask(scores, torch.tensor([max(1, round(r * n))]))
                ps.append(float(psnr(model(x, keep, encoding=enc).reconstruction.clamp(-1, 1), x)[0]))
            out.append({"kind": kind, "info": float(scores.mean()), "psnr": ps})
    return out


def _at(curve: list[float], r: float) -> float:
    return float(np.interp(r, RATES, curve))


def oracle_split(cs: list[list[float]], mean_rate: float, step: float = 1 / 64) -> np.ndarray:
    """Greedy: repeatedly give `step` of rate to the clip whose PSNR rises most."""
    r = np.full(len(cs), RATES[0])
    budget = mean_rate * len(cs) - r.sum()
    while budget > 1e-9:
        gains = [(_at(c, min(1.0, r[i] + step)) - _at(c, r[i])) if r[i] < 1 else -np.inf for i, c in enumerate(cs)]
        j = int(np.argmax(gains))
        d = min(step, budget, 1.0 - r[j])
        r[j] += d
        budget -= d
    return r


def compare(rows: list[dict[str, object]], mean_info: float, betas: tuple[float, ...]) -> list[dict[str, object]]:
    cs = [list(r["psnr"]) for r in rows]  # type: ignore[arg-type]
    info = np.array([r["info"] for r in rows], dtype=np.float64)
    kinds = [str(r["kind"]) for r in rows]
    results = []
    for beta in betas:
        splits = {"infotok": np.clip(beta * info / mean_info, RATES[0], 1.0)}
        mean_rate = float(splits["infotok"].mean())
        splits["fixed"] = np.full(len(cs), mean_rate)
        splits["oracle"] = oracle_split(cs, mean_rate)
        res: dict[str, object] = {"beta": beta, "mean_rate": mean_rate}
        for name, r in splits.items():
            ps = np.array([_at(c, r[i]) for i, c in enumerate(cs)])
            by_kind: dict[str, list[tuple[float, float]]] = defaultdict(list)
            for k, ri, pi in zip(kinds, r, ps):
                by_kind[k].append((float(ri), float(pi)))
            res[name] = {"psnr": float(ps.mean()), "psnr_pooled": pooled_psnr(ps.tolist()),
                         "by_kind": {k: {"rate": float(np.mean([v[0] for v in vs])),
                                         "psnr": float(np.mean([v[1] for v in vs]))} for k, vs in by_kind.items()}}
        results.append(res)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="adaptive (InfoTok) checkpoint")
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--frames", type=int, default=17)
    ap.add_argument("--betas", default="1,0.75,0.5,0.25")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N (default cpu); float32 passes")
    ap.add_argument("--drop-kinds", default="", help="comma list of clip kinds to leave out of the splits")
    ap.add_argument("--mean-info-from", choices=("checkpoint", "clips"), default="checkpoint",
                    help="E[I] of the budget rule: the checkpoint's, or the mean I(x) of the clips used")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from tokenizer.checkpoint import load_tokenizer
    from tokenizer.train.corpus import KINDS, heldout_clips
    from tokenizer.device import resolve_device

    drop = {k for k in args.drop_kinds.split(",") if k}
    unknown = drop - set(KINDS)
    if unknown:
        raise SystemExit(f"--drop-kinds: unknown kind(s) {sorted(unknown)}; choose from {list(KINDS)}")
    tok = load_tokenizer(args.checkpoint, device=resolve_device(args.device))
    if tok.adaptive is None:
        raise SystemExit(f"{args.checkpoint} is a fixed-rate checkpoint; bench_allocation needs an adaptive one")
    model = tok.adaptive.eval()
    clips = [(k, c) for k, c in heldout_clips(args.clips, args.frames, args.size, args.size) if k not in drop]
    if not clips:
        raise SystemExit(f"--drop-kinds {args.drop_kinds!r} leaves no clips")
    rows = curves(model, clips)
    betas = tuple(float(b) for b in args.betas.split(","))
    mean_info = float(model.mean_info) if args.mean_info_from == "checkpoint" else float(np.mean([r["info"] for r in rows]))
    results = compare(rows, mean_info, betas)
    if args.json:
        print(json.dumps({"tokenizer_id": tok.tokenizer_id, "mean_info": mean_info, "rates": RATES, "clips": rows,
                          "splits": results}, indent=1))
        return
    print(f"{len(rows)} clips {args.frames}x{args.size}x{args.size}, tokenizer {tok.tokenizer_id}, "
          f"E[I] {mean_info:.4f} ({args.mean_info_from})" + (f", without {sorted(drop)}" if drop else ""))
    print(f"{'kind':<8} {'I(x)':>6}  PSNR at rates " + " ".join(f"{r:>6.3f}" for r in RATES))
    for r in rows:
        print(f"{r['kind']:<8} {r['info']:>6.3f}  {'':13}" + " ".join(f"{p:>6.2f}" for p in r["psnr"]))
    print(f"\n{'beta':>5} {'rate':>6} | {'mean PSNR: infotok':>18} {'fixed':>6} {'oracle':>6} | "
          f"{'pooled: infotok':>15} {'fixed':>6} {'oracle':>6}")
    for res in results:
        i, f, o = res["infotok"], res["fixed"], res["oracle"]
        print(f"{res['beta']:>5.2f} {res['mean_rate']:>6.3f} | {i['psnr']:>18.2f} {f['psnr']:>6.2f} {o['psnr']:>6.2f} | "
              f"{i['psnr_pooled']:>15.2f} {f['psnr_pooled']:>6.2f} {o['psnr_pooled']:>6.2f}")
    for res in results:
        print(f"\nbeta {res['beta']:g}, per kind (rate / PSNR): infotok vs fixed vs oracle")
        for k in res["infotok"]["by_kind"]:
            cells = [f"{res[m]['by_kind'][k]['rate']:.2f} / {res[m]['by_kind'][k]['psnr']:5.2f}"
                     for m in ("infotok", "fixed", "oracle")]
            print(f"  {k:<8} " + "   ".join(cells))


if __name__ == "__main__":
    main()
