"""Fixed-rate tokenizer throughput on this machine: encode, decode and encode+decode clips/s,
and parameter counts per preset.

    python benchmarks/bench_tokenizer.py [--checkpoint PATH] [--size 128] [--frames 17] [--batch 4]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--frames", type=int, default=17)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from tokenizer.checkpoint import load_tokenizer
    from tokenizer.config import PRESETS
    from tokenizer.data.procedural import heldout_clips
    from tokenizer.nn.model import VideoTokenizer, num_params
    from tokenizer.video import frames_to_tensor

    params = {name: num_params(VideoTokenizer(cfg)) for name, cfg in PRESETS.items()}
    model = load_tokenizer(args.checkpoint).model
    clips = [c for _, c in heldout_clips(args.batch, args.frames, args.size, args.size)]
    x = frames_to_tensor(np.stack(clips))
    with torch.no_grad():
        model.decode_indices(model.encode(x).indices)  # warm-up
        enc_s, dec_s = [], []
        for _ in range(args.reps):
            t = time.perf_counter()
            ids = model.encode(x).indices
            enc_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            model.decode_indices(ids)
            dec_s.append(time.perf_counter() - t)
    enc, dec = float(np.median(enc_s)), float(np.median(dec_s))
    out = {"params": params, "clip": [args.frames, args.size, args.size], "batch": args.batch,
           "threads": torch.get_num_threads(), "encode_clips_s": args.batch / enc,
           "decode_clips_s": args.batch / dec, "encode_decode_clips_s": args.batch / (enc + dec),
           "decode_over_encode": dec / enc}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
