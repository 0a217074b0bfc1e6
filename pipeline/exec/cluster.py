"""Joining or starting Ray for the tokenize job, and ending the Ray it started (with the reaper
that ends a local Ray's processes when the driver is killed outright)."""

from __future__ import annotations

import logging
import os
import subprocess

from pipeline.exec.reaper import start_reaper, stop_reaper

logger = logging.getLogger(__name__)

_reaper: subprocess.Popen[bytes] | None = None


def init_ray(address: str | None) -> bool:
    """Join a cluster (address given, or RAY_ADDRESS set, e.g. inside a submitted job) or start a local
    one. Returns False when Ray was already initialised by the caller (then it is left running)."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if address is None and not os.environ.get("RAY_ADDRESS"):
        # Ray logs its token-auth mode (enabled by default, or the user's RAY_AUTH_MODE) at every local
        # start; it says nothing about this job, so it shows only with -v.
        if not logger.isEnabledFor(logging.INFO):
            logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        ray.init(address="local", num_cpus=os.cpu_count() or 2, include_dashboard=False,
                 logging_level=logging.WARNING, log_to_driver=False)
        global _reaper
        _reaper = start_reaper()  # ends this Ray node's processes if the driver is killed outright
    else:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    return True


def shutdown_ray() -> None:
    """End the Ray this process started (and tell its reaper the driver did so itself)."""
    import ray

    global _reaper
    ray.shutdown()
    stop_reaper(_reaper)
    _reaper = None
