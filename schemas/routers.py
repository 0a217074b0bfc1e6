"""The routers a dataset can be tokenized with, by name (the method of each is in
`tokenizer.adaptive.router`), and the default: recorded in every dataset's file metadata."""

from __future__ import annotations

ROUTERS: tuple[str, ...] = ("elbo", "gain", "gain2", "latent")
# the router that won on held-out clips of mixed content and procedural ones (README, "Routers")
DEFAULT_ROUTER = "gain2"
# the default where beta is tuned (tune-beta, tokenize --beta auto): the best router tuning can run
DEFAULT_TUNED_ROUTER = "gain"
# what each router's per-clip signal averages to, as printed: its E[signal]
# (gain2 budgets from its calibration curves; its E[s], their mean slope with its lowest probe, is for the record)
SIGNAL_NAMES: dict[str, str] = {"elbo": "E[I]", "gain": "E[s]", "gain2": "E[s]", "latent": "E[s^]"}


def check_router(router: str) -> str:
    """Return router; raise ValueError naming the choices unless it is one of ROUTERS."""
    if router not in ROUTERS:
        raise ValueError(f"unknown router {router!r}; choose from {', '.join(ROUTERS)}")
    return router
