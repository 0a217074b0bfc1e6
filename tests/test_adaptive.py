from __future__ import annotations

import pytest
import torch

from tokenizer.adaptive.attention import block_causal_mask
from tokenizer.adaptive.modules import ADAPTIVE_PRESETS, AdaptiveConfig
from tokenizer.adaptive.model import AdaptiveTokenizer
from tokenizer.adaptive.tokens import AdaptiveTokens
from tokenizer.config import PRESETS
from tokenizer.nn.model import VideoTokenizer, num_params


def _model(seed: int = 0, trained_like: bool = False, cfg: AdaptiveConfig = ADAPTIVE_PRESETS["tiny"]
           ) -> AdaptiveTokenizer:
    torch.manual_seed(seed)
    m = AdaptiveTokenizer(VideoTokenizer(PRESETS["tiny"]), cfg).eval()
    if trained_like:  # zero-init output projections would hide bugs in the adaptive path
        with torch.no_grad():
            for net in (m.compressor.net, m.decompressor.net):
                net.out.weight.normal_(0, 0.05)
    m.set_mean_info(0.25, 1)
    return m


def _video(b: int = 2, t: int = 5, h: int = 16, w: int = 24, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, t, h, w, generator=g) * 2 - 1


def test_config_presets_and_overhead():
    with pytest.raises(ValueError, match="unknown AdaptiveConfig keys"):
        AdaptiveConfig.from_dict({"dims": 3})
    with pytest.raises(ValueError, match="dim / heads"):
        AdaptiveConfig(dim=60, heads=8)
    assert AdaptiveConfig.from_dict(ADAPTIVE_PRESETS["reference"].to_dict()) == ADAPTIVE_PRESETS["reference"]
    tiny = _model()
    assert 0.05 < tiny.param_overhead() <= 0.15
    ref = AdaptiveTokenizer(VideoTokenizer(PRESETS["tiny"]), ADAPTIVE_PRESETS["reference"])
    assert len(ref.compressor.net.blocks) == 8 and len(ref.decompressor.net.blocks) == 8
    assert ref.compressor.net.inp.out_features == 256
    assert 10e6 < num_params(ref.adaptive_modules()) < 15e6  # ~12% of the ~100M `base` preset


def test_keep_all_matches_fixed_rate_tokenizer():
    m = _model()
    x = _video()
    keep = torch.ones(2, 2, 2, 3, dtype=torch.bool)
    with torch.no_grad():
        ours = m(x, keep)
        base = m.base(x)
    # zero-initialised output projections: an untrained adaptive layer is exactly the base model
    assert torch.equal(ours.indices, base.encoding.indices)
    assert torch.allclose(ours.reconstruction, base.reconstruction, atol=1e-6)
    tokens = m.tokenize(x, 1.0, mean_info=1e-6)  # every clip at r = 1
    assert [t.n_tokens for t in tokens] == [12, 12]
    assert torch.allclose(m.detokenize(tokens), base.reconstruction.clamp(-1, 1), atol=1e-5)


def test_attention_is_block_causal_over_latent_frames():
    mask = block_causal_mask((3, 1, 2), torch.device("cpu"))
    assert mask[0].tolist() == [True, True, False, False, False, False]
    assert mask[5].all()
    m = _model(trained_like=True)
    x = _video(b=1, t=9)
    keep = torch.rand(1, 3, 2, 3, generator=torch.Generator().manual_seed(0)) < 0.5
    x2 = x.clone()
    x2[:, :, 5:] = -x2[:, :, 5:]  # change only pixel frames 5..8 = latent frame 2
    with torch.no_grad():
        a, b = m(x, keep), m(x2, keep)
    assert torch.equal(a.indices[:, :2], b.indices[:, :2])
    assert torch.allclose(a.reconstruction[:, :, :5], b.reconstruction[:, :, :5], atol=1e-5)
    assert not torch.allclose(a.reconstruction[:, :, 5:], b.reconstruction[:, :, 5:])


def test_dropped_positions_do_not_leak_into_tokens_but_reach_kept_ones():
    m = _model(trained_like=True)
    x = _video(b=1)
    keep = torch.zeros(1, 2, 2, 3, dtype=torch.bool)
    keep[0, :, 0, :] = True
    with torch.no_grad():
        out = m(x, keep)
        assert (out.codes[~keep] == 0).all()
        other = m(x, ~keep)
    assert not torch.equal(out.codes[keep], other.codes[keep])  # the compressor sees the mask


