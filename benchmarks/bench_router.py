"""Which budget rule? A sweep over the gain router's probe rate on measured per-clip curves.

For every held-out clip: its ELBO information I(x), its base full-rate PSNR, and its PSNR when
it keeps the top r of its tokens by the gain router's scores (the adaptive path) on a grid of
rates (r = 1 is the adaptive path with every token kept). Then, at each beta, the total that
the ELBO rule keeps is split over the clips by each rule, and the split is scored on the
measured curves (linear interpolation in ln r between grid rates):
- elbo:           r ~ I(x) (the paper's rule);
- fixed:          every clip the same rate;
- gain@r_lo:      r ~ s = (PSNR(1) - PSNR(r_lo)) / ln(1/r_lo), PSNR(1) of the adaptive path (the router);
- gain-base@r_lo: the same with PSNR(1) of the base decode (no compressor) instead;
- gain2@a,b:      two probes; the clip's curve is the two segments through them, split exactly;
- gain2-clip@a,b:  the same two-probe curves, but each clip's rate chosen alone (the best
                  PSNR(r) - lam * r on its own curve, one lam for all): a rule a streaming job
                  can run, unlike the exact split;
- oracle:         each clip's whole measured curve, split exactly (dynamic programming over
                  rates in steps of 1/128): the upper bound for any budget rule on these curves.
Every rule's rates are clipped to [1/16, 1] and its scale is solved so that the total is the same.
Then the probe sets (`probe_sets`): every set of k = 1, 2, 3 probes from the oracle grid, and the
whole grid, run as the streaming gain2 rule at two schedules of totals (the ELBO rule's at each
beta with E[I] recalibrated on the clips, as above, and with the checkpoint's E[I], as `infotok
eval` sets them: lower totals); for each k the set with the smallest mean gap to `oracle`
(averaged over the sets and schedules), its gaps and its cost in decodes per clip: what a given
gap to the oracle costs (`--rows` re-runs this on the clips of an earlier `--json` output).

The latent router is checked against the same measurements: the Spearman correlation of its
predicted slope with the measured one (s at r_lo = 1/16, what `--router gain` uses), and how
much of its predicted top half of tokens the measured scores also put in their top half.
A set may also be a folder or s3:// prefix of videos (its first --clips-per-video clips each);
--curves prints every clip's measured PSNR at each grid rate.

    python benchmarks/bench_router.py [--set mixed,procedural|FOLDER] [--clips 36] [--curves] [--json]
"""

from __future__ import annotations

import argparse
import json
import itertools
import math
import time

import numpy as np
import torch

from tokenizer.adaptive.model import AdaptiveTokenizer
from tokenizer.eval.baselines import apportion
from tokenizer.eval.heldout import HeldoutClip
from tokenizer.eval.rate_distortion import video_psnr
from tokenizer.eval.splits import ORACLE_RATES as GRID  # the harness's oracle grid
from tokenizer.eval.splits import oracle_counts, rescaled_counts

PROBES: tuple[float, ...] = (1 / 16, 1 / 8, 3 / 16, 1 / 4, 3 / 8, 1 / 2)
MIN_RATE = 1 / 16


def measure(model: AdaptiveTokenizer, clips: list[HeldoutClip], batch: int) -> list[dict]:
    from tokenizer.adaptive.latent_router import score_target
    from tokenizer.adaptive.router import budget_tokens, token_scores, top_n_mask
    from tokenizer.train.router_stage import top_half_agreement
    from tokenizer.eval.metrics import psnr
    from tokenizer.video import frames_to_tensor

    rows = []
    with torch.no_grad():
        for i in range(0, len(clips), batch):
            part = clips[i : i + batch]
            x = frames_to_tensor(np.stack([c.frames for c in part])).to(model.mean_info.device)
            scored = model.score(x, "gain")
            enc, scores = scored.encoding, scored.scores
            latent = model.score(x, "latent", encoding=enc) if int(model.latent_head_steps) else None
            base = model.base.decode(enc.codes)
            p_base = psnr(base.clamp(-1, 1), x).tolist()
            info = token_scores(base, x).flatten(1).mean(1).tolist()
            n = scores[0].numel()
            curve = []
            for r in GRID:
                keep = top_n_mask(scores, budget_tokens(torch.full((x.shape[0],), r), n))
                curve.append(psnr(model(x, keep, encoding=enc).reconstruction.clamp(-1, 1), x).tolist())
            for b, c in enumerate(part):
                row = {"kind": c.kind, "video": c.video, "info": info[b], "p_base": p_base[b],
                       "curve": [curve[k][b] for k in range(len(GRID))], "slope": float(scored.signal[b])}
                if latent is not None:
                    row["latent_slope"] = float(latent.signal[b])
                    row["latent_top_half"] = top_half_agreement(latent.scores[b : b + 1].cpu(),
                                                                score_target(scores[b : b + 1]).cpu())
                rows.append(row)
    return rows


