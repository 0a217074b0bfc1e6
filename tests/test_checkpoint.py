from __future__ import annotations

import json

import pytest
import torch

from tokenizer.checkpoint import CheckpointError, load_tokenizer, read_header, save_tokenizer
from tokenizer.config import PRESETS, TokenizerConfig
from tokenizer.nn.model import VideoTokenizer


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(0)
    model = VideoTokenizer(PRESETS["tiny"])
    path = tmp_path / "tok.safetensors"
    tid = save_tokenizer(model, path, info={"note": "test"})
    return model, path, tid


def test_round_trip_bit_exact(saved):
    model, path, tid = saved
    loaded = load_tokenizer(path)
    assert loaded.tokenizer_id == tid and tid.startswith("tiny-")
    assert loaded.info == {"note": "test"}
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.model.state_dict()[k]), k
    x = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model.eval()(x).reconstruction, loaded.model(x).reconstruction)


def test_checkpoint_file_mode_follows_the_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        save_tokenizer(VideoTokenizer(PRESETS["tiny"]), tmp_path / "shared.safetensors")
    finally:
        os.umask(old)
    assert (tmp_path / "shared.safetensors").stat().st_mode & 0o777 == 0o644  # others can read it


def test_id_is_content_hash(saved, tmp_path):
    model, path, tid = saved
    assert save_tokenizer(model, tmp_path / "again.safetensors") == tid
    with torch.no_grad():
        next(model.parameters()).add_(1e-3)
    assert save_tokenizer(model, tmp_path / "changed.safetensors") != tid


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="nope.safetensors does not exist"):
        load_tokenizer(tmp_path / "nope.safetensors")


def test_truncated_file(saved, tmp_path):
    _, path, _ = saved
    data = path.read_bytes()
    bad = tmp_path / "truncated.safetensors"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.safetensors.*(truncated|corrupt|not a readable)"):
        load_tokenizer(bad)


def test_not_a_checkpoint(tmp_path):
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(other))
    with pytest.raises(CheckpointError, match="other.safetensors is not an infotok tokenizer checkpoint"):
        load_tokenizer(other)
    text = tmp_path / "notes.safetensors"
    text.write_text("hello, not weights")
    with pytest.raises(CheckpointError, match="notes.safetensors is not a readable safetensors file"):
        load_tokenizer(text)


def test_wrong_preset(saved):
    _, path, _ = saved
    with pytest.raises(CheckpointError, match="is preset 'tiny', expected 'base'"):
        load_tokenizer(path, expect_preset="base")


def test_config_and_weights_disagree(tmp_path):
    from safetensors.torch import save_file

    model = VideoTokenizer(PRESETS["tiny"])
    wide = TokenizerConfig(base_channels=32)
    path = tmp_path / "mismatch.safetensors"
    meta = {"format": "infotok-tokenizer", "format_version": "1", "config": json.dumps(wide.to_dict()),
            "tokenizer_id": "x", "info": "{}"}
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match="mismatch.safetensors: tensor .* has shape"):
        load_tokenizer(path)


def test_modified_weights_detected(saved, tmp_path):
    from safetensors.torch import load_file, save_file

    _, path, _ = saved
    state = load_file(str(path))
    name = sorted(state)[0]
    state[name] = state[name] + 1
    tampered = tmp_path / "tampered.safetensors"
    save_file(state, str(tampered), metadata=read_header(path))
    with pytest.raises(CheckpointError, match="do not match the recorded tokenizer_id"):
        load_tokenizer(tampered)


def test_half_precision_export(tmp_path):
    model = VideoTokenizer(PRESETS["tiny"])
    path = tmp_path / "half.safetensors"
    save_tokenizer(model, path, dtype=torch.float16)
    loaded = load_tokenizer(path)
    p = next(loaded.model.parameters())
    assert p.dtype == torch.float32
    assert path.stat().st_size < 0.6 * sum(v.numel() * 4 for v in model.state_dict().values())