def test_batched_variable_budgets_and_round_trip():
    m = _model(trained_like=True)
    x = _video(b=3)
    tokens = m.tokenize(x, [1.0, 0.5, 0.1])
    n = [t.n_tokens for t in tokens]
    assert len(set(n)) > 1 and n == sorted(n, reverse=True)
    routing = m.route(x, [1.0, 0.5, 0.1])
    assert routing.n_keep.tolist() == n
    for tok, keep in zip(tokens, routing.keep):
        assert tok.keep_mask().tolist() == keep.tolist()
        assert tok.rate == pytest.approx(min(1.0, max(1 / 16, tok.beta * tok.info / 0.25)))
    wire = [AdaptiveTokens.from_bytes(t.to_bytes()) for t in tokens]
    batched = m.detokenize(wire)
    assert batched.shape == x.shape and batched.abs().max() <= 1
    for i, tok in enumerate(tokens):  # batching does not change any clip's reconstruction
        assert torch.allclose(m.detokenize(tok)[0], batched[i], atol=1e-5)
    with torch.no_grad():
        direct = m(x, routing.keep, encoding=routing.encoding).reconstruction.clamp(-1, 1)
    assert torch.allclose(direct, batched, atol=1e-4)


def test_tokenize_validates_inputs():
    m = _model()
    x = _video(b=2)
    for beta in (0.0, 1.5, float("nan"), -1.0):
        with pytest.raises(ValueError, match="beta must be a finite number"):
            m.tokenize(x, beta)
    with pytest.raises(ValueError, match="got 3 betas for a batch of 2"):
        m.tokenize(x, [0.5, 0.5, 0.5])
    fresh = AdaptiveTokenizer(VideoTokenizer(PRESETS["tiny"]), ADAPTIVE_PRESETS["tiny"])
    with pytest.raises(ValueError, match="E\\[I\\].*calibrate"):
        fresh.tokenize(x, 0.5)
    with pytest.raises(ValueError, match="frame count must be 1 \\+ 4k"):
        m.tokenize(_video(t=4), 0.5)
    a, b = m.tokenize(x, 0.5)[0], m.tokenize(_video(b=1, h=8), 0.5)[0]
    with pytest.raises(ValueError, match="share a grid"):
        m.detokenize([a, b])


def test_rope_is_a_rotation_of_each_pair_by_its_angle():
    from tokenizer.adaptive.modules import apply_rope, rope_rotation

    g = torch.Generator().manual_seed(0)
    x, angles = torch.randn(2, 3, 5, 8, generator=g), torch.rand(5, 4, generator=g) * 6
    x1, x2, cos, sin = x[..., 0::2], x[..., 1::2], angles.cos(), angles.sin()
    ref = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)
    assert torch.allclose(apply_rope(x, rope_rotation(angles)), ref, atol=1e-6)
    # a strided view (the q/k halves of one projection) and half precision take the same rotation
    both = torch.stack([x, x.flip(0)], dim=2).transpose(2, 3)[..., 0, :]
    assert torch.allclose(apply_rope(both, rope_rotation(angles)), ref, atol=1e-6)
    assert apply_rope(x.bfloat16(), rope_rotation(angles)).dtype == torch.bfloat16


@pytest.mark.parametrize("window", [(0, 0), (2, 1)])
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.6, 1.0])
def test_the_last_block_run_only_where_read_equals_the_full_pass_there(rate: float, window: tuple[int, int]):
    """The compressor's output is read only at kept positions: its last block computes queries and
    the MLP there alone, and must give those positions exactly what the full pass gives (whole-frame
    attention, and windows of 2 tokens with a halo of 1 over a 3x5 frame: tiles of uneven size)."""
    cfg = AdaptiveConfig(attention_window=window[0], attention_halo=window[1])
    m = _model(trained_like=True, cfg=cfg)
    net = m.compressor.net
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, 3, 5, m.base.fsq.dim, generator=g)
    keep = torch.rand(3, 4, 3, 5, generator=g) < rate
    keep[1] = keep[1] | (rate > 0)  # one clip keeps everything, one frame of another keeps nothing
    keep[2, 1] = False
    with torch.no_grad():
        full, pruned = net(x, keep), net(x, keep, needed=keep)
    assert torch.allclose(pruned[keep], full[keep], atol=1e-5)
    assert torch.isfinite(pruned).all()
    if 0 < rate < 1:  # elsewhere the last block did not run
        assert not torch.allclose(pruned[~keep], full[~keep], atol=1e-3)