def at(curve: list[float], r: float) -> float:
    return float(np.interp(math.log(r), [math.log(g) for g in GRID], curve))


def scale_to(weights: np.ndarray, mean_rate: float, n_positions: int = 1280) -> np.ndarray:
    """The harness's split of a rule's signal (`rescaled_counts`: clip(c * w, 1/16, 1), c solved for
    the total), as rates."""
    total = int(round(mean_rate * len(weights) * n_positions))
    return np.asarray(rescaled_counts(weights, total, n_positions), dtype=np.float64) / n_positions


def exact_split(curves: list, mean_rate: float, n_positions: int = 1280) -> np.ndarray:
    """The harness's oracle split (`oracle_counts`: exact over rates in steps of 1/128) of each
    clip's curve, given as a function of r and sampled at GRID (its breakpoints), as rates."""
    table = np.array([[f(r) for r in GRID] for f in curves])
    total = int(round(mean_rate * len(curves) * n_positions))
    return np.asarray(oracle_counts(table, GRID, total, n_positions), dtype=np.float64) / n_positions


def streaming_split(curves: list, probes: tuple[float, ...], mean_rate: float, n_positions: int = 1280
                    ) -> np.ndarray:
    """The `gain2` router's rule (`tokenizer.adaptive.routers.gain2_curves`) on curves through PSNR at the probes
    and at 1: each clip alone takes the rate maximising PSNR(r) - lam * r, one lam for all solved
    for the mean rate, then rounded to tokens at the total like every other rule. Unlike
    `exact_split` it needs no other clip's curve: what a streaming job can run."""
    from tokenizer.adaptive.routers.gain2_curves import curve_rate, solve_lam

    knots = tuple(probes) + (1.0,)
    table = torch.tensor([[f(r) for r in knots] for f in curves], dtype=torch.float64)
    rates = curve_rate(table, knots, solve_lam(table, knots, mean_rate)).numpy()
    total = int(round(mean_rate * len(curves) * n_positions))
    return np.asarray(apportion(total, (rates * n_positions).tolist(), n_positions), dtype=np.float64) / n_positions


def probe_sets(rows: list[dict], totals: dict[str, list[float]], ks: tuple[int, ...] = (1, 2, 3)) -> list[dict]:
    """Every set of k probes from the oracle grid (k in ks, and the whole grid) run as the streaming
    rule, at each mean rate of each totals schedule (name -> mean rates, one per beta): its mean
    PSNR gap to `oracle` and gain over `fixed`, with its cost in decoder (and compressor) passes
    per clip: k probes + the full rate. mean_gap averages over the schedules."""
    cands = GRID[:-1]
    sets = [c for k in ks for c in itertools.combinations(cands, k)] + [tuple(cands)]
    curves = [lambda q, c=r["curve"]: at(c, q) for r in rows]

    def mean_psnr(rates: np.ndarray) -> float:
        return float(np.mean([at(row["curve"], q) for row, q in zip(rows, rates)]))

    refs = {name: [(mean_psnr(exact_split(curves, m)), float(np.mean([at(r["curve"], m) for r in rows])))
                   for m in rates] for name, rates in totals.items()}
    out = []
    for probes in sets:
        gap, over = {}, {}
        for name, rates in totals.items():
            ps = [mean_psnr(streaming_split(curves, probes, m)) for m in rates]
            gap[name] = [p - o for p, (o, _) in zip(ps, refs[name])]
            over[name] = [p - f for p, (_, f) in zip(ps, refs[name])]
        out.append({"probes": list(probes), "k": len(probes), "decodes": len(probes) + 1, "gap_to_oracle": gap,
                    "over_fixed": over, "mean_gap": float(np.mean([np.mean(g) for g in gap.values()])),
                    "mean_gap_by_totals": {n: float(np.mean(g)) for n, g in gap.items()},
                    "mean_over_fixed": float(np.mean([np.mean(g) for g in over.values()]))})
    return out


