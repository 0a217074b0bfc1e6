"""What the adaptive layer's attention context costs and gives at the job's default size: whole-frame
attention against windows (`AdaptiveConfig.attention_window` / `attention_halo`), same weights.

    python benchmarks/bench_compressor_context.py [--size 256] [--windows 0,16,16:4,16:8] [--threads 2]
        [--batch 4] [--clips 12] [--rates 1,0.5,0.25,0.125] [--json]

Whole-frame attention over a latent frame and the frames before it costs the square of a frame's
pixels, while the convolutional encoder's cost is linear: at 128x128 (a 16x16-token frame, what the
shipped layer was trained on) the compressor is a third of the encoder, at 256x256 about as much
again. The shipped `tiny` layer attends within 16x16-token tiles instead (its trained context; the
layer's RoPE is relative, so a tile is exactly a trained frame), which keeps the cost linear. Each
`--windows` entry is `W` or `W:HALO` (0: the whole frame), the shipped weights loaded into each.

Printed, on the shipped checkpoint at --size:
- ms per clip of the base encoder and of the compressor under each window (median of 3, the same
  batch, called in turn);
- mean PSNR keeping the top r of tokens by the latent router's scores under each window, on
  held-out `mixed`, `unseen` and procedural clips;
- on the same clips and keeps, how many kept tokens' codes the compressor's pruned last block
  (run only at kept positions, as the product runs it) changes against running every block at
  every position, under the checkpoint's own window.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from tokenizer.adaptive.model import AdaptiveTokenizer
from tokenizer.adaptive.router import budget_tokens, top_n_mask
from tokenizer.checkpoint import load_tokenizer
from tokenizer.data.procedural import heldout_clips
from tokenizer.eval.heldout import mixed_clips, unseen_clips
from tokenizer.video import frames_to_tensor, psnr


def with_window(model: AdaptiveTokenizer, window: int, halo: int) -> AdaptiveTokenizer:
    """The same weights with attention within `window` (0: the whole frame) widened by `halo`."""
    cfg = dataclasses.replace(model.config, attention_window=window, attention_halo=halo)
    other = AdaptiveTokenizer(model.base, cfg).eval()
    other.load_state_dict(model.state_dict())
    return other


def _parse_window(text: str) -> tuple[int, int]:
    window, _, halo = text.partition(":")
    return int(window), int(halo or 0)


def _median_ms(fn: Callable[[], object], clips: int, reps: int = 1) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times) / clips


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--windows", default="0,16,16:4,16:8", help="W or W:HALO entries in latent tokens (0: whole frame)")
    p.add_argument("--clips", type=int, default=12, help="clips of each held-out set")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rates", default="1,0.5,0.25,0.125")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rates = [float(r) for r in args.rates.split(",")]
    shipped = load_tokenizer().adaptive
    assert shipped is not None
    own = f"{shipped.config.attention_window}:{shipped.config.attention_halo}"
    models = {f"{w}:{h}": with_window(shipped, w, h) for w, h in map(_parse_window, args.windows.split(","))}
    n, f, s = args.clips, args.frames, args.size
    sets = {"mixed": [c.frames for c in mixed_clips(n, 1, f, s, s)],
            "unseen": [c.frames for c in unseen_clips(n, 1, f, s, s)],
            "procedural": [c for _, c in heldout_clips(n, f, s, s)]}
    x = frames_to_tensor(np.stack(sets["mixed"][: args.batch]))
    enc = shipped.base.encode(x)
    keep = shipped.route(x, 0.5, router="latent").keep
    bounded = shipped.bounded_latent(enc.latent)
    for m in models.values():  # warm-up
        m.compressor.net(bounded, keep, needed=keep)
    timing: dict[str, list[float]] = {"encoder": [], **{name: [] for name in models}}
    for _ in range(3):
        timing["encoder"].append(_median_ms(lambda: shipped.base.encode(x), len(x)))
        for name, m in models.items():
            timing[name].append(_median_ms(lambda: m.compressor.net(bounded, keep, needed=keep), len(x)))
    ms = {k: statistics.median(v) for k, v in timing.items()}
    quality: dict[str, dict[str, dict[str, float]]] = {}
    changed = kept = 0
    for name, clips in sets.items():
        sums = {w: {r: 0.0 for r in rates} for w in models}
        for i in range(0, len(clips), args.batch):
            xb = frames_to_tensor(np.stack(clips[i : i + args.batch]))
            routing = shipped.route(xb, 0.5, router="latent")
            for r in rates:
                k = top_n_mask(routing.scores, budget_tokens(torch.full((len(xb),), r), routing.scores[0].numel()))
                codes, _ = shipped.compress(routing.encoding.latent, k)  # the last block at kept positions only
                full = shipped.base.fsq(routing.encoding.latent + shipped.compressor.net(
                    shipped.bounded_latent(routing.encoding.latent), k))  # every block at every position
                changed += int(((codes != full).any(-1) & k).sum())
                kept += int(k.sum())
                for w, m in models.items():
                    y = m(xb, k, encoding=routing.encoding).reconstruction
                    sums[w][r] += float(psnr(y.float().clamp(-1, 1), xb.float()).sum())
        quality[name] = {w: {str(r): v / len(clips) for r, v in per.items()} for w, per in sums.items()}
    res = {"size": s, "frames": f, "threads": args.threads, "clips_per_set": n, "checkpoint_window": own,
           "ms_per_clip": ms, "psnr": quality, "pruned_last_block": {"kept_tokens": kept, "codes_changed": changed}}
    if args.json:
        print(json.dumps(res, indent=1))
        return
    first = next(iter(models))
    print(f"{s}x{s}x{f}, batch {args.batch}, {args.threads} thread(s); window W:HALO in latent tokens "
          f"(0: the whole frame); the checkpoint's own: {own}")
    print(f"ms/clip: encoder {ms['encoder']:.1f}; compressor " + ", ".join(
        f"{w} {ms[w]:.1f} ({ms[w] / ms['encoder']:.2f}x)" for w in models))
    print(f"the compressor's last block run at kept positions only: {changed} of {kept} kept tokens' codes differ "
          f"from the full pass's (window {own}, every rate and set below)")
    print(f"mean PSNR (dB) keeping the top r by the latent router's scores, {n} clips a set; "
          f"in brackets the difference to window {first}")
    for name, q in quality.items():
        for w in models:
            cells = [f"{q[w][str(r)]:.2f}" + ("" if w == first else f" ({q[w][str(r)] - q[first][str(r)]:+.2f})")
                     for r in rates]
            print(f"{name:<11} {w:<6} " + "  ".join(f"r={r}: {c}" for r, c in zip(rates, cells)))


if __name__ == "__main__":
    main()
