"""The public decoder: stored (tokens, mask, grid) and generated (tokens, positions) clips decode to the
frames the model's own detokenize gives; rows of another tokenizer and malformed clips are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from schemas.mask import pack_mask
from tokenizer.api import load_clip_tokenizer
from tokenizer.detokenize import Detokenizer, TokenizerMismatchError, stored_clip, to_frames


@pytest.fixture(scope="module")
def detok() -> Detokenizer:
    return Detokenizer.from_checkpoint()  # the shipped checkpoint


@pytest.fixture(scope="module")
def clips() -> tuple[torch.Tensor, list]:
    torch.manual_seed(0)
    video = torch.rand(2, 3, 9, 32, 32) * 2 - 1  # (B, 3, T, H, W) in [-1, 1]
    return video, load_clip_tokenizer(None, router="gain").tokenize(video, beta=0.5)


def test_rows_decode_to_the_models_own_reconstruction(detok: Detokenizer, clips: tuple) -> None:
    from tokenizer.adaptive.tokens import AdaptiveTokens

    video, toks = clips
    rows = [{"tokens": t.tokens.tolist(), "mask": t.mask, "grid_t": t.grid[0], "grid_h": t.grid[1],
             "grid_w": t.grid[2]} for t in toks]
    assert all(t.rate < 1 for t in toks)  # the masks drop tokens: the masked path is exercised
    got = detok.decode_rows(rows, detok.tokenizer_id)
    want = detok.loaded.adaptive.detokenize([AdaptiveTokens(ids=t.tokens, mask=t.mask, grid=t.grid, info=t.info,
                                                            rate=t.rate, beta=0.5) for t in toks])
    assert len(got) == 2 and got[0].shape == (1, 3, 9, 32, 32)
    torch.testing.assert_close(torch.cat(got), want)
    frames = to_frames(got[0])
    assert frames.shape == (9, 32, 32, 3) and frames.dtype == np.uint8


def test_positions_in_any_order_give_the_masks_clip(detok: Detokenizer, clips: tuple) -> None:
    _, toks = clips
    t = toks[1]
    keep = stored_clip(t.tokens, t.grid, mask=t.mask).keep
    pos = np.argwhere(keep)  # (N, 3) raster order
    order = np.random.default_rng(0).permutation(len(pos))  # a model may emit them in any order
    a = detok.decode(t.tokens, t.grid, mask=t.mask)
    b = detok.decode(t.tokens[order], t.grid, positions=pos[order])
    torch.testing.assert_close(a, b)


def test_a_row_of_another_tokenizer_is_refused(detok: Detokenizer, clips: tuple) -> None:
    _, toks = clips
    row = {"tokens": toks[0].tokens, "mask": toks[0].mask, "grid_t": 3, "grid_h": 4, "grid_w": 4}
    with pytest.raises(TokenizerMismatchError, match="tokenizer 'other-tok'"):
        detok.decode_rows([row], "other-tok")


def test_malformed_clips_are_refused_naming_the_value() -> None:
    grid = (3, 4, 4)
    full = pack_mask(np.ones(grid, dtype=bool))
    with pytest.raises(ValueError, match="mask keeps 48 positions but there are 5 tokens"):
        stored_clip(np.zeros(5), grid, mask=full)
    with pytest.raises(ValueError, match="mask has 2 bytes"):
        stored_clip(np.zeros(5), grid, mask=b"\x00\x01")
    with pytest.raises(ValueError, match="inside the grid"):
        stored_clip(np.zeros(1), grid, positions=[[3, 0, 0]])
    with pytest.raises(ValueError, match="more than once"):
        stored_clip(np.zeros(2), grid, positions=[[0, 0, 0], [0, 0, 0]])
    with pytest.raises(ValueError, match="needs 48 tokens"):
        stored_clip(np.zeros(5), grid)


def test_a_fixed_rate_checkpoint_decodes_full_grids_only(tmp_path) -> None:
    from tokenizer.checkpoint import save_tokenizer
    from tokenizer.config import preset
    from tokenizer.nn.model import VideoTokenizer

    torch.manual_seed(0)
    model = VideoTokenizer(preset("tiny")).eval()
    save_tokenizer(model, tmp_path / "fixed.safetensors")
    detok = Detokenizer.from_checkpoint(tmp_path / "fixed.safetensors")
    ids = np.random.default_rng(0).integers(0, 64000, (3, 4, 4))
    with torch.no_grad():
        want = model.decode_indices(torch.from_numpy(ids)[None])
    torch.testing.assert_close(detok.decode(ids.reshape(-1), (3, 4, 4)), want)
    half = np.zeros((3, 4, 4), bool)
    half[0] = True
    with pytest.raises(ValueError, match="decodes full grids only"):
        detok.decode(ids[0].reshape(-1), (3, 4, 4), mask=pack_mask(half))