def test_chunked_attention_equals_block_causal_mask():
    import torch.nn.functional as F

    from tokenizer.adaptive.attention import block_causal_attention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 4 * 6, 8, generator=g) for _ in range(3))
    mask = block_causal_mask((4, 2, 3), torch.device("cpu"))
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.allclose(block_causal_attention(q, k, v, 6), ref, atol=1e-6)


def _windowed_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grid: tuple[int, int, int],
                        window: int, halo: int) -> torch.Tensor:
    """Masked attention written from the definition: query (f, r, c) sees key (f', r', c') iff f' <= f
    and (r', c') lies within the query's tile widened by halo."""
    import torch.nn.functional as F

    from tokenizer.adaptive.attention import frame_tiles

    t, h, w = grid
    allowed = torch.zeros(h * w, h * w, dtype=torch.bool)
    for tile in frame_tiles(h, w, window, halo):
        queries = torch.zeros(h, w, dtype=torch.bool)
        queries[tile.rows, tile.cols] = True
        keys = torch.zeros(h, w, dtype=torch.bool)
        keys[tile.key_rows, tile.key_cols] = True
        allowed[queries.reshape(-1)] |= keys.reshape(-1)
    mask = block_causal_mask(grid, torch.device("cpu")) & allowed.repeat(t, t)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


@pytest.mark.parametrize("window,halo", [(3, 0), (3, 1), (2, 2), (4, 0)])
def test_windowed_attention_sees_its_tile_and_halo_in_frames_up_to_its_own(window: int, halo: int):
    from tokenizer.adaptive.attention import frame_tiles, windowed_attention, windowed_attention_at_rows

    grid = (3, 5, 7)  # 5 and 7 tokens: tiles of uneven size
    tiles = frame_tiles(5, 7, window, halo)
    assert all(1 <= s <= window for tile in tiles for s in tile.shape)
    assert sum(tile.shape[0] * tile.shape[1] for tile in tiles) == 35  # a partition of the frame
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 3 * 35, 8, generator=g) for _ in range(3))
    out = windowed_attention(q, k, v, grid, window, halo)
    assert torch.allclose(out, _windowed_reference(q, k, v, grid, window, halo), atol=1e-5)
    rows = (torch.rand(2 * 3 * 35, generator=g) < 0.4).nonzero().squeeze(1)  # clip * N + position
    some = windowed_attention_at_rows(q.transpose(1, 2).reshape(-1, 3, 8)[rows].transpose(0, 1), rows, k, v,
                                      grid, window, halo)  # (heads, M, hd)
    assert torch.allclose(some, out.transpose(1, 2).reshape(-1, 3, 8)[rows].transpose(0, 1), atol=1e-5)


def test_a_window_no_smaller_than_the_frame_is_whole_frame_attention():
    """The shipped `tiny` layer attends within 16x16 tiles and was trained on 16x16-token frames:
    there the window changes nothing, bit for bit."""
    tiled = _model(trained_like=True)
    assert tiled.config.attention_window == 16
    whole = AdaptiveTokenizer(tiled.base, AdaptiveConfig()).eval()
    whole.load_state_dict(tiled.state_dict())
    x, keep = _video(b=1, t=5, h=128, w=64), torch.rand(1, 2, 16, 8) < 0.5
    with torch.no_grad():
        assert torch.equal(tiled(x, keep).reconstruction, whole(x, keep).reconstruction)
        # past the window the frame splits into tiles, and a token no longer sees the others'
        y = _video(b=1, t=5, h=128, w=256)
        assert not torch.allclose(tiled(y, torch.ones(1, 2, 16, 32, dtype=torch.bool)).reconstruction,
                                  whole(y, torch.ones(1, 2, 16, 32, dtype=torch.bool)).reconstruction, atol=1e-4)


def test_attention_window_config_and_identity():
    with pytest.raises(ValueError, match="attention_halo 2 needs an attention_window"):
        AdaptiveConfig(attention_halo=2)
    with pytest.raises(ValueError, match="must be >= 0, got -1"):
        AdaptiveConfig(attention_window=-1)
    # a whole-frame layer hashes as before the field existed (the ids of older checkpoints hold)
    assert "attention_window" not in AdaptiveConfig().identity()
    assert ADAPTIVE_PRESETS["tiny"].identity()["attention_window"] == 16
    assert AdaptiveConfig.from_dict({k: v for k, v in AdaptiveConfig().to_dict().items()
                                     if not k.startswith("attention")}) == AdaptiveConfig()
