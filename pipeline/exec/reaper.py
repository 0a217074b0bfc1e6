"""The reaper: ends what a driver's local Ray started when the driver itself is killed.

`ray.init()` without an address starts a whole Ray node under the driver (GCS, raylet, agents,
workers). A normal exit, an exception or Ctrl-C run `ray.shutdown()`; a `kill -9` of the driver
runs nothing, and while GCS and raylet die with it, Ray's agents and busy workers linger for a
minute or more. The reaper is a small separate process (its own session, so a signal to the
driver's process group leaves it be) that watches the driver through a pipe:
- while the driver lives, it records the driver's descendants every `POLL_S` (pid and start
  time, read from /proc), keeping those seen before while they live (`remember`: a scan that
  runs while the driver dies sees only part of its tree);
- when the driver says "stop" (after its own `ray.shutdown()`), it exits and touches nothing;
- when the pipe closes without "stop" (the driver died), it sends SIGTERM to the descendants it
  last saw, then SIGKILL to those still alive after `GRACE_S`: each by its own id, and only if its
  start time is still the recorded one (a reused pid is never signalled).

Linux only (/proc); elsewhere `start_reaper` returns None and nothing changes.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

logger = logging.getLogger(__name__)

POLL_S = 0.5
GRACE_S = 3.0
STOP = b"stop\n"

Proc = tuple[int, str]  # (pid, start time in clock ticks since boot: the process's identity)


def _stat(pid: int) -> tuple[int, str] | None:
    """(ppid, start time) of a live process, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, ...
    return int(fields[1]), fields[19]


def descendants(root: int) -> list[Proc]:
    """Every live descendant of `root` (pid, start time), from one scan of /proc."""
    children: dict[int, list[Proc]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None:
                children.setdefault(st[0], []).append((int(entry.name), st[1]))
    out: list[Proc] = []
    todo = [root]
    while todo:
        for proc in children.get(todo.pop(), []):
            out.append(proc)
            todo.append(proc[0])
    return out


def _alive(proc: Proc) -> bool:
    st = _stat(proc[0])
    return st is not None and st[1] == proc[1]


def end_processes(procs: list[Proc], grace_s: float = GRACE_S) -> None:
    """SIGTERM each process that is still the recorded one, then SIGKILL those left after grace_s."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 0.0)):
        live = [p for p in procs if _alive(p)]
        for pid, _ in live:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + wait_s
        while live and time.monotonic() < deadline:
            time.sleep(0.05)
            live = [p for p in live if _alive(p)]
        if not live:
            return


def remember(seen: list[Proc], now: list[Proc]) -> list[Proc]:
    """What the reaper ends if the driver dies: this scan's descendants and every one seen before
    that is still alive. A scan while the driver is dying sees only part of its tree (a child that
    has already been given a new parent is no longer under it, and nor is its subtree), so a view
    never replaces the last one; a process that has ended leaves it (a reused pid has another start
    time, so it is never taken for one seen)."""
    current = set(now)
    return now + [p for p in seen if p not in current and _alive(p)]


def start_reaper() -> subprocess.Popen[bytes] | None:
    """Start the reaper of this process's descendants; None where /proc is missing."""
    if not Path(f"/proc/{os.getpid()}/stat").exists():
        return None
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # the project root, whatever the driver's sys.path
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.Popen([sys.executable, "-m", "pipeline.exec.reaper", str(os.getpid())], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)


def stop_reaper(proc: subprocess.Popen[bytes] | None) -> None:
    """Tell the reaper the driver ended its Ray itself; it exits without touching anything."""
    if proc is None:
        return
    try:
        assert proc.stdin is not None
        proc.stdin.write(STOP)
        proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(timeout=5.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _watch(driver: int) -> None:
    said: list[bytes] = []
    closed = threading.Event()

    def read() -> None:
        said.append(sys.stdin.buffer.read())  # returns at EOF: "stop", or nothing when the driver died
        closed.set()

    threading.Thread(target=read, daemon=True).start()
    me = os.getpid()
    first = _stat(driver)
    identity = (driver, first[1]) if first is not None else None
    seen: list[Proc] = []
    # Ends on the pipe's EOF, or when the driver is gone even if a fork of it still holds the pipe.
    while identity is not None and _alive(identity) and not closed.wait(POLL_S):
        seen = remember(seen, [p for p in descendants(driver) if p[0] != me])
    closed.wait(0.2)
    if said and said[0].startswith(STOP.strip()):
        return
    end_processes(seen)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C at a terminal reaches the driver, not us
    _watch(int(sys.argv[1]))
