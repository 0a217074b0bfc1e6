"""At equal total tokens, does an adaptive dataset cost a model fewer bits than a fixed-rate one?

For each held-out set (`procedural`, `mixed`: 128x128x17 clips made offline, see
`tokenizer.eval.heldout`), the shipped checkpoint tokenizes the same clips four ways at the
same total token count over the set (the harness's convention, `tokenizer.eval.rate_distortion`):
the elbo router keeps its own budgets at --beta; gain and latent split that total by their own
signals (`rescaled_counts`); `fixed` gives every clip the same count (tokens chosen by the elbo
scores, as the harness's `fixed`). Each way is written as a real dataset (token rows through
`pipeline.io.writer`, manifest last) and measured by the same LM probe (`tokenizer.lm`, same
steps, seed, model and split by video hash), which reads it as `infotok lm-probe` does.

Per method the set's videos are split in two folds by video hash: the probe trained on one
fold measures the other and vice versa, so every clip is held out exactly once and the figures
cover the whole set at its equal total: bits per kept token, mask bits per clip (combinatorial
bound), bits per pixel of tokens + mask over every clip, and the mean reconstruction PSNR of
the same clips (the rate-distortion harness's figure). The sets are small (tens of clips): the
figures are small-sample, and a probe trained on half of them is a weak, data-starved model
(compare with the `unigram` column, the training fold's id frequencies).

    python benchmarks/bench_lm.py [--sets procedural,mixed] [--clips 36] [--beta 0.5] [--steps 150]
        [--batch-size 4] [--seed 0] [--threads 2] [--out DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pipeline.io.dataset import DatasetDir
from pipeline.io.writer import write_manifest, write_shard
from pipeline.lm.read import read_corpus
from schemas.mask import pack_mask
from schemas.tokens import ClipTokens, TokenFileMeta
from tokenizer.adaptive.model import AdaptiveTokenizer
from tokenizer.adaptive.router import budget_tokens, top_n_mask
from tokenizer.adaptive.routers.registry import budget_rate
from tokenizer.checkpoint import load_tokenizer
from tokenizer.eval.baselines import equal_split
from tokenizer.eval.heldout import HeldoutClip, heldout_set
from tokenizer.eval.metrics import psnr
from tokenizer.eval.splits import rescaled_counts
from tokenizer.lm.corpus import heldout_rows
from tokenizer.lm.mask_bits import mask_bits_array
from tokenizer.lm.model import ProbeModelConfig
from tokenizer.lm.probe import ProbeConfig, run_probe
from tokenizer.video import frames_to_tensor

METHODS = ("fixed", "elbo", "gain", "latent")
REFERENCE = "elbo"  # whose own budgets at beta set the total every method keeps


@torch.no_grad()
def tokenize_ways(model: AdaptiveTokenizer, clips: list[HeldoutClip], beta: float, batch: int
                  ) -> dict[str, tuple[list[ClipTokens], list[float]]]:
    """Per method: the clips' token rows and reconstruction PSNRs, every method at the same total."""
    xs = [frames_to_tensor(np.stack([c.frames for c in clips[i : i + batch]])) for i in range(0, len(clips), batch)]
    encs = [model.base.encode(x) for x in xs]
    scored = {r: [model.score(x, r, encoding=e) for x, e in zip(xs, encs)] for r in ("elbo", "gain", "latent")}
    signal = {r: torch.cat([s.signal for s in v]).double().numpy() for r, v in scored.items()}
    grid = tuple(int(v) for v in encs[0].indices.shape[1:])
    n_cells = int(np.prod(grid))
    ref = budget_tokens(budget_rate(torch.from_numpy(signal[REFERENCE]), beta, model.mean_signal(REFERENCE),
                                    REFERENCE), n_cells).tolist()
    total = int(sum(ref))
    counts = {"fixed": equal_split(total, len(clips), n_cells), "elbo": ref,
              "gain": rescaled_counts(signal["gain"], total, n_cells),
              "latent": rescaled_counts(signal["latent"], total, n_cells)}
    out: dict[str, tuple[list[ClipTokens], list[float]]] = {}
    for method in METHODS:
        router = "elbo" if method == "fixed" else method
        rows: list[ClipTokens] = []
        ps: list[float] = []
        for bi, (x, enc, sc) in enumerate(zip(xs, encs, scored[router])):
            i0 = bi * batch
            n = torch.tensor(counts[method][i0 : i0 + x.shape[0]])
            keep = top_n_mask(sc.scores, n)  # (B, t, h, w)
            y = model(x, keep, encoding=enc)
            ps.extend(psnr(y.reconstruction.clamp(-1, 1), x).tolist())
            for b in range(x.shape[0]):
                c = clips[i0 + b]
                k = keep[b].numpy()
                ids = y.indices[b][keep[b]].numpy().astype(np.uint16)  # raster order of kept cells
                index = sum(1 for prev in clips[: i0 + b] if prev.video == c.video)
                rows.append(ClipTokens(video_id=c.video, source_uri=f"heldout://{c.video}", clip_index=index,
                                       frame_start=index * c.frames.shape[0], frame_count=c.frames.shape[0],
                                       fps=24.0, height=c.frames.shape[1], width=c.frames.shape[2], grid=grid,
                                       tokens=ids, mask=pack_mask(k), rate=float(k.mean()),
                                       info=float(signal[router][i0 + b]), beta=beta))
        assert sum(r.n_tokens for r in rows) == total, (method, total)
        out[method] = (rows, ps)
    return out


