"""The covering keep: distances to the kept tokens, the same count spread out, weight 0 is the
plain top n, the fitted router's per-corpus choice of its weight, recorded and routed by."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tokenizer.adaptive.coverage import COVERAGE_CHOICES, covering_keep, distance_to_kept
from tokenizer.adaptive.curve_fit import CorpusFit
from tokenizer.adaptive.fitting import fit_router
from tokenizer.adaptive.router import top_n_mask
from tokenizer.adaptive.routers.fitted import choose_coverage
from tokenizer.adaptive.routers.registry import get_router
from tokenizer.checkpoint import load_tokenizer
from tokenizer.data.procedural import heldout_clips
from tokenizer.video import frames_to_tensor


def test_distance_to_the_nearest_kept_token_of_the_same_frame():
    keep = torch.zeros(1, 2, 5, 7, dtype=torch.bool)
    keep[0, 0, 2, 1] = True  # frame 1 keeps nothing
    d = distance_to_kept(keep, cap=4)
    yy, xx = torch.meshgrid(torch.arange(5), torch.arange(7), indexing="ij")
    want = torch.maximum((yy - 2).abs(), (xx - 1).abs()).clamp(max=4).float()
    assert torch.equal(d[0, 0], want)
    assert torch.equal(d[0, 1], torch.full((5, 7), 4.0))
    with pytest.raises(ValueError, match="keep must be bool"):
        distance_to_kept(keep.float())


def test_the_covering_keep_spreads_the_same_count_and_weight_0_is_the_top_n():
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(3, 2, 8, 8, generator=g) * 0.1
    scores[:, :, :3, :3] += 1.0  # a cluster of high scores in one corner of every frame
    n = torch.tensor([6, 18, 40])
    plain = top_n_mask(scores, n)
    assert torch.equal(covering_keep(scores, n, 0.0), plain)
    spread = covering_keep(scores, n, 1.0)
    assert torch.equal(spread.flatten(1).sum(1), n)  # the same count per clip
    far = distance_to_kept(plain)
    assert torch.equal(spread, top_n_mask(scores + torch.log1p(far), n))
    # the plain keep sits in the corner; the covering one leaves it for where nothing was near
    corner = torch.zeros_like(plain)
    corner[:, :, :3, :3] = True
    assert bool(((spread & corner).flatten(1).sum(1) < (plain & corner).flatten(1).sum(1)).all())


def test_the_weight_with_the_best_mean_probe_is_chosen_and_ties_go_to_the_plain_keep():
    a = {0.0: torch.tensor([[20.0, 22.0]]), 1.0: torch.tensor([[20.5, 22.1]])}
    b = {0.0: torch.tensor([[18.0, 19.0], [17.0, 18.0]]), 1.0: torch.tensor([[17.9, 19.0], [17.0, 18.1]])}
    assert choose_coverage([a, b]) == 1.0  # +0.6 dB against -0.1 + 0.1 over the clips
    b[1.0] = b[1.0] - 1.0
    assert choose_coverage([a, b]) == 0.0
    assert choose_coverage([{0.0: torch.ones(1, 2), 1.0: torch.ones(1, 2)}]) == 0.0
    with pytest.raises(ValueError, match="at least one clip"):
        choose_coverage([])


def test_a_fit_records_its_weight_routes_by_it_and_reads_an_older_record_as_the_plain_keep():
    m = load_tokenizer(None).adaptive
    clips = [c for _, c in heldout_clips(8, 5, 32, 32)]
    fit = fit_router(m, "fitted", clips, batch_size=4)
    assert fit.coverage in COVERAGE_CHOICES and f"covering keep {fit.coverage:g}" in fit.describe()
    again = CorpusFit.from_dict(json.loads(json.dumps(fit.to_dict())))
    assert again.coverage == fit.coverage
    older = fit.to_dict()
    older.pop("coverage", None)
    assert CorpusFit.from_dict(older).coverage == 0.0
    with pytest.raises(ValueError, match="coverage weight must be a finite number >= 0"):
        CorpusFit.from_dict({**older, "coverage": -1.0})

    forced = CorpusFit.from_dict({**older, "coverage": 1.0})
    get_router("fitted").use_fit(m, forced)
    video = frames_to_tensor(np.stack(clips[:4]))
    routed = m.route(video, 0.25, router="fitted")
    scored = m.score(video, "fitted")
    assert scored.coverage == 1.0
    assert torch.equal(routed.keep, covering_keep(scored.scores, routed.n_keep, 1.0))
    assert torch.equal(routed.keep.flatten(1).sum(1), routed.n_keep)
