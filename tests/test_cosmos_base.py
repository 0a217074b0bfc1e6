"""A Cosmos DV base (two TorchScript files) under the InfoTok layer: `infotok train --stage adaptive
--base cosmos:E,D`, tokenize a small mp4 corpus with the checkpoint, `infotok decode` a row; the
interface checks' one-line errors; the base files' hashes in the checkpoint and its id.

The TorchScript pair is made here with the Cosmos DV4x8x8 interface (nothing is downloaded): a
strided Conv3d encoder on the causal 1 + 4k layout (frame 0 repeated to a group of four) with FSQ
rounding to levels 8,8,8,5,5,5, returning (indices, codes, latent); a transposed-conv decoder
from indices.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from pipeline_helpers import small_job
from torch import nn

from jobs.cli import main
from pipeline.decode.step import DecodeConfig
from pipeline.decode.video_write import write_video
from pipeline.io.dataset import DatasetDir
from pipeline.io.inputs import ManifestEntry, video_id_of
from pipeline.io.reader import DatasetReader
from pipeline.io.writer import write_manifest
from pipeline.tokenize.local import run_local_shard
from pipeline.tokenize.step import TokenizeConfig
from tokenizer.adaptive.model import AdaptiveTokenizer
from tokenizer.adaptive.modules import adaptive_preset
from tokenizer.base.checks import BaseInterfaceError
from tokenizer.base.cosmos import CosmosBase
from tokenizer.base.load import load_new_base
from tokenizer.base.spec import BASE_ENV
from tokenizer.checkpoint import CheckpointError, load_tokenizer, read_header, save_tokenizer
from tokenizer.data.procedural import make_clip
from tokenizer.detokenize import Detokenizer

pytestmark = pytest.mark.timeout(600)

LEVELS = (8, 8, 8, 5, 5, 5)


@pytest.fixture(autouse=True)
def _global_rng_untouched() -> object:
    """These tests seed torch; the tests after them draw from the global generator as they would have."""
    with torch.random.fork_rng():
        yield


def _fsq_tables() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    levels = torch.tensor(LEVELS)
    basis = torch.cumprod(torch.cat([torch.ones(1, dtype=torch.int64), levels[:-1]]), 0)
    return levels, levels // 2, basis


class CausalFSQEncoder(nn.Module):
    """video (B, 3, 1 + 4k, H, W) -> (indices (B, 1 + k, H/8, W/8) int64, codes (B, 6, ...), latent);
    `fault` breaks one interface rule."""

    def __init__(self, fault: str = "") -> None:
        super().__init__()
        self.fault = fault
        self.conv = nn.Conv3d(3, 6, kernel_size=(4, 8, 8), stride=(4, 8, 8))
        levels, half, basis = _fsq_tables()
        self.register_buffer("levels", levels)
        self.register_buffer("half_width", half)
        self.register_buffer("basis", basis)

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, ...]:
        first = video[:, :, :1]
        z = self.conv(torch.cat([first, first, first, video], dim=2))  # (B, 6, t, h, w)
        z = z.permute(0, 2, 3, 4, 1)  # (B, t, h, w, 6)
        lv = self.levels.to(z.dtype)
        half_l = (lv - 1) * (1 + 1e-3) / 2
        offset = (1 - self.levels % 2).to(z.dtype) * 0.5
        bounded = torch.tanh(z + torch.atanh(offset / half_l)) * half_l - offset
        k = torch.round(bounded).to(torch.int64) + self.half_width  # (B, t, h, w, 6) in [0, L)
        codes = (k - self.half_width).to(z.dtype) / self.half_width.to(z.dtype)
        codes = codes.permute(0, 4, 1, 2, 3)  # (B, 6, t, h, w)
        indices = (k * self.basis).sum(-1)  # (B, t, h, w)
        if self.fault == "two_items":
            return indices, codes
        if self.fault == "float_ids":
            indices = indices.to(torch.float32)
        if self.fault == "big_ids":
            indices = indices + 64000
        if self.fault == "channels":
            codes = codes[:, :5]
        if self.fault == "numbering":
            indices = 63999 - indices
        if self.fault == "grid":
            indices, codes = indices[:, 1:], codes[:, :, 1:]
        return indices, codes, z


class IndexDecoder(nn.Module):
    """indices (B, t, h, w) -> video (B, 3, 1 + 4(t - 1), 8h, 8w) in [-1, 1]."""

    def __init__(self, fault: str = "", seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.fault = fault
        self.deconv = nn.ConvTranspose3d(6, 3, kernel_size=(4, 8, 8), stride=(4, 8, 8))
        levels, half, basis = _fsq_tables()
        self.register_buffer("levels", levels)
        self.register_buffer("half_width", half)
        self.register_buffer("basis", basis)

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        k = (indices.unsqueeze(-1) // self.basis) % self.levels  # (B, t, h, w, 6)
        codes = (k - self.half_width).to(torch.float32) / self.half_width.to(torch.float32)
        video = torch.tanh(self.deconv(codes.permute(0, 4, 1, 2, 3)))  # (B, 3, 4t, H, W)
        return video if self.fault == "shape" else video[:, :, 3:]


def save_pair(folder: Path, enc_fault: str = "", dec_fault: str = "", seed: int = 0) -> tuple[Path, Path]:
    """Trace both modules and torch.jit.save them into folder; return (encoder, decoder) paths."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    encoder, decoder = CausalFSQEncoder(enc_fault).eval(), IndexDecoder(dec_fault, seed).eval()
    video = torch.rand(1, 3, 9, 16, 16) * 2 - 1
    with torch.no_grad():
        enc_jit = torch.jit.trace(encoder, video, check_trace=False)
        indices = CausalFSQEncoder()(video)[0]
        dec_jit = torch.jit.trace(decoder, indices, check_trace=False)
    enc_path, dec_path = folder / "encoder.jit", folder / "decoder.jit"
    torch.jit.save(enc_jit, str(enc_path))
    torch.jit.save(dec_jit, str(dec_path))
    return enc_path, dec_path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A Cosmos-style pair, an adaptive checkpoint trained on it through the CLI, and a two-video
    mp4 corpus tokenized with it at beta 0.5 (elbo router), written in-process."""
    with torch.random.fork_rng():  # module-scoped: outside the autouse fork
        return _train_and_tokenize(tmp_path_factory.mktemp("cosmos"))


def _train_and_tokenize(root: Path) -> dict[str, Path]:
    enc, dec = save_pair(root / "base")
    run = root / "run"
    res = CliRunner().invoke(main, ["train", "--stage", "adaptive", "--base", f"cosmos:{enc},{dec}", "--out", str(run),
                                    "--steps", "3", "--batch-size", "2", "--frames", "9", "--crop", "32",
                                    "--warmup-steps", "1", "--checkpoint-every", "3", "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    ckpt = run / "tokenizer.safetensors"
    videos = []
    for i, kind in enumerate(("photo", "shapes")):
        clip = make_clip(np.random.default_rng([5, i]), 18, 32, 32, kind, heldout=True)
        videos.append(write_video(root / f"{i}_{kind}.mp4", clip, fps=12))
    job = small_job(str(root), str(root / "ds"), str(ckpt), beta=0.5)
    job = dataclasses.replace(job, decode=DecodeConfig(resolution=(32, 32), clip_frames=9),
                              tokenize=TokenizeConfig(checkpoint=str(ckpt), beta=0.5, router="elbo", batch_size=2,
                                                      device="cpu"))
    entries = [ManifestEntry(uri=str(v), size=v.stat().st_size, version="1", video_id=video_id_of(str(v)))
               for v in videos]
    run_local_shard(job, 0, entries)
    write_manifest(DatasetDir(job.output), job.to_dict())
    return {"encoder": enc, "decoder": dec, "checkpoint": ckpt, "dataset": root / "ds", "video": videos[0],
            "root": root}


def test_train_records_the_base_and_the_checkpoint_reloads(trained: dict[str, Path]) -> None:
    meta = read_header(trained["checkpoint"])
    assert meta["format_version"] == "3" and "config" not in meta
    base = json.loads(meta["base"])
    assert base["kind"] == "cosmos" and base["encoder"] == str(trained["encoder"].resolve())
    assert len(base["encoder_sha256"]) == 64 and base["decoder_sha256"] != base["encoder_sha256"]
    assert meta["tokenizer_id"].startswith("cosmos-adaptive-")
    loaded = load_tokenizer(trained["checkpoint"])
    assert loaded.tokenizer_id == meta["tokenizer_id"] and isinstance(loaded.model, CosmosBase)
    assert loaded.adaptive is not None and loaded.adaptive.mean_signal("elbo") > 0  # E[I] from the stage
    assert not loaded.adaptive.base.differentiable_decoder
    from safetensors import safe_open

    with safe_open(str(trained["checkpoint"]), framework="pt") as f:  # no base weights stored
        assert all(k.startswith("adaptive.") for k in f.keys())


def test_tokenize_then_decode_a_row(trained: dict[str, Path], tmp_path: Path) -> None:
    reader = DatasetReader(str(trained["dataset"]))
    assert reader.manifest.tokenizer_id == read_header(trained["checkpoint"])["tokenizer_id"]
    rows = [r for p in reader.parts for r in reader.read_part(p.shard).to_pylist()]
    assert rows and all(r["grid_t"] == 3 and r["grid_h"] == 4 and r["grid_w"] == 4 for r in rows)
    assert all(0 < r["n_tokens"] <= 48 for r in rows) and all(max(r["tokens"]) < 64000 for r in rows)
    out = tmp_path / "clip.mp4"
    res = CliRunner().invoke(main, ["decode", str(trained["dataset"]), "--video-id", trained["video"].name,
                                    "--clip", "0", "--out", str(out), "--checkpoint", str(trained["checkpoint"]),
                                    "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["psnr"] is not None and np.isfinite(doc["psnr"]) and out.stat().st_size > 0


def test_adaptive_decode_quantizes_the_decompressed_codes(trained: dict[str, Path]) -> None:
    model = load_tokenizer(trained["checkpoint"]).adaptive
    x = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    enc = model.base.encode(x)
    assert torch.equal(enc.latent, enc.codes) and enc.indices.shape == (1, 3, 4, 4)
    assert torch.equal(model.base.fsq.codes_to_indices(enc.codes), enc.indices)  # the same id numbering
    assert torch.equal(model.base.quantize(enc.codes), enc.indices)
    keep = model.route(x, 0.5, router="elbo").keep
    pred, target = model.forward_codes(keep, enc)
    assert pred.shape == target.shape == enc.codes.shape
    # the decompressor's codes go to the decoder as the nearest codes' indices
    dec = model.decompressor(model.compress(enc.latent, keep)[0], keep)
    expected = model.base.decode_indices(model.base.quantize(dec))
    assert torch.allclose(model(x, keep, encoding=enc).reconstruction.clamp(-1, 1), expected)


def test_the_base_is_found_where_the_user_says_and_a_changed_file_is_refused(trained: dict[str, Path],
                                                                             tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    tid = read_header(trained["checkpoint"])["tokenizer_id"]
    moved = tmp_path / "moved"
    moved.mkdir()
    enc, dec = shutil.copy(trained["encoder"], moved), shutil.copy(trained["decoder"], moved)
    monkeypatch.setenv(BASE_ENV, f"cosmos:{enc},{dec}")
    assert load_tokenizer(trained["checkpoint"]).tokenizer_id == tid
    assert Detokenizer.from_checkpoint(trained["checkpoint"]).tokenizer_id == tid
    monkeypatch.delenv(BASE_ENV)

    _, other_dec = save_pair(tmp_path / "other", seed=1)  # same interface, other weights
    with pytest.raises(CheckpointError) as err:
        load_tokenizer(trained["checkpoint"], base=f"cosmos:{enc},{other_dec}")
    msg = str(err.value)
    recorded = json.loads(read_header(trained["checkpoint"])["base"])["decoder_sha256"]
    assert "\n" not in msg and str(other_dec) in msg and recorded in msg and "differs" in msg
    with pytest.raises(CheckpointError, match="not found"):
        load_tokenizer(trained["checkpoint"], base=f"cosmos:{enc},{tmp_path / 'nowhere.jit'}")


def test_the_tokenizer_id_changes_with_the_base_files(tmp_path: Path) -> None:
    a = load_new_base("cosmos:{},{}".format(*save_pair(tmp_path / "a", seed=0)))
    b = load_new_base("cosmos:{},{}".format(*save_pair(tmp_path / "b", seed=1)))
    model_a = AdaptiveTokenizer(a, adaptive_preset("tiny"))
    model_b = AdaptiveTokenizer(b, adaptive_preset("tiny"))
    model_b.load_state_dict(model_a.state_dict(), strict=False)  # the same adaptive layer
    id_a = save_tokenizer(model_a, tmp_path / "a.safetensors")
    id_b = save_tokenizer(model_b, tmp_path / "b.safetensors")
    assert id_a.startswith("cosmos-adaptive-") and id_a != id_b
    model_a.base.external = dataclasses.replace(a.external, encoder="/elsewhere/e.jit", decoder="/elsewhere/d.jit")
    assert save_tokenizer(model_a, tmp_path / "a2.safetensors") == id_a  # the paths are not the identity


@pytest.mark.parametrize(("enc_fault", "dec_fault", "expect"), [
    ("two_items", "", "must return a tuple of >= 3 items"),
    ("float_ids", "", "indices (item 0) must be (B, t, h, w) integers"),
    ("big_ids", "", "indices must lie in [0, 64000)"),
    ("channels", "", "codes (item 1) must be (B, 6, t, h, w)"),
    ("grid", "", "must give the grid (B, t, h, w) = (1, 3, 2, 2)"),
    ("", "shape", "must decode to (B, 3, T, H, W) = (1, 3, 9, 16, 16)"),
    ("numbering", "", "its codes (item 1) do not give its indices (item 0)"),
])
def test_interface_rules_fail_in_one_line_naming_the_file(tmp_path: Path, enc_fault: str, dec_fault: str,
                                                          expect: str) -> None:
    enc, dec = save_pair(tmp_path, enc_fault, dec_fault)
    with pytest.raises(BaseInterfaceError) as err:
        load_new_base(f"cosmos:{enc},{dec}")
    msg = str(err.value)
    assert expect in msg and "\n" not in msg
    assert str(dec if dec_fault else enc) in msg


def test_a_file_that_is_not_torchscript_fails_in_one_line(tmp_path: Path) -> None:
    enc, dec = save_pair(tmp_path)
    enc.write_bytes(b"not a TorchScript archive" * 10)
    res = CliRunner().invoke(main, ["train", "--stage", "adaptive", "--base", f"cosmos:{enc},{dec}",
                                    "--out", str(tmp_path / "run"), "--steps", "1", "--device", "cpu"])
    assert res.exit_code != 0
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and str(enc) in lines[0] and "not a readable TorchScript file" in lines[0], res.output
    with pytest.raises(BaseInterfaceError, match="no such file"):
        load_new_base(f"cosmos:{tmp_path / 'missing.jit'},{dec}")


def test_base_needs_the_adaptive_stage_and_no_init(tmp_path: Path) -> None:
    enc, dec = save_pair(tmp_path)
    res = CliRunner().invoke(main, ["train", "--base", f"cosmos:{enc},{dec}", "--out", str(tmp_path / "r")])
    assert res.exit_code != 0 and "--stage adaptive" in res.output
    res = CliRunner().invoke(main, ["train", "--stage", "adaptive", "--base", f"cosmos:{enc},{dec}", "--init",
                                    "x.safetensors", "--out", str(tmp_path / "r")])
    assert res.exit_code != 0 and "leave init unset" in res.output
