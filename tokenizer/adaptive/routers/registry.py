"""The routers by name: the only place that knows them. A dataset records its router's name
(`schemas.tokens.TokenFileMeta.router`); the CLI's --router offers `router_names()`.

Importing this module is cheap (no torch): the routers import their heavy parts late.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenizer.adaptive.routers.base import Router
from tokenizer.adaptive.routers.elbo import ElboRouter
from tokenizer.adaptive.routers.fitted import FittedRouter
from tokenizer.adaptive.routers.gain import GainRouter
from tokenizer.adaptive.routers.gain2 import Gain2Router
from tokenizer.adaptive.routers.latent import LatentRouter

if TYPE_CHECKING:
    import torch

# the router that won on held-out clips of mixed content and procedural ones (docs/routers.md)
DEFAULT_ROUTER = "gain2"
# the default where beta is tuned (tune-beta, tokenize --beta auto): the best router tuning can run
DEFAULT_TUNED_ROUTER = "gain"
# beta of a new dataset that names none: the mean kept fraction of tokens (on the corpus's sample with a
# per-corpus fit, else on the checkpoint's calibration clips)
DEFAULT_BETA = 0.5
# clips a router that fits per corpus (`Router.fits_corpus`) is fitted on when a new dataset names no
# --fit-router (0: no fit)
DEFAULT_FIT_CLIPS = 64
# the paper's rule: what a dataset or report from before routers were recorded was made with, and
# whose scores the fixed-rate split keeps in eval
PAPER_ROUTER = "elbo"
# whose token scores the eval's oracle split measures each clip's curve with
ORACLE_ROUTER = "gain"

_ROUTERS: dict[str, Router] = {}


def register_router(router: Router) -> Router:
    """Add a router under its `name`; refuse a name already taken."""
    if not router.name or router.name in _ROUTERS:
        raise ValueError(f"router name {router.name!r} is empty or already registered")
    _ROUTERS[router.name] = router
    return router


def unregister_router(name: str) -> None:
    """Remove a router (for tests that register their own)."""
    _ROUTERS.pop(check_router_name(name))


def router_names() -> tuple[str, ...]:
    """Every registered router's name, in registration order."""
    return tuple(_ROUTERS)


def check_router_name(name: str) -> str:
    """Return name; raise ValueError naming the choices unless it is a registered router."""
    if name not in _ROUTERS:
        raise ValueError(f"unknown router {name!r}; choose from {', '.join(_ROUTERS)}")
    return name


def get_router(name: str) -> Router:
    """The router called name; ValueError naming the choices for an unknown one."""
    return _ROUTERS[check_router_name(name)]


def check_mean_info(mean_info: float, router: str = PAPER_ROUTER) -> float:
    """E[signal] of a router as a float; raise ValueError, saying how to set it, unless finite and > 0."""
    return get_router(router).check_mean(mean_info)


def budget_rate(info: torch.Tensor, beta: float | torch.Tensor, mean_info: float, router: str = PAPER_ROUTER
                ) -> torch.Tensor:
    """r_x = clip(beta * signal(x) / E[signal], 1/16, 1): signal (B,), beta scalar or (B,) -> (B,) float,
    E[signal] checked with the router's message."""
    from tokenizer.adaptive.router import clip_rate

    return clip_rate(info, beta, check_mean_info(mean_info, router))


for _router in (ElboRouter(), GainRouter(), Gain2Router(), LatentRouter(), FittedRouter()):
    register_router(_router)
