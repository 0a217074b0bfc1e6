"""Which tokens at low budgets? The latent router's keep against measured and learnt alternatives.

Every clip is kept at the same rate r (an equal split, so only the choice of tokens differs) by:
- `shipped`: the latent router's scores (the head's log error + detail_weight x pixel detail);
- `head only`: the head without the pixel detail;
- `full-rate error`: the measured per-token error of the full-rate reconstruction (gain2's scores,
  one decoder pass);
- `+ residual (2 passes)`: shipped + log of the per-token error left after keeping the top r by
  the shipped scores (one more compressor and decoder pass: what the tokens the first keep misses
  cost);
- `+ W x infill head`: shipped + W x a one-pass head (the latent router head's architecture, its
  input the bounded latent and the pixel detail) trained on --train-clips clips of the router
  stage's recipe to predict that residual at r = 1/8: can one pass learn it?
- `covering keep C`: the keep `fitted` uses where its fit chooses weight C
  (`tokenizer.adaptive.coverage`: shipped + C x log(1 + the distance to the shipped keep)): no
  model pass, it spreads the keep where the decompressor has nothing near to infer from.
Clips are other videos of each set's kinds (`fit_seed`), not the sets' own evaluation clips.
Printed: mean PSNR of `shipped`, then each rule minus it, per set and rate.

    python benchmarks/bench_low_budget_tokens.py [--checkpoint CKPT] [--sets mixed,unseen,procedural]
        [--clips 16] [--train-clips 512] [--steps 1500] [--rates 0.0625,0.125,0.1875,0.25,0.375] [--no-infill]
        [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from tokenizer.adaptive.clip_descriptors import describe_clip
from tokenizer.adaptive.coverage import covering_keep
from tokenizer.adaptive.latent_router import LatentRouterHead
from tokenizer.adaptive.router import budget_tokens, token_scores, top_n_mask
from tokenizer.checkpoint import load_tokenizer
from tokenizer.eval.heldout import fit_seed, heldout_set
from tokenizer.train.router_stage import procedural_router_clips
from tokenizer.video import frames_to_tensor, psnr

INFILL_RATE = 0.125
EPS = 1e-3


class Rules:
    """The model's passes that the rules share, for one batch of clips."""

    def __init__(self, model: torch.nn.Module, video: torch.Tensor) -> None:
        self.model, self.video = model, video
        self.encoding = model.base.encode(video)
        self.bounded = model.bounded_latent(self.encoding.latent)
        self.detail = describe_clip(video, self.bounded).detail.float()
        self.head = model.latent_head(self.bounded)
        self.shipped = self.head + float(model.latent_head.detail_weight) * self.detail
        self.n_pos = self.shipped[0].numel()

    def keep(self, scores: torch.Tensor, rate: float) -> torch.Tensor:
        return top_n_mask(scores, budget_tokens(torch.full((scores.shape[0],), rate), self.n_pos))

    def reconstruct(self, keep: torch.Tensor) -> torch.Tensor:
        return self.model(self.video, keep, encoding=self.encoding).reconstruction.clamp(-1, 1)

    def residual(self, rate: float) -> torch.Tensor:
        """log per-token error after keeping the top `rate` by the shipped scores (B, t, h, w)."""
        return torch.log(token_scores(self.reconstruct(self.keep(self.shipped, rate)), self.video) + EPS)

    def infill_input(self) -> torch.Tensor:
        return torch.cat([self.bounded, self.detail.unsqueeze(-1) / 4], dim=-1)


@torch.no_grad()
def infill_targets(model: torch.nn.Module, clips: np.ndarray, batch: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    inputs, targets = [], []
    for i in range(0, len(clips), batch):
        r = Rules(model, frames_to_tensor(clips[i : i + batch]))
        inputs.append(r.infill_input())
        targets.append(r.residual(INFILL_RATE))
    return torch.cat(inputs), torch.cat(targets)


def train_infill_head(inputs: torch.Tensor, targets: torch.Tensor, steps: int, seed: int = 0) -> LatentRouterHead:
    torch.manual_seed(seed)
    head = LatentRouterHead(inputs.shape[-1])
    opt = torch.optim.AdamW(head.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed + 1)
    for _ in range(steps):
        idx = torch.randint(0, len(inputs), (32,), generator=gen)
        loss = (head(inputs[idx]) - targets[idx]).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        mse = float((head(inputs[:256]) - targets[:256]).pow(2).mean())
    print(f"infill head: training MSE {mse:.3f} against the target's variance {float(targets.var()):.3f}")
    return head.eval()


@torch.no_grad()
def run_set(model: torch.nn.Module, infill: LatentRouterHead | None, name: str, clips: int, rates: list[float],
            weights: tuple[float, ...] = (0.5, 1.0), coverages: tuple[float, ...] = (0.5, 1.0),
            batch: int = 4) -> dict[str, dict[float, float]]:
    x = frames_to_tensor(np.stack([c.frames for c in heldout_set(name, clips, 17, 128, 128, seed=fit_seed(name))]))
    got: dict[str, dict[float, list[torch.Tensor]]] = {}
    for i in range(0, len(x), batch):
        r = Rules(model, x[i : i + batch])
        full = token_scores(model.base.decode(r.encoding.codes), r.video)
        learnt = infill(r.infill_input()) if infill is not None else None
        for rate in rates:
            rules = {"shipped": r.shipped, "head only": r.head, "full-rate error": full,
                     "+ residual (2 passes)": r.shipped + r.residual(rate)}
            if learnt is not None:
                rules.update({f"+ {w:g} x infill head": r.shipped + w * learnt for w in weights})
            n_keep = budget_tokens(torch.full((r.video.shape[0],), rate), r.n_pos)
            for c in coverages:
                keep = covering_keep(r.shipped, n_keep, c)
                got.setdefault(f"covering keep {c:g}", {}).setdefault(rate, []).append(psnr(r.reconstruct(keep), r.video))
            for rule, scores in rules.items():
                got.setdefault(rule, {}).setdefault(rate, []).append(psnr(r.reconstruct(r.keep(scores, rate)), r.video))
    return {rule: {rate: float(torch.cat(v).mean()) for rate, v in by_rate.items()} for rule, by_rate in got.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--sets", default="mixed,unseen,procedural")
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--train-clips", type=int, default=512)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--rates", default="0.0625,0.125,0.1875,0.25,0.375")
    ap.add_argument("--no-infill", action="store_true", help="skip the infill head (its training is most of the time)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_tokenizer(args.checkpoint).adaptive
    if model is None:
        raise SystemExit("bench_low_budget_tokens needs an adaptive checkpoint")
    model.check_router_ready("latent")
    rates = [float(r) for r in args.rates.split(",")]
    infill = None
    if not args.no_infill:
        t0 = time.perf_counter()
        clips = procedural_router_clips(0, args.train_clips, 17, 128)
        infill = train_infill_head(*infill_targets(model, clips), args.steps)
        print(f"infill head trained in {time.perf_counter() - t0:.0f} s")
    for name in args.sets.split(","):
        rows = run_set(model, infill, name, args.clips, rates)
        base = rows.pop("shipped")
        print(f"\n{name} ({args.clips} clips, other videos of its kinds): mean PSNR, each rule minus `shipped`")
        print("rule".ljust(24) + "".join(f"{r:>8.4g}" for r in rates))
        print("shipped (dB)".ljust(24) + "".join(f"{base[r]:8.2f}" for r in rates))
        for rule, row in rows.items():
            print(rule.ljust(24) + "".join(f"{row[r] - base[r]:+8.2f}" for r in rates))


if __name__ == "__main__":
    main()
