"""A tiny causal LM trained under torchrun (gloo, CPU) over TokenDataLoader: the DDP loop a user
writes, run by tests/test_ddp.py. Logs, per rank, every step's sample numbers and padding flags.

    python -m torch.distributed.run --nproc-per-node 2 tests/ddp_lm.py DATASET OUT --tag a [--stop-after N]
    python tests/ddp_lm.py DATASET OUT --tag b --resume OUT/ckpt     # world size 1, no torchrun
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from pipeline.loader import LoaderConfig, TokenDataLoader, TokenDataset
from schemas.tokens import LM_VOCAB_SIZE, PAD_ID


class TinyLM(nn.Module):
    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(LM_VOCAB_SIZE, dim)
        self.block = nn.TransformerEncoderLayer(dim, nhead=2, dim_feedforward=2 * dim, batch_first=True)
        self.head = nn.Linear(dim, LM_VOCAB_SIZE)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids: (B, L) int64 -> logits (B, L, V)."""
        causal = nn.Transformer.generate_square_subsequent_mask(ids.shape[1])
        return self.head(self.block(self.embed(ids), src_mask=causal, is_causal=True))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--tag", required=True)
    ap.add_argument("--stop-after", type=int, default=0, help="save a checkpoint after this many steps and stop")
    ap.add_argument("--resume", default=None)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=2)
    args = ap.parse_args()
    distributed = "WORLD_SIZE" in os.environ
    if distributed:
        dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = TinyLM()
    ds = TokenDataset(args.data, LoaderConfig(mode="packed", seq_len=64, seed=0), num_workers=args.workers)
    loader = TokenDataLoader(ds, batch_size=args.batch_size)
    if args.resume:
        model.load_state_dict(load_file(str(Path(args.resume) / "model.safetensors")))
        loader.load_state_dict(json.loads((Path(args.resume) / "loader.json").read_text()))
    net = nn.parallel.DistributedDataParallel(model) if distributed else model
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    out = Path(args.out)
    log = open(out / f"seen-{args.tag}-rank{ds.rank}.jsonl", "w")
    steps = 0
    for batch in loader:
        ids = batch["input_ids"]
        logits = net(ids[:, :-1])
        target = ids[:, 1:].clone()
        target[batch["padding"]] = PAD_ID  # a padding repeat counts for nothing
        loss = F.cross_entropy(logits.reshape(-1, LM_VOCAB_SIZE), target.reshape(-1), ignore_index=PAD_ID,
                               reduction="sum") / max(1, int((target != PAD_ID).sum()))
        opt.zero_grad()
        loss.backward()  # DDP all-reduces here: a rank with a batch less would leave the other waiting
        opt.step()
        steps += 1
        log.write(json.dumps({"step": steps, "sample_index": batch["sample_index"].tolist(),
                              "padding": batch["padding"].tolist(), "loss": float(loss)}) + "\n")
        if steps == args.stop_after:
            if ds.rank == 0:
                ckpt = out / "ckpt"
                ckpt.mkdir(exist_ok=True)
                save_file(model.state_dict(), str(ckpt / "model.safetensors"))
                (ckpt / "loader.json").write_text(json.dumps(loader.state_dict()))
            break
    log.close()
    (out / f"steps-{args.tag}-rank{ds.rank}.json").write_text(json.dumps({"steps": steps, "world_size": ds.world_size}))
    if distributed:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
