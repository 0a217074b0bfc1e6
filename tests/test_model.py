from __future__ import annotations

import pytest
import torch

from tokenizer.config import PRESETS, TokenizerConfig, preset
from tokenizer.nn.layers import causal_patchify, causal_unpatchify
from tokenizer.nn.model import VideoTokenizer, num_params


@pytest.fixture(scope="module")
def tiny() -> VideoTokenizer:
    torch.manual_seed(0)
    m = VideoTokenizer(PRESETS["tiny"]).eval()
    # zero-initialised residual branches would hide temporal mixing: randomise them
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return m


def test_patchify_round_trip_and_alignment():
    v = torch.randn(2, 3, 9, 16, 24)
    x = causal_patchify(v, 4)
    assert x.shape == (2, 3, 3 * 4 * 16, 4, 6)
    assert torch.equal(causal_unpatchify(x, 4), v)
    # latent frame 1 holds exactly pixel frames 1..4
    v2 = v.clone()
    v2[:, :, 5] += 1
    d = (causal_patchify(v2, 4) - x).abs().flatten(2).sum(-1)
    assert d[:, 0].sum() == 0 and d[:, 1].sum() == 0 and (d[:, 2] > 0).all()


@pytest.mark.parametrize("frames,grid_t", [(1, 1), (5, 2), (9, 3), (17, 5)])
def test_shapes(tiny, frames, grid_t):
    x = torch.rand(2, 3, frames, 32, 48) * 2 - 1
    with torch.no_grad():
        out = tiny(x)
    assert out.encoding.indices.shape == (2, grid_t, 4, 6)
    assert out.encoding.indices.dtype == torch.int64
    assert out.encoding.codes.shape == (2, grid_t, 4, 6, 6)
    assert out.reconstruction.shape == x.shape
    assert int(out.encoding.indices.max()) < 64000 and int(out.encoding.indices.min()) >= 0


def test_decode_indices_matches_forward(tiny):
    x = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    with torch.no_grad():
        out = tiny(x)
        rec = tiny.decode_indices(out.encoding.indices)
    assert torch.allclose(rec, out.reconstruction.clamp(-1, 1), atol=1e-5)


def test_causality(tiny):
    """Changing pixel frame j never changes latents (or reconstructions) of earlier latent frames."""
    torch.manual_seed(1)
    x = torch.rand(1, 3, 13, 32, 32) * 2 - 1
    with torch.no_grad():
        base = tiny.encode(x).latent
        for j in (1, 5, 9, 12):
            x2 = x.clone()
            x2[:, :, j] = torch.rand_like(x2[:, :, j]) * 2 - 1
            lat = tiny.encode(x2).latent
            first_affected = (j + 3) // 4  # latent frame holding pixel frame j
            assert torch.equal(lat[:, :first_affected], base[:, :first_affected]), j
            assert not torch.allclose(lat[:, first_affected], base[:, first_affected]), j


def test_image_is_a_one_frame_video(tiny):
    img = torch.rand(1, 3, 1, 32, 32) * 2 - 1
    vid = torch.cat([img, torch.rand(1, 3, 4, 32, 32) * 2 - 1], dim=2)
    with torch.no_grad():
        e_img = tiny.encode(img)
        e_vid = tiny.encode(vid)
    assert e_img.indices.shape == (1, 1, 4, 4)
    assert torch.equal(e_img.indices[:, 0], e_vid.indices[:, 0])


@pytest.mark.parametrize("shape", [(1, 3, 8, 32, 32), (1, 3, 9, 30, 32), (1, 1, 9, 32, 32), (3, 9, 32, 32)])
def test_bad_shapes_are_clear_errors(tiny, shape):
    with pytest.raises(ValueError, match="1 \\+ 4k|multiples of 8|\\(B, 3, T, H, W\\)"):
        tiny.encode(torch.zeros(shape))


def test_presets_build_and_base_runs_forward():
    tiny_n = num_params(VideoTokenizer(preset("tiny")))
    base = VideoTokenizer(preset("base")).eval()
    base_n = num_params(base)
    assert 1e6 < tiny_n < 5e6
    assert 80e6 < base_n < 130e6
    with torch.no_grad():
        out = base(torch.rand(1, 3, 5, 16, 16) * 2 - 1)
    assert out.reconstruction.shape == (1, 3, 5, 16, 16)
    assert out.encoding.indices.shape == (1, 2, 2, 2)


def test_config_validation():
    with pytest.raises(ValueError, match="must be 8"):
        TokenizerConfig(patch=2, channel_mult=(1, 2))
    with pytest.raises(ValueError, match="unknown TokenizerConfig keys"):
        TokenizerConfig.from_dict({"pach": 4})
    with pytest.raises(ValueError, match="unknown tokenizer preset 'huge'"):
        preset("huge")
    cfg = preset("base")
    assert TokenizerConfig.from_dict(cfg.to_dict()) == cfg
