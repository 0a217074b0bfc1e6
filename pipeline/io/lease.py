"""One writer per dataset at a time: a lease object in OUTPUT (`_lease.json`).

The driver takes the lease before it touches OUTPUT, renews it while the job runs and releases it at
the end. The lease names its owner (host, pid, start) and an expiry; a second job on the same OUTPUT
is refused, naming the first, until the lease expires (a killed driver never renews it), its owner
is seen dead (same host, no such process: a rerun after `kill -9` goes on at once), or it is
broken on purpose (`--force-unlock`). Every shard commit first checks that the lease is still the job's, so
the workers of a driver that died cannot commit after another run has started.

Taking a lease is create-if-absent: an exclusive create on a local disk, a conditional PUT
(`If-None-Match: *`) on S3, so two drivers starting at once cannot both win. A stale lease is
deleted first, then created again the same way: of two drivers taking over together, one wins.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

from pipeline.io.dataset import DatasetDir
from schemas.layout import LEASE_FILE

logger = logging.getLogger(__name__)


class LeaseHeldError(RuntimeError):
    """Another job holds the dataset's lease."""


class LeaseLostError(RuntimeError):
    """The job's lease expired or was taken by another job: it must not commit anything more."""


@dataclass(frozen=True)
class LeaseInfo:
    """What `_lease.json` holds. expires: Unix time; token: this holder's random id."""

    token: str
    host: str
    pid: int
    started: str
    expires: float

    def describe(self) -> str:
        left = self.expires - time.time()
        state = f"expires in {left:.0f}s" if left > 0 else f"expired {-left:.0f}s ago"
        return f"pid {self.pid} on {self.host}, started {self.started}, {state}"

    def is_live(self) -> bool:
        """Unexpired, and not a process of this host that no longer exists."""
        if self.expires <= time.time():
            return False
        if self.host == socket.gethostname() and self.pid > 0:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True  # alive, another user's
        return True


def read_lease(ds: DatasetDir) -> LeaseInfo | None:
    try:
        return LeaseInfo(**json.loads(ds.read(LEASE_FILE)))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError, KeyError):  # a torn or foreign file: treat as expired
        return LeaseInfo(token="", host="?", pid=0, started="unreadable lease file", expires=0.0)


class Lease:
    """The job's hold on `ds`: `acquire()`, then `renew()` (a thread does it every ttl/3 while held),
    `check()` before every commit, `release()` at the end."""

    def __init__(self, ds: DatasetDir, ttl_s: float = 120.0) -> None:
        if ttl_s <= 0:
            raise ValueError(f"lease ttl_s must be > 0, got {ttl_s}")
        self.ds = ds
        self.ttl_s = ttl_s
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self.info = LeaseInfo(token=uuid.uuid4().hex, host=socket.gethostname(), pid=os.getpid(), started=now,
                              expires=0.0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _fresh(self) -> bytes:
        self.info = dataclasses.replace(self.info, expires=time.time() + self.ttl_s)
        return json.dumps(dataclasses.asdict(self.info)).encode()

    def acquire(self, force: bool = False) -> None:
        """Take the lease; LeaseHeldError naming the holder when a live lease is someone else's.
        force: break any existing lease first (`--force-unlock`)."""
        for _ in range(3):
            if self.ds.put(LEASE_FILE, self._fresh(), exclusive=True):
                logger.info("lease on %s taken (%s)", self.ds.root, self.info.describe())
                self._start_renewing()
                return
            held = read_lease(self.ds)
            if held is None:
                continue  # released meanwhile
            if held.token == self.info.token:  # our create went through but its answer was lost
                self._start_renewing()
                return
            if not force and held.is_live():
                raise LeaseHeldError(f"{self.ds.root} is being written by another job ({held.describe()}); wait for "
                                     f"it, or pass --force-unlock if that job is gone")
            logger.warning("breaking the lease on %s (%s)", self.ds.root, held.describe())
            self.ds.remove([LEASE_FILE])
            self.ds.invalidate_cache()
            force = False
        raise LeaseHeldError(f"{self.ds.root}: could not take the lease (another job keeps taking it)")

    def check(self) -> None:
        """LeaseLostError unless the lease on file is this job's and unexpired."""
        held = read_lease(self.ds)
        if held is None or held.token != self.info.token or held.expires <= time.time():
            raise LeaseLostError(f"{self.ds.root}: this job no longer holds the dataset's lease "
                                 f"({'none on file' if held is None else held.describe()}); not committing")

    def renew(self) -> None:
        self.check()
        self.ds.put(LEASE_FILE, self._fresh())

    def _start_renewing(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.ttl_s / 3):
                try:
                    self.renew()
                except Exception as exc:  # noqa: BLE001 - logged; commits check the lease themselves
                    logger.error("could not renew the lease on %s: %s", self.ds.root, exc)

        self._thread = threading.Thread(target=loop, name="infotok-lease", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop renewing and delete the lease if it is still this job's."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        held = read_lease(self.ds)
        if held is not None and held.token == self.info.token:
            self.ds.remove([LEASE_FILE])
            logger.info("lease on %s released", self.ds.root)


def check_lease(ds: DatasetDir, token: str) -> None:
    """A worker's check before it commits a shard: the lease on file is `token`'s and unexpired."""
    held = read_lease(ds)
    if held is None or held.token != token or held.expires <= time.time():
        raise LeaseLostError(f"{ds.root}: the job that started this shard no longer holds the dataset's lease "
                             f"({'none on file' if held is None else held.describe()}); not committing")
