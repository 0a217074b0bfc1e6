"""The LM probe at its defaults on a dataset of a few dozen clips: does it beat the unigram
baseline, and where does early stopping take its figure (issue 26)?

15 generated videos (three of each of five kinds, 33 frames, 96x96), tokenized at 64x64 with
9-frame clips by the shipped checkpoint, router gain2 at beta 0.5 (45 clips; written in-process
with the code path the Ray job runs, `pipeline.tokenize.local`), then `infotok lm-probe --json` at
its defaults.

    python benchmarks/bench_lm_small.py [--out DIR] [--eval-every N --patience P]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

KINDS = ("flat", "shapes", "photo", "texture", "noise")


def make_dataset(root: Path) -> str:
    from pipeline.decode.step import DecodeConfig
    from pipeline.decode.video_write import write_video
    from pipeline.io.dataset import DatasetDir
    from pipeline.io.inputs import InputConfig, list_inputs
    from pipeline.io.writer import write_manifest
    from pipeline.job.job import JobConfig
    from pipeline.tokenize.local import run_local_shard
    from pipeline.tokenize.step import TokenizeConfig
    from tokenizer.data.procedural import make_clip

    corpus = root / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for i in range(15):
        kind = KINDS[i % 5]
        write_video(corpus / f"{i:02d}_{kind}.mp4", make_clip(np.random.default_rng([11, i]), 33, 96, 96, kind,
                                                                heldout=True), fps=12)
    job = JobConfig(input=str(corpus), output=str(root / "ds"),
                    decode=DecodeConfig(resolution=(64, 64), clip_frames=9),
                    tokenize=TokenizeConfig(beta=0.5, router="gain2", device="cpu"))
    run_local_shard(job, 0, list_inputs(InputConfig(uri=str(corpus))))
    write_manifest(DatasetDir(job.output), job.to_dict())
    return job.output


def main() -> None:
    from click.testing import CliRunner

    from jobs.cli import main as cli

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="Work folder (default: a new temporary one).")
    ap.add_argument("--eval-every", type=int, default=0)
    ap.add_argument("--patience", type=int, default=5)
    args = ap.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="bench-lm-small-"))
    ds = make_dataset(root)
    res = CliRunner().invoke(cli, ["lm-probe", ds, "--device", "cpu", "--json", "--eval-every", str(args.eval_every),
                                   "--patience", str(args.patience)])
    if res.exit_code != 0:
        raise SystemExit(res.output)
    d = json.loads(res.output[res.output.index("{"):])
    print(f"{d['dataset_clips']} clips; train {d['train_clips']} / held out {d['heldout_clips']} clips "
          f"({d['heldout_videos']} videos); validation {d['validation_videos']} videos")
    print(f"best step {d['best_step']} of {d['steps_run']}: {d['bits_per_token']:.2f} bits/token held out; "
          f"unigram {d['unigram_bits']:.2f}, uniform {d['uniform_bits']:.2f}, untrained {d['bits_per_token_init']:.2f}; "
          f"beats both: {d['beats_baselines']}")
    print("step  train  held-out  validation")
    for p in d["curve"]:
        train = f"{p['train_bits']:.2f}" if p["train_bits"] is not None else "-"
        val = f"{p['val_bits']:.2f}" if p["val_bits"] is not None else "-"
        print(f"{p['step']:>4}  {train:>5}  {p['heldout_bits']:>8.2f}  {val:>10}")
    for w in d["warnings"]:
        print("warning:", w)


if __name__ == "__main__":
    main()
