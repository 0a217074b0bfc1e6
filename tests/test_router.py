from __future__ import annotations

import math

import pytest
import torch

from tokenizer.adaptive.router import (
    MIN_RATE,
    budget_tokens,
    check_beta,
    clip_information,
    token_scores,
    top_n_mask,
)
from tokenizer.adaptive.routers.registry import budget_rate


def test_budget_formula_and_clipping_at_both_ends():
    info = torch.tensor([0.001, 0.1, 0.2, 0.4, 10.0])
    rate = budget_rate(info, 0.5, mean_info=0.2)
    # beta * I / E[I] = 0.0025 (-> 1/16), 0.25, 0.5, 1.0, 25 (-> 1)
    assert rate.tolist() == pytest.approx([MIN_RATE, 0.25, 0.5, 1.0, 1.0])
    per_clip = budget_rate(info[:2], torch.tensor([1.0, 0.25]), mean_info=0.1)
    assert per_clip.tolist() == pytest.approx([MIN_RATE, 0.25])
    n = budget_tokens(rate, 48)
    assert n.tolist() == [3, 12, 24, 48, 48]  # round(48/16) = 3
    # round half up, never zero tokens, never more than the grid
    assert budget_tokens(torch.tensor([0.5 / 10, 0.25 / 10, 1.0]), 10).tolist() == [1, 1, 10]
    assert budget_tokens(torch.tensor([MIN_RATE]), 4).tolist() == [1]


@pytest.mark.parametrize("beta", [0.0, -0.5, 1.0001, 2, math.nan, math.inf])
def test_invalid_beta_is_a_clear_error(beta):
    with pytest.raises(ValueError, match=r"beta must be a finite number in \(0, 1\], got"):
        check_beta(beta)
    with pytest.raises(ValueError, match="beta must be"):
        budget_rate(torch.tensor([0.1]), beta, mean_info=0.1)
    with pytest.raises(ValueError, match="beta must be"):
        budget_rate(torch.tensor([0.1, 0.1]), torch.tensor([0.5, beta]), mean_info=0.1)


@pytest.mark.parametrize("mean_info", [0.0, -1.0, math.nan])
def test_uncalibrated_mean_info_refused(mean_info):
    with pytest.raises(ValueError, match="E\\[I\\].*calibrate"):
        budget_rate(torch.tensor([0.1]), 0.5, mean_info=mean_info)


def test_scores_follow_causal_frame_alignment():
    video = torch.zeros(1, 3, 9, 16, 24)
    recon = video.clone()
    recon[0, :, 0, 0:8, 8:16] = 0.6  # pixel frame 0 -> latent frame 0, block (0, 1)
    recon[0, 1, 5, 8:16, 16:24] = 0.3  # pixel frame 5 -> latent frame 2 (frames 5..8), block (1, 2)
    recon[0, :, 4, 8, 0] = 2.0  # clamped to 1: pixel frame 4 -> latent frame 1, block (1, 0)
    s = token_scores(recon, video)
    assert s.shape == (1, 3, 2, 3)
    expected = torch.zeros(1, 3, 2, 3)
    expected[0, 0, 0, 1] = 0.6
    expected[0, 2, 1, 2] = 0.3 / 3 / 4  # one channel of three, one frame of four
    expected[0, 1, 1, 0] = 1.0 / 64 / 4  # one pixel of 64, one frame of four, clamped error 1
    assert torch.allclose(s, expected, atol=1e-7)
    assert clip_information(s).item() == pytest.approx(float(expected.mean()))


def test_top_n_keeps_highest_scores_per_clip_with_stable_ties():
    scores = torch.tensor([[[[0.1, 0.9], [0.5, 0.5]]], [[[0.0, 0.0], [0.0, 0.0]]]])  # (2, 1, 2, 2)
    keep = top_n_mask(scores, torch.tensor([2, 3]))
    assert keep[0].flatten().tolist() == [False, True, True, False]  # 0.9, then the earlier 0.5
    assert keep[1].flatten().tolist() == [True, True, True, False]  # all tied: raster order
    assert keep.flatten(1).sum(1).tolist() == [2, 3]
