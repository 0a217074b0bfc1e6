from __future__ import annotations

import math

import pytest
import torch

from tokenizer.adaptive.modules import ADAPTIVE_PRESETS
from tokenizer.adaptive.model import AdaptiveTokenizer
from tokenizer.eval.baselines import apportion, elastic_search, equal_split, frame_counts, position_mask
from tokenizer.config import PRESETS
from tokenizer.nn.model import VideoTokenizer


def test_equal_split_and_apportion_keep_totals():
    assert equal_split(10, 3, 8) == [4, 3, 3]
    with pytest.raises(ValueError, match="cannot split 30 tokens over 3 clips of 8"):
        equal_split(30, 3, 8)
    for total, weights in [(10, [1, 1, 1]), (20, [100, 1, 1]), (24, [5, 3, 1]), (3, [9, 9, 9]), (17, [0, 0, 2])]:
        counts = apportion(total, [float(w) for w in weights], 8)
        assert sum(counts) == total and all(1 <= c <= 8 for c in counts), (total, weights, counts)
    assert apportion(20, [100.0, 1.0, 1.0], 8) == [8, 6, 6]  # capped clip hands its excess on
    assert apportion(12, [2.0, 1.0, 1.0], 100) == [6, 3, 3]


def test_position_masks_counts_and_layout():
    grid = (3, 2, 4)
    assert frame_counts(7, grid) == [3, 2, 2]
    n = [7, 1, 24]
    for method in ("raster", "jump", "random"):
        keep = position_mask(method, n, grid, seed=1)
        assert keep.shape == (3, 3, 2, 4) and keep.flatten(1).sum(1).tolist() == n
        assert keep[0].flatten(1).sum(1).tolist() == [3, 2, 2]  # spread over latent frames
    raster = position_mask("raster", [7], grid)[0].flatten(1)
    assert raster[0].tolist() == [True, True, True, False, False, False, False, False]
    jump = position_mask("jump", [6], grid)[0].flatten(1)
    assert jump[0].nonzero().flatten().tolist() == [0, 4]  # strided, not a prefix
    r1, r2 = position_mask("random", [6], grid, seed=1), position_mask("random", [6], grid, seed=2)
    assert torch.equal(r1, position_mask("random", [6], grid, seed=1)) and not torch.equal(r1, r2)
    with pytest.raises(ValueError, match="unknown position-only method 'topk'"):
        position_mask("topk", [1], grid)


def test_elastic_binary_search_bounds_and_pass_count():
    torch.manual_seed(0)
    m = AdaptiveTokenizer(VideoTokenizer(PRESETS["tiny"]), ADAPTIVE_PRESETS["tiny"]).eval()
    x = torch.rand(2, 3, 5, 16, 32) * 2 - 1
    enc = m.base.encode(x)
    n = 2 * 2 * 4
    easy = elastic_search(m, x, enc, threshold=10.0)  # any count meets it -> the fewest, 1
    assert easy.n_keep == [1, 1] and easy.probes == [math.ceil(math.log2(n))] * 2
    hard = elastic_search(m, x, enc, threshold=-1.0)  # nothing meets it -> the whole grid
    assert hard.n_keep == [n, n]
    with torch.no_grad():
        errs = []
        for k in range(1, n + 1):
            keep = position_mask("raster", [k, k], (2, 2, 4))
            errs.append((m(x, keep, encoding=enc).reconstruction.clamp(-1, 1) - x).abs().flatten(1).mean(1))
        errs = torch.stack(errs)  # (n, 2)
    thr = float(errs[:, 0].median())
    found = elastic_search(m, x, enc, threshold=thr)
    k = found.n_keep[0]
    assert errs[k - 1, 0] <= thr  # the count found meets the threshold
