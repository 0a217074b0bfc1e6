from __future__ import annotations

import itertools

import pytest
import torch

from tokenizer.config import FSQ_LEVELS
from tokenizer.nn.fsq import FSQ


def test_codebook_size_and_uint16():
    fsq = FSQ(FSQ_LEVELS)
    assert fsq.codebook_size == 64000
    assert fsq.codebook_size <= 2**16


def test_every_index_round_trips_exactly():
    fsq = FSQ(FSQ_LEVELS)
    idx = torch.arange(fsq.codebook_size)
    codes = fsq.indices_to_codes(idx)
    assert codes.shape == (64000, 6)
    assert codes.min() >= -1 and codes.max() <= 1
    assert torch.equal(fsq.codes_to_indices(codes), idx)
    # all codes distinct
    assert torch.unique(codes, dim=0).shape[0] == 64000


def test_quantizer_output_is_on_the_grid_and_straight_through():
    fsq = FSQ(FSQ_LEVELS)
    # seeded, and within |z| < 7: the tanh bound's gradient rounds to zero in float32 past |z| ~ 9,
    # which an unseeded draw of 120 values at scale 3 reached depending on the tests run before it
    z = (torch.randn(4, 5, 6, generator=torch.Generator().manual_seed(0)) * 2).requires_grad_()
    codes = fsq(z)
    # every code value is one of the L levels of its channel
    for ch, level in enumerate(FSQ_LEVELS):
        allowed = (torch.arange(level) - level // 2) / (level // 2)
        assert torch.isin(codes[..., ch].detach(), allowed).all()
    # quantize(z) then index then code again is the identity
    assert torch.equal(fsq.indices_to_codes(fsq.codes_to_indices(codes)), codes.detach())
    codes.sum().backward()
    assert z.grad is not None and (z.grad.abs() > 0).all()


def test_all_levels_reachable():
    fsq = FSQ(FSQ_LEVELS)
    z = torch.linspace(-6, 6, 2001)[:, None].expand(-1, 6)
    codes = fsq(z)
    for ch, level in enumerate(FSQ_LEVELS):
        assert torch.unique(codes[:, ch]).numel() == level


def test_out_of_range_ids_rejected():
    fsq = FSQ(FSQ_LEVELS)
    with pytest.raises(ValueError, match="64000"):
        fsq.indices_to_codes(torch.tensor([64000]))
    with pytest.raises(ValueError, match="-1"):
        fsq.indices_to_codes(torch.tensor([-1]))


def test_small_levels_enumerate():
    fsq = FSQ((3, 4))
    seen = {int(fsq.codes_to_indices(fsq.indices_to_codes(torch.tensor(i)))) for i in range(12)}
    assert seen == set(range(12))
    assert len(list(itertools.product(range(3), range(4)))) == fsq.codebook_size