def probe_summary(report: dict) -> list[dict]:
    """Per k: the probe set with the best mean gap averaged over the sets (and totals schedules),
    and each set's own best."""
    names = list(report["sets"])
    by_set = {n: {tuple(p["probes"]): p for p in report["sets"][n]["probe_sets"]} for n in names}
    keys = list(by_set[names[0]])
    out = []
    for k in sorted({len(p) for p in keys}):
        ks = [p for p in keys if len(p) == k]
        best = max(ks, key=lambda p: np.mean([by_set[n][p]["mean_gap"] for n in names]))
        row = {"k": k, "decodes": k + 1, "probes": [float(x) for x in best],
               "mean_gap": {n: by_set[n][best]["mean_gap"] for n in names},
               "mean_gap_by_totals": {n: by_set[n][best]["mean_gap_by_totals"] for n in names},
               "mean_over_fixed": {n: by_set[n][best]["mean_over_fixed"] for n in names},
               "own_best": {n: max((by_set[n][p] for p in ks), key=lambda q: q["mean_gap"]) for n in names}}
        out.append(row)
    return out


def totals_schedules(rows: list[dict], betas: tuple[float, ...], mean_info: float) -> dict[str, list[float]]:
    """The ELBO rule's mean rate at each beta with E[I] recalibrated on these clips ('clips', as
    `compare` splits) and with the checkpoint's E[I] ('checkpoint', as `infotok eval` does)."""
    info = np.array([r["info"] for r in rows])
    return {name: [float(np.clip(b * info / m, MIN_RATE, 1).mean()) for b in betas]
            for name, m in (("clips", float(info.mean())), ("checkpoint", mean_info))}


