"""Submitting a command to a Ray cluster through the Ray Jobs API, and following it to its end
(the client side of `infotok submit`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})


class JobSubmitter:
    """A Jobs API client of the cluster whose dashboard is at `address` (e.g. http://HEAD:8265)."""

    def __init__(self, address: str) -> None:
        from ray.job_submission import JobSubmissionClient

        self.client = JobSubmissionClient(address)

    def submit(self, entrypoint: str, runtime_env: dict[str, Any], metadata: dict[str, str]) -> str:
        """Submit `entrypoint` (a shell command) with its runtime_env; returns the job id."""
        job_id = self.client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env, metadata=metadata)
        logger.info("submitted %s: %s", job_id, entrypoint)
        return str(job_id)

    def follow(self, job_id: str, on_logs: Callable[[str], None] | None = None, poll_s: float = 1.0) -> str:
        """Poll the job until it ends, passing each new piece of its logs to `on_logs`; returns its
        final status (one of TERMINAL)."""
        shown = 0
        while True:
            job_status = self.client.get_job_status(job_id)
            status = str(getattr(job_status, "value", job_status))
            logs = self.client.get_job_logs(job_id)
            if on_logs is not None and len(logs) > shown:
                on_logs(logs[shown:])
            shown = len(logs)
            if status in TERMINAL:
                return status
            time.sleep(poll_s)
