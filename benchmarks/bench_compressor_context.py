"""What the adaptive layer's global attention costs at the job's default size, and what attention
within tiles of the trained frame size would give instead (a measurement for a future checkpoint;
the shipped model attends over the whole frame).

    python benchmarks/bench_compressor_context.py [--size 256] [--tile 16] [--threads 2] [--batch 4]
        [--clips 12] [--rates 1,0.5,0.25,0.125] [--json]

The compressor and decompressor attend over every token of a latent frame and of the frames before
it, so their cost grows with the square of the pixels per frame while the convolutional encoder's
grows linearly: at 128x128 (the size the shipped layer was trained at, a 16x16-token frame) the
compressor is a third of the encoder, at 256x256 about as much again. Tiling runs the same trained
layer on each `--tile` x `--tile`-token tile of the frame as if it were a clip of its own (the
layer's RoPE is relative, so a tile is exactly the trained context), which keeps the cost linear.

Printed, on the shipped checkpoint at --size:
- ms per clip of the base encoder, the compressor with global attention and tiled (median of 3,
  the same batch, called in turn);
- mean PSNR keeping the top r of tokens by the latent router's scores, global vs tiled, on
  held-out `mixed`, `unseen` and procedural clips;
- on the same clips and keeps, how many kept tokens' codes the compressor's pruned last block
  (run only at kept positions, as the product runs it) changes against running every block at
  every position.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

import numpy as np
import torch

from tokenizer.adaptive.model import AdaptiveTokenizer
from tokenizer.adaptive.modules import GridTransformer
from tokenizer.adaptive.router import budget_tokens, top_n_mask
from tokenizer.checkpoint import load_tokenizer
from tokenizer.data.procedural import heldout_clips
from tokenizer.eval.heldout import mixed_clips, unseen_clips
from tokenizer.video import frames_to_tensor, psnr


def _tiles(a: torch.Tensor, tile: int) -> torch.Tensor:
    """(B, t, h, w, ...) -> (B * h/tile * w/tile, t, tile, tile, ...), tiles in raster order."""
    b, t, h, w = a.shape[:4]
    a = a.reshape(b, t, h // tile, tile, w // tile, tile, *a.shape[4:])
    a = a.permute(0, 2, 4, 1, 3, 5, *range(6, a.ndim))
    return a.reshape(-1, t, tile, tile, *a.shape[6:])


def _untile(a: torch.Tensor, b: int, h: int, w: int, tile: int) -> torch.Tensor:
    """The inverse of `_tiles` for (B * tiles, t, tile, tile, C)."""
    t = a.shape[1]
    a = a.reshape(b, h // tile, w // tile, t, tile, tile, -1).permute(0, 3, 1, 4, 2, 5, 6)
    return a.reshape(b, t, h, w, -1)


def run_net(net: GridTransformer, x: torch.Tensor, keep: torch.Tensor, tile: int, content: torch.Tensor | None = None,
            needed: torch.Tensor | None = None) -> torch.Tensor:
    """net's residual (B, t, h, w, C), over the whole frame (tile 0) or tile by tile."""
    b, _, h, w = keep.shape
    if not tile or (h <= tile and w <= tile):
        return net(x, keep, content=content, needed=needed)
    if h % tile or w % tile:
        raise SystemExit(f"--tile {tile} must divide the latent frame {h}x{w}")
    out = net(_tiles(x, tile), _tiles(keep, tile), content=content,
              needed=None if needed is None else _tiles(needed, tile))
    return _untile(out, b, h, w, tile)


class Tiled(torch.nn.Module):
    """A GridTransformer run tile by tile, in its place in the model (same call)."""

    def __init__(self, net: GridTransformer, tile: int) -> None:
        super().__init__()
        self.net, self.tile = net, tile

    def forward(self, x: torch.Tensor, keep: torch.Tensor, content: torch.Tensor | None = None,
                needed: torch.Tensor | None = None) -> torch.Tensor:
        return run_net(self.net, x, keep, self.tile, content=content, needed=needed)


@contextmanager
def tiled(model: AdaptiveTokenizer, tile: int) -> Iterator[None]:
    """The model's compressor and decompressor attend within tiles while inside."""
    nets = model.compressor.net, model.decompressor.net
    model.compressor.net, model.decompressor.net = Tiled(nets[0], tile), Tiled(nets[1], tile)
    try:
        yield
    finally:
        model.compressor.net, model.decompressor.net = nets