def write_dataset(root: Path, rows: list[ClipTokens], meta: TokenFileMeta) -> DatasetDir:
    ds = DatasetDir(str(root))
    write_shard(ds, 0, rows, [], meta)
    write_manifest(ds, {"bench": "bench_lm"})
    return ds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None, help="adaptive checkpoint (default: the shipped one)")
    ap.add_argument("--sets", default="procedural,mixed")
    ap.add_argument("--clips", type=int, default=36)
    ap.add_argument("--beta", type=float, default=0.5)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4, help="clips per tokenizer call")
    ap.add_argument("--out", default=None, help="write the datasets here (default: a temporary folder)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    loaded = load_tokenizer(args.checkpoint)
    if loaded.adaptive is None:
        raise SystemExit(f"checkpoint {loaded.path} is not adaptive")
    model = loaded.adaptive
    # a fixed number of steps on all training videos (no early-stopping split), so both routers' datasets
    # are measured after the same training
    cfg = ProbeConfig(steps=args.steps, batch_size=args.batch_size, seed=args.seed, device="cpu",
                      threads=args.threads, validation_fraction=0.0, model=ProbeModelConfig())
    out_root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench-lm-"))
    results = []
    for set_name in [s for s in args.sets.split(",") if s]:
        t0 = time.perf_counter()
        clips = heldout_set(set_name, args.clips, 17, 128, 128, clips_per_video=2)
        ways = tokenize_ways(model, clips, args.beta, args.batch)
        t_tok = time.perf_counter() - t0
        for method in METHODS:
            rows, ps = ways[method]
            meta = TokenFileMeta(tokenizer_id=loaded.tokenizer_id, beta=args.beta,
                                 expected_info=model.mean_signal("elbo" if method == "fixed" else method),
                                 router="elbo" if method == "fixed" else method)
            ds = write_dataset(out_root / set_name / method, rows, meta)
            corpus = read_corpus(ds).corpus
            # two folds by video hash: each half trains the probe that measures the other, so every
            # clip is held out once and the whole set's stream is measured at its equal total
            fold = heldout_rows(corpus.video_ids, 0.5)
            a, b = corpus.subset(np.flatnonzero(~fold)), corpus.subset(np.flatnonzero(fold))
            if a.n_clips == 0 or b.n_clips == 0:
                raise SystemExit(f"{set_name}: {corpus.n_videos} videos do not make two folds; give more --clips")
            ra, rb = run_probe(a, b, cfg), run_probe(b, a, cfg)  # ra measures b, rb measures a
            token_bits = ra.bits_per_token * b.n_tokens + rb.bits_per_token * a.n_tokens
            unigram = ra.unigram_bits * b.n_tokens + rb.unigram_bits * a.n_tokens
            mask = mask_bits_array(corpus.cells, corpus.kept)
            pixels = float(corpus.pixels.sum())
            results.append({
                "set": set_name, "method": method, "beta": args.beta, "clips": corpus.n_clips,
                "videos": corpus.n_videos, "total_tokens": int(corpus.n_tokens),
                "mean_rate": float((corpus.kept / corpus.cells).mean()),
                "bits_per_token": token_bits / corpus.n_tokens,
                "fold_bits_per_token": [ra.bits_per_token, rb.bits_per_token],
                "bits_per_token_init": (ra.bits_per_token_init * b.n_tokens + rb.bits_per_token_init * a.n_tokens)
                / corpus.n_tokens,
                "unigram_bits": unigram / corpus.n_tokens,
                "mask_bits_per_clip": float(mask.mean()), "token_bits_per_clip": token_bits / corpus.n_clips,
                "bpp": (token_bits + float(mask.sum())) / pixels, "bpp_tokens": token_bits / pixels,
                "bpp_mask": float(mask.sum()) / pixels, "psnr": float(np.mean(ps)),
                "probe_seconds": ra.seconds + rb.seconds, "tokenize_seconds_set": t_tok,
            })
            if not args.json:
                r = results[-1]
                print(f"  {set_name:10s} {method:7s} done: {r['bits_per_token']:.3f} bits/token "
                      f"({r['probe_seconds']:.0f} s probe)", flush=True)
    if args.json:
        print(json.dumps({"probe": cfg.to_dict(), "datasets": str(out_root), "rows": results}, indent=1))
        return
    print(f"\nLM probe at equal total tokens (beta {args.beta} of {REFERENCE}'s budgets); {cfg.steps} steps, batch "
          f"{cfg.batch_size}, seed {cfg.seed}, 2 folds by video hash (every clip held out once). SMALL SAMPLE: "
          f"{args.clips} clips per set")
    print(f"{'set':10s} {'method':7s} {'rate':>5s} {'tokens':>7s} {'bits/tok':>8s} {'folds':>11s} {'unigram':>7s} "
          f"{'tok/clip':>8s} {'mask/clip':>9s} {'bpp':>8s} {'bpp tok':>8s} {'bpp mask':>8s} {'PSNR':>6s}")
    for r in results:
        f1, f2 = r["fold_bits_per_token"]
        print(f"{r['set']:10s} {r['method']:7s} {r['mean_rate']:5.3f} {r['total_tokens']:7d} {r['bits_per_token']:8.3f} "
              f"{f1:5.2f}/{f2:5.2f} {r['unigram_bits']:7.3f} {r['token_bits_per_clip']:8.0f} "
              f"{r['mask_bits_per_clip']:9.1f} {r['bpp']:8.5f} {r['bpp_tokens']:8.5f} {r['bpp_mask']:8.5f} "
              f"{r['psnr']:6.2f}")
    print(f"datasets: {out_root}")


if __name__ == "__main__":
    main()