def compare(rows: list[dict], betas: tuple[float, ...]) -> list[dict]:
    info = np.array([r["info"] for r in rows])
    videos = [r["video"] for r in rows]
    out = []
    for beta in betas:
        elbo = np.clip(beta * info / info.mean(), MIN_RATE, 1)
        mean_rate = float(elbo.mean())
        splits = {"elbo": elbo, "fixed": np.full(len(rows), mean_rate)}
        for p in PROBES:
            s = np.array([max(0.0, r["curve"][-1] - at(r["curve"], p)) / math.log(1 / p) for r in rows])
            splits[f"gain@{p:.3g}"] = scale_to(s, mean_rate)
            s = np.array([max(0.0, r["p_base"] - at(r["curve"], p)) / math.log(1 / p) for r in rows])
            splits[f"gain-base@{p:.3g}"] = scale_to(s, mean_rate)
        for a, b in ((1 / 16, 1 / 4), (1 / 8, 1 / 2)):
            def two(r: dict, a: float = a, b: float = b):
                xs = [math.log(a), math.log(b), 0.0]
                ys = [at(r["curve"], a), at(r["curve"], b), r["curve"][-1]]
                return lambda q: float(np.interp(math.log(max(q, MIN_RATE)), xs, ys))
            splits[f"gain2@{a:.3g},{b:.3g}"] = exact_split([two(r) for r in rows], mean_rate)
            splits[f"gain2-clip@{a:.3g},{b:.3g}"] = streaming_split([two(r) for r in rows], (a, b), mean_rate)
        splits["oracle"] = exact_split([lambda q, c=r["curve"]: at(c, max(q, MIN_RATE)) for r in rows], mean_rate)
        res = {"beta": beta, "mean_rate": mean_rate}
        for name, rr in splits.items():
            ps = np.array([at(r["curve"], q) for r, q in zip(rows, rr)])
            res[name] = {"psnr": float(ps.mean()), "psnr_video": video_psnr(ps.tolist(), videos)}
        out.append(res)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None, help="adaptive checkpoint (default: the shipped one)")
    ap.add_argument("--set", dest="sets", default="mixed,procedural")
    ap.add_argument("--clips", type=int, default=36)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--frames", type=int, default=17)
    ap.add_argument("--betas", default="1,0.75,0.5,0.25")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N (default cpu); float32 passes")
    ap.add_argument("--clips-per-video", type=int, default=1, help="clips of each video of a folder set")
    ap.add_argument("--curves", action="store_true", help="print each clip's measured PSNR at every grid rate")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rows", default=None, help="reuse the measured clips of an earlier --json output (no model run)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from jobs.eval_cmd import collect_clips
    from pipeline.io.storage import StorageConfig
    from tokenizer.checkpoint import load_tokenizer
    from tokenizer.eval.heldout import HELDOUT_SETS, heldout_set
    from tokenizer.eval.metrics import spearman

    from tokenizer.device import resolve_device

    earlier = json.load(open(args.rows)) if args.rows else None
    tok = load_tokenizer(args.checkpoint, device=resolve_device(args.device))  # --rows: its E[I] only
    betas = tuple(float(b) for b in args.betas.split(","))
    report = {"tokenizer_id": earlier["tokenizer_id"] if earlier else tok.tokenizer_id, "sets": {}}
    for name in args.sets.split(","):
        t0 = time.perf_counter()
        if earlier:
            rows = earlier["sets"][name]["clips"]
        elif name in HELDOUT_SETS:
            clips = heldout_set(name, args.clips, args.frames, args.size, args.size)
        else:  # a folder or prefix of videos
            groups, _ = collect_clips(name, (args.size, args.size), args.frames, args.clips, args.clips_per_video, 0,
                                      StorageConfig())
            clips = [HeldoutClip("video", uri.rsplit("/", 1)[-1], f) for uri, fs in groups for f in fs]
        if not earlier:
            rows = measure(tok.adaptive.eval(), clips, args.batch)
        res = compare(rows, betas)
        report["sets"][name] = {"clips": rows, "splits": res, "seconds": time.perf_counter() - t0,
                                "probe_sets": probe_sets(rows, totals_schedules(rows, betas,
                                                                                tok.adaptive.mean_signal("elbo")))}
        if "latent_slope" in rows[0]:
            report["sets"][name]["latent"] = {
                "slope_spearman": spearman([r["latent_slope"] for r in rows], [r["slope"] for r in rows]),
                "top_half_agreement": float(np.mean([r["latent_top_half"] for r in rows]))}
        if not args.json:
            if args.curves:
                print(f"\n{name}: PSNR (dB) at r = " + ", ".join(f"{g:.3g}" for g in GRID))
                for r in rows:
                    print(f"  {r['video']:<28}" + " ".join(f"{p:6.2f}" for p in r["curve"]) + f"   s {r['slope']:.3f}")
            if "latent" in report["sets"][name]:
                lat = report["sets"][name]["latent"]
                print(f"\n{name}: latent router vs measured: slope Spearman {lat['slope_spearman']:.3f}, "
                      f"top-half token agreement {lat['top_half_agreement']:.3f}")
            methods = [k for k in res[0] if k not in ("beta", "mean_rate")]
            print(f"\n{name}: {len(rows)} clips, mean PSNR minus fixed (dB), per clip | per video")
            print(f"{'method':<24}" + "".join(f"{'b=' + format(r['beta'], 'g'):>14}" for r in res) + f"{'mean':>14}")
            for m in methods:
                d = [(r[m]["psnr"] - r["fixed"]["psnr"], r[m]["psnr_video"] - r["fixed"]["psnr_video"]) for r in res]
                cells = "".join(f"{a:>+7.2f}|{b:<+6.2f}" for a, b in d)
                mean = (np.mean([a for a, _ in d]), np.mean([b for _, b in d]))
                print(f"{m:<24}{cells}{mean[0]:>+7.2f}|{mean[1]:<+6.2f}")
    report["probes_vs_oracle"] = probe_summary(report)
    if args.json:
        print(json.dumps(report, indent=1))
        return
    names = list(report["sets"])
    print("\nstreaming multi-probe rule (gain2): the best probe set of each size (best mean over the sets and the"
          "\ntotals of both ELBO calibrations), mean gap to oracle at the clips' | the checkpoint's E[I] totals and"
          "\nover fixed (dB, mean over betas); decodes per clip = probes + full rate")
    print(f"{'k':>3} {'decodes':>8}  {'probes':<36}" + "".join(f"{n + ' gap|gap|+fixed':>30}" for n in names)
          + "   each set's own best set: gap")
    for row in report["probes_vs_oracle"]:
        gaps = {n: row["mean_gap_by_totals"][n] for n in names}
        cells = "".join(f"{gaps[n]['clips']:>+14.3f}|{gaps[n]['checkpoint']:<+6.3f}|{row['mean_over_fixed'][n]:<+8.3f}"
                        for n in names)
        own = ", ".join(f"{n} {{{','.join(format(x, '.4g') for x in row['own_best'][n]['probes'])}}} "
                        f"{row['own_best'][n]['mean_gap']:+.3f}" for n in names)
        probes = "{" + ",".join(format(x, ".4g") for x in row["probes"]) + "}"
        print(f"{row['k']:>3} {row['decodes']:>8}  {probes:<36}{cells}   {own}")


if __name__ == "__main__":
    main()
