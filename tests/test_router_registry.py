"""A router is one class and one registry call: a toy router, registered here, tokenizes, budgets,
is offered by the checks that take a router name, and is gone once unregistered."""

from __future__ import annotations

import pytest
import torch
from model_helpers import small_adaptive_model

from tokenizer.adaptive.model import AdaptiveTokenizer
from tokenizer.adaptive.routers.base import Router, Scored
from tokenizer.adaptive.routers.registry import (
    check_router_name,
    get_router,
    register_router,
    router_names,
    unregister_router,
)
from tokenizer.nn.model import Encoding


class FirstTokensRouter(Router):
    """Keeps the first tokens in raster order; every clip's signal is 1 and E[signal] is 1, so a
    clip's rate is beta (clipped to [1/16, 1]) by the shared formula."""

    name = "first"
    signal_name = "E[1]"
    how_to_set = "nothing to set"

    def score(self, model: AdaptiveTokenizer, video: torch.Tensor, encoding: Encoding) -> Scored:
        b, t, h, w = encoding.indices.shape
        scores = -torch.arange(t * h * w, dtype=torch.float32).reshape(1, t, h, w).expand(b, -1, -1, -1)
        return Scored(encoding=encoding, scores=scores, signal=torch.ones(b), router=self.name)

    def passes(self, model: AdaptiveTokenizer) -> tuple[float, float, float]:
        return (1, 0, 1)

    def mean_signal(self, model: AdaptiveTokenizer) -> float:
        return 1.0

    def signal_count(self, model: AdaptiveTokenizer) -> int:
        return 0


@pytest.fixture
def first_router():
    router = register_router(FirstTokensRouter())
    yield router
    unregister_router(router.name)


def test_a_registered_router_tokenizes_and_budgets(first_router):
    from pipeline.tokenize.step import TokenizeConfig
    from tokenizer.api import AdaptiveClipTokenizer
    from tokenizer.eval.rate_distortion import RDConfig

    assert router_names()[-1] == "first" and get_router("first") is first_router
    m = small_adaptive_model()
    x = torch.rand(2, 3, 5, 16, 16) * 2 - 1  # latent grid (2, 2, 2): 8 positions
    scored = m.score(x, "first")
    assert m.budget(scored, torch.tensor([0.5, 0.25])).tolist() == [0.5, 0.25]
    assert m.budget(scored, torch.tensor([0.01, 1.0])).tolist() == [1 / 16, 1.0]  # the shared clipping
    routing = m.route(x, 0.5, router="first")
    assert routing.router == "first" and routing.n_keep.tolist() == [4, 4]
    assert routing.keep.flatten(1)[:, :4].all() and not routing.keep.flatten(1)[:, 4:].any()
    tokens = m.tokenize(x, 0.5, router="first")
    assert [t.n_tokens for t in tokens] == [4, 4] and [t.rate for t in tokens] == [0.5, 0.5]
    assert m.detokenize(tokens).shape == x.shape
    assert m.mean_signal("first") == 1.0
    # the name checks of the job, the API and eval accept it
    assert TokenizeConfig(router="first").router == "first"
    assert AdaptiveClipTokenizer(m, "test-tok", router="first").router == "first"
    assert RDConfig(methods=("first", "fixed")).reference == "first"
    with pytest.raises(ValueError, match="already registered"):
        register_router(FirstTokensRouter())


def test_an_unregistered_router_is_unknown():
    with pytest.raises(ValueError, match="unknown router 'first'; choose from elbo, gain, gain2, latent, fitted"):
        check_router_name("first")
    assert router_names() == ("elbo", "gain", "gain2", "latent", "fitted")


def test_summaries_name_what_set_the_budgets():
    from tokenizer.adaptive.routers.registry import get_router

    assert get_router("gain").budget_basis(1.9275) == "E[s] 1.9275"
    # gain2's recorded E[s] is its curves' mean slope, not gain's E[s]: it is not printed as one
    assert get_router("gain2").budget_basis(1.83095) == "its calibration curves"
    # with a per-corpus fit, what sets them is the fit (beta: the mean kept rate on its sample)
    assert get_router("gain2").budget_basis(1.83095, 64) == "its per-corpus fit (64 clips)"
    assert get_router("fitted").budget_basis(0.5, 32) == "its per-corpus fit (32 clips)"
