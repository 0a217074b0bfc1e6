"""Wall time per clip of each router (elbo = InfoTok, arXiv 2512.16975; gain; gain2; latent; fitted) vs the
fixed-rate tokenizer vs an ElasticTok-style binary search, side by side on the same held-out
clips, in one process.

    python benchmarks/bench_adaptive.py --checkpoint CKPT [--clips 10] [--size 128]
        [--frames 17] [--beta 0.5] [--reps 3] [--threads 1] [--device auto] [--autocast]
        [--fit-clips 64] [--amortise 1000] [--routers R,...] [--no-elastic] [--rounds 7] [--json]
    python benchmarks/bench_adaptive.py --untrained base:reference ...   (architecture cost only)

Per method, `tokenize` is the work to produce the tokens and `round trip` adds the
reconstruction:
- fixed:   base encode (-> ids)                                    | + base decode
- elbo:    encode + full-rate decode + compressor                 | + decompressor + decode
- gain:    encode + 2 x (compressor + decode) + compressor         | + decompressor + decode
- gain2:   encode + 4 x (compressor + decode) + compressor         | + decompressor + decode
- latent:  encode + router head + compressor                      | + decompressor + decode
- fitted:  encode + router head + compressor (the latent router's passes; its curve comes from a
           per-corpus fit)                                         | + decompressor + decode
- elastic: encode + per-clip binary search over the raster-prefix token count, each probe
           one compressor + decoder pass, threshold = elbo's mean L1 error at --beta
           (the tokens then come from one more compressor pass) | + decompressor + decode
The latent router's tokenize time is also split into encoder, head and compressor (each timed
alone). Methods run interleaved clip batch by clip batch, each repeated --reps times (median),
so background load hits them alike; then fixed, latent and fitted are called in turn, one call each,
for --rounds rounds a batch (median): the tightest comparison of the one-pass routers with fixed,
whose calls are then seconds apart rather than the other methods' minutes. Ratios: each router /
fixed (latent target <= 1.5) and elastic / elbo. The fitted router's fit (on --fit-clips other held-out clips, before the timing)
is timed apart and reported per sample clip and amortised over an --amortise-clip corpus, in units
of the fixed-rate tokenizer's time per clip.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from tokenizer.adaptive.clip_descriptors import clip_descriptors, describe_clip
from tokenizer.adaptive.model import AdaptiveTokenizer
from tokenizer.adaptive.fitting import fit_router
from tokenizer.adaptive.routers.registry import get_router, router_names
from tokenizer.adaptive.routers.gain2_curves import Gain2Calibration
from tokenizer.eval.baselines import elastic_search, position_mask
from tokenizer.checkpoint import load_tokenizer
from tokenizer.data.procedural import heldout_clips
from tokenizer.device import mixed_precision, resolve_device
from tokenizer.video import frames_to_tensor


def _timed(fn: Callable[[], object], reps: int, device: torch.device) -> float:
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def alternated(methods: dict[str, Callable[[torch.Tensor], object]], xs: list[torch.Tensor], rounds: int,
               device: torch.device) -> dict[str, float]:
    """Seconds per batch of each method, summed over batches: per batch, `rounds` rounds of one call of
    each method in turn (median per method), so a ratio between them compares calls made seconds apart."""
    total = {name: 0.0 for name in methods}
    for x in xs:
        times: dict[str, list[float]] = {name: [] for name in methods}
        for _ in range(rounds):
            for name, fn in methods.items():
                times[name].append(_timed(lambda: fn(x), 1, device))  # noqa: B023 - called immediately
        for name in methods:
            total[name] += statistics.median(times[name])
    return total


def run(model: AdaptiveTokenizer, clips: list[np.ndarray], beta: float, batch: int, reps: int,
        with_elastic: bool = True, autocast: bool = False, rounds: int = 7,
        routers: tuple[str, ...] | None = None) -> dict[str, object]:
    """routers: the routers timed (None: all; latent and fitted always, for the split and the alternated ratio)."""
    routers = tuple(r for r in router_names() if routers is None or r in routers or r in ("latent", "fitted"))
    model.eval()
    base = model.base
    device = model.mean_info.device
    xs = [frames_to_tensor(np.stack(clips[i : i + batch])).to(device) for i in range(0, len(clips), batch)]
    with torch.no_grad():  # elastic's threshold: the elbo router's mean L1 error at this beta
        errs = []
        for x in xs if with_elastic else []:
            routing = model.route(x, beta, router="elbo")
            y = model(x, routing.keep, encoding=routing.encoding).reconstruction.clamp(-1, 1)
            errs.extend((y - x).abs().flatten(1).mean(1).tolist())
    threshold = float(np.mean(errs)) if errs else float("nan")
    probes: list[int] = []

    @torch.no_grad()
    def fixed_tok(x: torch.Tensor) -> object:
        return base.encode(x).indices

    @torch.no_grad()
    def fixed_rt(x: torch.Tensor) -> object:
        return base.decode_indices(base.encode(x).indices)

    def router_tok(router: str) -> Callable[[torch.Tensor], object]:
        return torch.no_grad()(lambda x: model.tokenize(x, beta, router=router))

    def router_rt(router: str) -> Callable[[torch.Tensor], object]:
        return torch.no_grad()(lambda x: model.detokenize(model.tokenize(x, beta, router=router)))

    @torch.no_grad()
    def latent_head(x: torch.Tensor, enc: object) -> object:  # token scores, descriptors and the slope fit
        bounded = model.bounded_latent(enc.latent)
        described = describe_clip(x, bounded)
        return model.latent_head.scores(bounded, described.detail), model.latent_slope(described.descriptors)

    @torch.no_grad()
    def latent_compressor(x: torch.Tensor, enc: object, keep: torch.Tensor) -> object:
        return model.compress(enc.latent, keep)

    @torch.no_grad()
    def elastic_tok(x: torch.Tensor, record: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        enc = base.encode(x)
        found = elastic_search(model, x, enc, threshold)
        if record:
            probes.extend(found.probes)
        keep = position_mask("raster", found.n_keep, tuple(enc.indices.shape[1:])).to(device)
        codes, _ = model.compress(enc.latent, keep)
        return codes, keep

    @torch.no_grad()
    def elastic_rt(x: torch.Tensor) -> object:
        codes, keep = elastic_tok(x)
        return model.decode_masked(codes, keep).clamp(-1, 1)

    methods: dict[str, Callable[[torch.Tensor], object]] = {"fixed_tokenize": fixed_tok, "fixed_round_trip": fixed_rt}
    for r in routers:
        methods[f"{r}_tokenize"] = router_tok(r)
        methods[f"{r}_round_trip"] = router_rt(r)
    methods["elastic_tokenize"] = elastic_tok
    methods["elastic_round_trip"] = elastic_rt
    if not with_elastic:
        methods = {k: v for k, v in methods.items() if not k.startswith("elastic")}
    with mixed_precision(device, autocast):
        for x in xs[:1]:  # warm-up
            for fn in methods.values():
                fn(x)
        seconds = {name: 0.0 for name in methods}
        split = {"latent_encoder": 0.0, "latent_head": 0.0, "latent_compressor": 0.0}
        for x in xs:
            if with_elastic:
                elastic_tok(x, record=True)
            for name, fn in methods.items():
                seconds[name] += _timed(lambda: fn(x), reps, device)  # noqa: B023 - called immediately
            with torch.no_grad():
                enc = base.encode(x)
                keep = model.route(x, beta, router="latent").keep
            split["latent_encoder"] += _timed(lambda: base.encode(x), reps, device)  # noqa: B023
            split["latent_head"] += _timed(lambda: latent_head(x, enc), reps, device)  # noqa: B023
            split["latent_compressor"] += _timed(lambda: latent_compressor(x, enc, keep), reps, device)  # noqa: B023
        one_pass = alternated({m: methods[f"{m}_tokenize"] for m in ("fixed", "latent", "fitted")}, xs, rounds, device)
    per_clip = {name: s / len(clips) for name, s in {**seconds, **split}.items()}
    mean_probes = float(np.mean(probes)) if probes else float("nan")
    out: dict[str, object] = {
        "clips": len(clips), "shape": list(clips[0].shape), "beta": beta, "reps": reps,
        "threads": torch.get_num_threads(), "device": str(device), "autocast": autocast and device.type == "cuda",
        "elastic_threshold_l1": threshold,
        "seconds_per_clip": per_clip,
        "passes_per_clip": {"fixed": 1, **{r: sum(get_router(r).passes(model)) for r in routers},
                            "elastic": 1 + 2 * mean_probes + 1},
        "elastic_probes_per_clip": mean_probes,
        "ratio_over_fixed": {r: {"tokenize": per_clip[f"{r}_tokenize"] / per_clip["fixed_tokenize"],
                                 "round_trip": per_clip[f"{r}_round_trip"] / per_clip["fixed_round_trip"]}
                             for r in routers},
        "alternated": {"rounds": rounds, "seconds_per_clip": {m: v / len(clips) for m, v in one_pass.items()},
                       "tokenize_over_fixed": {m: one_pass[m] / one_pass["fixed"] for m in ("latent", "fitted")}},
    }
    if with_elastic:
        out["ratio_elastic_over_elbo"] = {
            "tokenize": per_clip["elastic_tokenize"] / per_clip["elbo_tokenize"],
            "round_trip": per_clip["elastic_round_trip"] / per_clip["elbo_round_trip"],
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="adaptive (InfoTok) checkpoint")
    p.add_argument("--untrained", metavar="BASE:ADAPTIVE",
                   help="instead of a checkpoint, time randomly initialised presets (e.g. base:reference): "
                        "architecture cost only; elastic is skipped (its probe count needs a trained model)")
    p.add_argument("--clips", type=int, default=10)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--beta", type=float, default=0.5)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--routers", help="comma-separated routers to time besides latent and fitted (default: all)")
    p.add_argument("--no-elastic", action="store_true", help="skip the ElasticTok-style search")
    p.add_argument("--rounds", type=int, default=7,
                   help="rounds of fixed, latent and fitted called in turn per batch (the alternated ratio)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--autocast", action="store_true", help="bfloat16 autocast on CUDA")
    p.add_argument("--fit-clips", type=int, default=64, help="the fitted router's sample (other held-out clips)")
    p.add_argument("--amortise", type=int, default=1000, help="corpus size the fit's cost is spread over")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if (args.checkpoint is None) == (args.untrained is None):
        raise SystemExit("give exactly one of --checkpoint and --untrained")
    if args.untrained:
        from tokenizer.train.adaptive_stage import build_adaptive

        base_name, _, adaptive_name = args.untrained.partition(":")
        model, name = build_adaptive(base_name, adaptive_name or "tiny").to(device), f"untrained {args.untrained}"
    else:
        tok = load_tokenizer(args.checkpoint, device=device)
        if tok.adaptive is None:
            raise SystemExit(f"{args.checkpoint} is a fixed-rate checkpoint; bench_adaptive needs an adaptive one")
        model, name = tok.adaptive, tok.tokenizer_id
    clips = [c for _, c in heldout_clips(args.clips, args.frames, args.size, args.size)]
    if args.untrained:  # each router's E[signal] on these clips, so budgets are mid-range; the head as it is
        with torch.no_grad():
            x = frames_to_tensor(np.stack(clips)).to(device)
            model.eval().latent_head_steps.fill_(1)
            slopes = model.score(x, "gain").signal
            model.latent_slope.fit(clip_descriptors(x, model.bounded_latent(model.base.encode(x).latent)), slopes)
            for r in router_names():
                if get_router(r).mean_buffers is None and r != "gain2":  # the fitted router: its fit below
                    continue
                scored = model.score(x, r)
                if r == "gain2":
                    model.set_gain2(Gain2Calibration(rates=scored.curve_rates, curves=scored.curve.cpu()))
                else:
                    model.set_mean_info(max(float(scored.signal.double().mean()), 1e-6), len(clips), r)
    fit_clips = [c for _, c in heldout_clips(args.fit_clips, args.frames, args.size, args.size, seed=99)]
    t0 = time.perf_counter()
    get_router("fitted").use_fit(model, fit_router(model, "fitted", fit_clips, batch_size=args.batch))
    fit_seconds = time.perf_counter() - t0
    routers = None if args.routers is None else tuple(r.strip() for r in args.routers.split(",") if r.strip())
    unknown = sorted(set(routers or ()) - set(router_names()))
    if unknown:
        raise SystemExit(f"unknown router(s) {unknown} in --routers; choose from {router_names()}")
    res = run(model, clips, args.beta, args.batch, args.reps, with_elastic=args.untrained is None and not args.no_elastic,
              autocast=args.autocast, rounds=args.rounds, routers=routers)
    fixed = res["seconds_per_clip"]["fixed_tokenize"]
    res["fit"] = {"clips": args.fit_clips, "seconds": fit_seconds, "per_sample_clip_over_fixed": fit_seconds / args.fit_clips / fixed,
                  "amortised_over": args.amortise, "amortised_over_fixed": fit_seconds / args.amortise / fixed}
    res["tokenizer_id"] = name
    if args.json:
        print(json.dumps(res, indent=1))
        return
    print(f"{res['clips']} clips {res['shape']}, beta {args.beta}, {res['device']}, {res['threads']} thread(s), "
          f"median of {args.reps}; tokenizer {name}")
    print(f"{'method':<10} {'tokenize ms/clip':>17} {'round trip ms/clip':>19} {'passes/clip':>12}")
    s = res["seconds_per_clip"]
    for m in res["passes_per_clip"]:
        if m + "_tokenize" not in s:
            continue
        print(f"{m:<10} {1e3 * s[m + '_tokenize']:>17.1f} {1e3 * s[m + '_round_trip']:>19.1f} "
              f"{res['passes_per_clip'][m]:>12.1f}")
    print(f"latent split (ms/clip): encoder {1e3 * s['latent_encoder']:.1f}, head {1e3 * s['latent_head']:.2f}, "
          f"compressor {1e3 * s['latent_compressor']:.1f}")
    for r, q in res["ratio_over_fixed"].items():
        print(f"{r} / fixed: tokenize {q['tokenize']:.2f}, round trip {q['round_trip']:.2f}"
              + (" (target <= 1.5)" if r in ("latent", "fitted") else ""))
    a = res["alternated"]
    print(f"alternated call by call with fixed ({a['rounds']} rounds a batch, median): latent / fixed "
          f"{a['tokenize_over_fixed']['latent']:.2f}, fitted / fixed {a['tokenize_over_fixed']['fitted']:.2f} "
          f"(fixed {1e3 * a['seconds_per_clip']['fixed']:.1f} ms/clip)")
    f = res["fit"]
    print(f"fitted's fit: {f['clips']} clips in {f['seconds']:.1f} s ({f['per_sample_clip_over_fixed']:.1f}x fixed per "
          f"sample clip); amortised over {f['amortised_over']} clips: +{f['amortised_over_fixed']:.2f}x fixed")
    if "ratio_elastic_over_elbo" in res:
        r2 = res["ratio_elastic_over_elbo"]
        print(f"elastic / elbo: tokenize {r2['tokenize']:.2f}, round trip {r2['round_trip']:.2f}")

if __name__ == "__main__":
    main()
