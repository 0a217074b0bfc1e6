"""Beta tuning (InfoTok, arXiv 2512.16975): sweep cost vs one router pass, measured side by
side, and the acceptance checks on two held-out procedural corpora of clearly different
complexity, written as mp4s and read back through the pipeline's decode path.

    python benchmarks/bench_tune.py --checkpoint CKPT [--out DIR] [--videos 40] [--frames 41]
        [--size 64] [--sample 24] [--target-rate 0.3] [--target-psnr auto|DB] [--reps 3]
        [--device auto] [--threads 1] [--json]

Corpora: 'simple' (kinds flat, shapes) and 'complex' (texture, noise, held-out photos),
one kind per video, seeds disjoint from training.

1. Cost, interleaved, median of --reps: (a) one plain router pass over the sample
   (encode + full-rate decode, `AdaptiveTokenizer.information`); (b) the rate tuning:
   the same pass through `collect_scores` + the 10-beta rate / BPP16 sweep + the exact
   search; (c) the naive sweep: `route` at each of the 10 betas. Claim: b / a <= 1.3.
   The decoded PSNR curve (8 clips x 10 betas, adaptive path + decoder only) is reported
   separately, in router-pass units.
2. Rate: per corpus, tune --target-rate on the sample (E[I] recalibrated on it, and with
   the checkpoint's E[I]), then route *every* clip of the corpus with that (beta, E[I]),
   as tokenization does: |full-corpus mean rate - target| <= 0.02; the two betas differ.
3. PSNR: per corpus, tune --target-psnr (auto: the middle of the sample's reachable PSNR
   range), then decode every clip of the corpus at that beta: mean PSNR >= target - 0.3 dB.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from pipeline.decode.clips import SourcedClip, iter_clips
from pipeline.decode.step import DecodeConfig
from pipeline.io.inputs import InputConfig
from pipeline.io.storage import StorageConfig
from pipeline.tuning.report import TuningReport, write_report
from pipeline.tuning.sample import SampleConfig, sample_clips
from pipeline.decode.video_write import write_video
from tokenizer.adaptive.model import AdaptiveTokenizer
from tokenizer.tuning.quality import QualityProbe
from tokenizer.tuning.budget import TuneConfig, TuningTarget, beta_grid, budget_at, collect_scores, solve_budget
from tokenizer.checkpoint import load_tokenizer
from tokenizer.data.procedural import make_clip
from tokenizer.device import resolve_device
from tokenizer.eval.metrics import psnr
from tokenizer.tuning.search import tune_beta
from tokenizer.video import frames_to_tensor

logger = logging.getLogger("bench_tune")
CORPORA = {"simple": ("flat", "shapes"), "complex": ("texture", "noise", "photo")}


def make_corpora(root: Path, videos: int, frames: int, size: int) -> dict[str, Path]:
    out = {}
    for c, (name, kinds) in enumerate(CORPORA.items()):
        folder = root / name
        if not (folder.exists() and len(list(folder.glob("*.mp4"))) == videos):
            for i in range(videos):
                rng = np.random.default_rng([777, c, i])  # disjoint from training seeds
                clip = make_clip(rng, frames, size, size, kinds[i % len(kinds)], heldout=True)
                write_video(folder / f"{name}-{i:03d}.mp4", clip, fps=12, crf=18)
        out[name] = folder
    return out


def _sync(model: AdaptiveTokenizer) -> None:
    if model.mean_info.device.type == "cuda":
        torch.cuda.synchronize()


def cost(model: AdaptiveTokenizer, clips: list[np.ndarray], batch: int, reps: int, psnr_clips: int) -> dict:
    xs = [frames_to_tensor(np.stack(clips[i : i + batch])).to(model.mean_info.device)
          for i in range(0, len(clips), batch)]

    def router() -> None:
        with torch.no_grad():
            for x in xs:
                model.information(x)
        _sync(model)

    def tuning() -> float:
        cache = collect_scores(model, clips, batch, keep=())
        m = float(cache.info.double().mean())
        for b in beta_grid(cache, m, 10):
            budget_at(cache, b, m)
        return solve_budget(lambda b: budget_at(cache, b, m)[0].rate, 0.3, "rate")

    def naive() -> None:
        cache = collect_scores(model, clips[:1], 1)
        m = float(cache.info)  # any E[I]: the cost is what matters
        with torch.no_grad():
            for b in np.geomspace(0.05, 1.0, 10):
                for x in xs:
                    model.route(x, float(b), m)
        _sync(model)

    probe_idx = list(range(0, len(clips), max(1, len(clips) // psnr_clips)))[:psnr_clips]
    probe_cache = collect_scores(model, clips, batch, keep=probe_idx)  # latents of the probed clips (not timed)
    probe_m = float(probe_cache.info.double().mean())
    decodes: list[int] = []

    def psnr_curve() -> None:  # a fresh probe each time: no decode is cached across reps
        probe = QualityProbe(model, probe_cache, probe_m, batch)
        for b in beta_grid(probe_cache, probe_m, 10):
            probe.at(b)
        decodes.append(probe.decodes)

    runs = (("router_pass", router), ("tune_rate_sweep", tuning), ("naive_10_routes", naive),
            ("psnr_curve", psnr_curve))
    times: dict[str, list[float]] = {name: [] for name, _ in runs}
    router()  # warm-up
    for _ in range(reps):
        for name, fn in runs:
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "clips": len(clips), "seconds": med, "reps": reps,
        "tune_over_router": med["tune_rate_sweep"] / med["router_pass"],
        "naive_over_router": med["naive_10_routes"] / med["router_pass"],
        "psnr_curve_clips": len(probe_idx), "psnr_curve_decodes": decodes[-1],
        "psnr_curve_over_router": med["psnr_curve"] / med["router_pass"],
        "decode_over_router_per_clip": (med["psnr_curve"] / max(decodes[-1], 1)) / (med["router_pass"] / len(clips)),
    }


def all_clips(folder: Path, decode: DecodeConfig) -> list[np.ndarray]:
    return [c.clip.frames for c in iter_clips(str(folder), decode, StorageConfig()) if isinstance(c, SourcedClip)]


@torch.no_grad()
def corpus_rate_and_psnr(model: AdaptiveTokenizer, clips: list[np.ndarray], beta: float, mean_info: float,
                         batch: int, decode: bool) -> tuple[float, float | None]:
    """Full-corpus mean rate (and mean PSNR) at (beta, E[I]) exactly as tokenization routes clips."""
    rates, ps = [], []
    for i in range(0, len(clips), batch):
        x = frames_to_tensor(np.stack(clips[i : i + batch])).to(model.mean_info.device)
        routing = model.route(x, beta, mean_info)
        rates += (routing.n_keep.double() / routing.scores[0].numel()).tolist()
        if decode:
            y = model(x, routing.keep, encoding=routing.encoding).reconstruction.float().clamp(-1, 1)
            ps += psnr(y, x).tolist()
    return float(np.mean(rates)), float(np.mean(ps)) if decode else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--out", default="/tmp/bench_tune")
    ap.add_argument("--videos", type=int, default=40)
    ap.add_argument("--frames", type=int, default=41, help="frames per video (41: two 17-frame clips)")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--clip-frames", type=int, default=17)
    ap.add_argument("--sample", type=int, default=24)
    ap.add_argument("--target-rate", type=float, default=0.3)
    ap.add_argument("--target-psnr", default="auto")
    ap.add_argument("--psnr-clips", type=int, default=8, help="decoded clips of the cost benchmark's PSNR curve")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: cost,rate,psnr")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    tok = load_tokenizer(args.checkpoint, device=device)
    if tok.adaptive is None:
        raise SystemExit(f"{args.checkpoint} is not an adaptive checkpoint")
    model = tok.adaptive.eval()
    out = Path(args.out)
    corpora = make_corpora(out / "corpora", args.videos, args.frames, args.size)
    decode = DecodeConfig(resolution=(args.size, args.size), clip_frames=args.clip_frames)
    skip = set(filter(None, args.skip.split(",")))
    results: dict = {"checkpoint": args.checkpoint, "tokenizer_id": tok.tokenizer_id, "device": device,
                     "checkpoint_mean_info": float(model.mean_info), "args": vars(args), "corpora": {}}
    for name, folder in corpora.items():
        sample = sample_clips(InputConfig(uri=str(folder)), decode, StorageConfig(), SampleConfig(clips=args.sample))
        frames, groups = [c.frames for c in sample.clips], [c.video_id for c in sample.clips]
        full = all_clips(folder, decode)
        entry: dict = {"sample_clips": len(frames), "corpus_clips": len(full), "videos": args.videos}
        if "cost" not in skip and name == "complex":
            results["cost"] = cost(model, frames, args.batch_size, args.reps, args.psnr_clips)
        if "rate" not in skip:
            for source in ("dataset", "checkpoint"):
                try:
                    r = tune_beta(model, frames, groups, TuningTarget("rate", args.target_rate),
                                  TuneConfig(mean_info=source, psnr_clips=args.psnr_clips, batch_size=args.batch_size))
                except ValueError as exc:
                    entry[f"rate_{source}"] = {"error": str(exc)}
                    continue
                full_rate, _ = corpus_rate_and_psnr(model, full, r.beta, r.mean_info, args.batch_size, False)
                entry[f"rate_{source}"] = {
                    "beta": r.beta, "mean_info": r.mean_info, "sample_rate": r.rate, "sample_rate_ci": r.rate_ci,
                    "corpus_rate": full_rate, "error_vs_target": full_rate - args.target_rate,
                    "ok": abs(full_rate - args.target_rate) <= 0.02, "reachable_rate": r.reachable_rate,
                    "reachable_psnr": r.reachable_psnr, "full_rate_psnr": r.full_rate_psnr}
                if source == "dataset":
                    report = TuningReport(tokenizer_id=tok.tokenizer_id, checkpoint=args.checkpoint, input=str(folder),
                                          decode=decode.to_dict(), sample={"ids": [c.ident() for c in sample.clips]},
                                          tune={}, result=r, created_at="")
                    write_report(report, str(out / f"tuning-{name}-rate.json"), str(out / f"tuning-{name}-rate.png"),
                                 StorageConfig())
        if "psnr" not in skip:
            target = args.target_psnr
            if target == "auto":
                lo_hi = entry.get("rate_dataset", {}).get("reachable_psnr")
                if not lo_hi:
                    continue
                target = round((lo_hi[0] + lo_hi[1]) / 2, 2)
            try:
                r = tune_beta(model, frames, groups, TuningTarget("psnr", float(target)),
                              TuneConfig(psnr_clips=None, batch_size=args.batch_size))
            except ValueError as exc:
                entry["psnr"] = {"target": float(target), "error": str(exc)}
            else:
                _, full_psnr = corpus_rate_and_psnr(model, full, r.beta, r.mean_info, args.batch_size, True)
                entry["psnr"] = {"target": float(target), "beta": r.beta, "sample_psnr": r.psnr,
                                 "sample_psnr_ci": r.psnr_ci, "sample_rate": r.rate, "corpus_psnr": full_psnr,
                                 "ok": full_psnr >= float(target) - 0.3, "decodes": r.cost["psnr_decodes"]}
        results["corpora"][name] = entry
    rd = results["corpora"]
    if all("rate_dataset" in rd[n] and "beta" in rd[n]["rate_dataset"] for n in rd):
        results["betas_differ"] = rd["simple"]["rate_dataset"]["beta"] != rd["complex"]["rate_dataset"]["beta"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_tune.json").write_text(json.dumps(results, indent=1))
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        print(json.dumps({k: v for k, v in results.items() if k != "args"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