def _median_ms(fn: Callable[[], object], clips: int, reps: int = 3) -> float:
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
    p.add_argument("--tile", type=int, default=16, help="tile side in latent tokens (16: the trained 128 px frame)")
    p.add_argument("--clips", type=int, default=12, help="clips of each held-out set")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rates", default="1,0.5,0.25,0.125")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rates = [float(r) for r in args.rates.split(",")]
    model = load_tokenizer().adaptive
    assert model is not None
    n, f, s = args.clips, args.frames, args.size
    sets = {"mixed": [c.frames for c in mixed_clips(n, 1, f, s, s)],
            "unseen": [c.frames for c in unseen_clips(n, 1, f, s, s)],
            "procedural": [c for _, c in heldout_clips(n, f, s, s)]}
    x = frames_to_tensor(np.stack(sets["mixed"][: args.batch]))
    enc = model.base.encode(x)
    keep = model.route(x, 0.5, router="latent").keep
    net, bounded = model.compressor.net, model.bounded_latent(enc.latent)
    for tile in (0, args.tile):  # warm-up
        run_net(net, bounded, keep, tile, needed=keep)
    timing: dict[str, list[float]] = {"encoder": [], "compressor_global": [], "compressor_tiled": []}
    for _ in range(3):
        timing["encoder"].append(_median_ms(lambda: model.base.encode(x), len(x), 1))
        timing["compressor_global"].append(_median_ms(lambda: run_net(net, bounded, keep, 0, needed=keep), len(x), 1))
        timing["compressor_tiled"].append(_median_ms(lambda: run_net(net, bounded, keep, args.tile, needed=keep),
                                                     len(x), 1))
    ms = {k: statistics.median(v) for k, v in timing.items()}
    quality: dict[str, dict[str, dict[str, float]]] = {}
    changed = kept = 0
    for name, clips in sets.items():
        sums = {mode: {r: 0.0 for r in rates} for mode in ("global", "tiled")}
        for i in range(0, len(clips), args.batch):
            xb = frames_to_tensor(np.stack(clips[i : i + args.batch]))
            routing = model.route(xb, 0.5, router="latent")
            for r in rates:
                k = top_n_mask(routing.scores, budget_tokens(torch.full((len(xb),), r), routing.scores[0].numel()))
                codes, _ = model.compress(routing.encoding.latent, k)  # the last block at kept positions only
                full = model.base.fsq(routing.encoding.latent + model.compressor.net(
                    model.bounded_latent(routing.encoding.latent), k))  # every block at every position
                changed += int(((codes != full).any(-1) & k).sum())
                kept += int(k.sum())
                for mode in ("global", "tiled"):
                    with tiled(model, args.tile) if mode == "tiled" else nullcontext():
                        y = model(xb, k, encoding=routing.encoding).reconstruction
                    sums[mode][r] += float(psnr(y.float().clamp(-1, 1), xb.float()).sum())
        quality[name] = {mode: {str(r): v / len(clips) for r, v in per.items()} for mode, per in sums.items()}
    res = {"size": s, "frames": f, "tile": args.tile, "threads": args.threads, "clips_per_set": n,
           "ms_per_clip": ms, "psnr": quality, "pruned_last_block": {"kept_tokens": kept, "codes_changed": changed}}
    if args.json:
        print(json.dumps(res, indent=1))
        return
    print(f"{s}x{s}x{f}, batch {args.batch}, {args.threads} thread(s); tiles of {args.tile}x{args.tile} tokens")
    print(f"ms/clip: encoder {ms['encoder']:.1f}, compressor global {ms['compressor_global']:.1f} "
          f"({ms['compressor_global'] / ms['encoder']:.2f}x the encoder), tiled {ms['compressor_tiled']:.1f} "
          f"({ms['compressor_tiled'] / ms['encoder']:.2f}x)")
    print(f"the compressor's last block run at kept positions only: {changed} of {kept} kept tokens' codes differ "
          f"from the full pass's (global attention, every rate and set below)")
    print(f"mean PSNR (dB) keeping the top r by the latent router's scores, {n} clips a set: global / tiled (tiled - global)")
    for name, q in quality.items():
        cells = [f"r={r}: {q['global'][str(r)]:.2f} / {q['tiled'][str(r)]:.2f} "
                 f"({q['tiled'][str(r)] - q['global'][str(r)]:+.2f})" for r in rates]
        print(f"{name:<11} " + "; ".join(cells))


if __name__ == "__main__":
    main()
