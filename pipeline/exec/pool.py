"""The tokenize actors: how many run and where (sized from the cluster, per node), and the pool
that starts, replaces and grows them.

- GPU nodes: one actor per `gpus_per_worker` of a GPU (1.0: one per GPU; 0.5: two share one, as
  NeMo Curator does for small models). Nodes without GPUs in a GPU cluster run decode tasks only.
- CPU-only clusters: one actor per node (`cores_per_cpu_worker` 0), or one per that many cores of
  the node; each actor's torch threads share the node's cores (`torch_threads` overrides).
- `num_workers` set: exactly that many actors, placed by Ray.
The driver re-reads the live nodes while the job runs (`ExecConfig.pool_refresh_s`), so a node
that joins gets its actors and a node that leaves takes its slots with it. The sizing is pure
functions; `ActorPool` imports Ray only in its methods.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from pipeline.job.job import ExecConfig, JobConfig
from schemas.tokens import TokenFileMeta

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeInfo:
    """A live Ray node: its id and its CPU / GPU resources."""

    node_id: str
    cpus: float
    gpus: float


@dataclass(frozen=True)
class Target:
    """`count` actors on `node_id` (None: wherever Ray places them), each with `threads` torch threads."""

    node_id: str | None
    count: int
    threads: int


def uses_gpus(nodes: list[NodeInfo], ex: ExecConfig, device: str) -> bool:
    """Actors take GPUs when the cluster has at least one worker's share and the device allows it."""
    return device != "cpu" and sum(n.gpus for n in nodes) >= ex.gpus_per_worker


def pool_targets(nodes: list[NodeInfo], ex: ExecConfig, gpus: bool) -> list[Target]:
    """The actors each live node should run (see the module docstring)."""
    if ex.num_workers:
        biggest = max((n.cpus for n in nodes), default=1.0)
        return [Target(None, ex.num_workers, ex.torch_threads or max(1, int(biggest) // ex.num_workers))]
    out = []
    for n in nodes:
        if gpus:
            count = math.floor(n.gpus / ex.gpus_per_worker + 1e-9)
        else:
            count = max(1, int(n.cpus) // ex.cores_per_cpu_worker) if ex.cores_per_cpu_worker else 1
        if count > 0:
            out.append(Target(n.node_id, count, ex.torch_threads or max(1, int(n.cpus) // count)))
    return out


class ActorPool:
    """The tokenize actors, sized from the live nodes (`pipeline.exec.pool`) and pinned to them
    (soft node affinity). `grow()` gives nodes that joined their actors; a dead actor is replaced
    on its node while that node lives, and its slot is dropped with a lost node. `workers_out`
    mirrors the live handles; `describe` holds each slot's `actor.describe()`. `actor` is the
    actor class (`ShardWorker`): constructed with (job dict, torch threads).
    """

    def __init__(self, job: JobConfig, actor: type, workers_out: list[Any] | None) -> None:
        self.job = job
        self.actor = actor
        self.out = workers_out
        self.slots: dict[int, tuple[Any, Target]] = {}
        self.describe: dict[int, dict[str, Any]] = {}
        self.peak = 0
        self._ids = 0
        self.gpus = uses_gpus(self._nodes(), job.execution, job.tokenize.device)
        self.grow()

    @staticmethod
    def _nodes() -> list[NodeInfo]:
        import ray

        return [NodeInfo(n["NodeID"], float(n["Resources"].get("CPU", 0)), float(n["Resources"].get("GPU", 0)))
                for n in ray.nodes() if n.get("Alive")]

    def _make(self, target: Target) -> Any:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        opts: dict[str, Any] = {"max_restarts": 0, "name": None, "num_cpus": self.job.execution.worker_cpus}
        if self.gpus:
            opts["num_gpus"] = self.job.execution.gpus_per_worker
        if target.node_id is not None:  # soft: a lost node's replacement may land elsewhere
            opts["scheduling_strategy"] = NodeAffinitySchedulingStrategy(target.node_id, soft=True)
        return ray.remote(self.actor).options(**opts).remote(self.job.to_dict(), target.threads)

    def _publish(self) -> None:
        self.peak = max(self.peak, len(self.slots))
        if self.out is not None:
            self.out[:] = [h for h, _ in self.slots.values()]

    def grow(self) -> list[int]:
        """Start the actors the live nodes are short of; their slot ids."""
        have: dict[str | None, int] = {}
        for _, t in self.slots.values():
            have[t.node_id] = have.get(t.node_id, 0) + 1
        new = []
        for t in pool_targets(self._nodes(), self.job.execution, self.gpus):
            for _ in range(t.count - have.get(t.node_id, 0)):
                self.slots[self._ids] = (self._make(t), t)
                new.append(self._ids)
                self._ids += 1
        if new:
            self._publish()
            if self.slots and len(new) < len(self.slots):
                logger.info("%d tokenize worker(s) started on nodes that joined", len(new))
        return new

    def handle(self, slot: int) -> Any:
        return self.slots[slot][0]

    def replace(self, slot: int) -> bool:
        """A new actor in the slot of a dead one, on the same node; False when the node is gone
        (the slot is dropped, unless it was the last)."""
        _, t = self.slots[slot]
        alive = {n.node_id for n in self._nodes()}
        if t.node_id is not None and t.node_id not in alive and len(self.slots) > 1:
            del self.slots[slot]
            self._publish()
            logger.warning("tokenize worker %d's node %s left the cluster; its shards go to the others", slot,
                           t.node_id[:12])
            return False
        if t.node_id is not None and t.node_id not in alive:
            t = Target(None, 1, t.threads)
        self.describe.pop(slot, None)
        self.slots[slot] = (self._make(t), t)
        self._publish()
        return True

    def gone(self) -> list[int]:
        """Slots pinned to nodes no longer alive (all but one, if every slot's node is gone)."""
        alive = {n.node_id for n in self._nodes()}
        lost = [s for s, (_, t) in self.slots.items() if t.node_id is not None and t.node_id not in alive]
        return lost[: len(self.slots) - 1]

    def drop(self, slot: int) -> None:
        import ray

        handle, t = self.slots.pop(slot)
        self.describe.pop(slot, None)
        ray.kill(handle)
        self._publish()
        logger.warning("tokenize worker %d's node %s left the cluster", slot, (t.node_id or "?")[:12])

    def start(self) -> TokenFileMeta:
        """Wait for the first actor to load the model; its file meta names the tokenizer and beta.
        An actor that dies while starting (node lost, model failed to load) is replaced. Logs where
        every actor runs (a GPU actor that falls back to the CPU says so)."""
        import ray
        from ray.exceptions import RayActorError

        attempts = self.job.execution.max_shard_attempts
        for attempt in range(1, attempts + 1):
            first = next(iter(self.slots))
            try:
                meta = TokenFileMeta.from_dict(ray.get(self.handle(first).file_meta.remote()))
                break
            except RayActorError as exc:
                if attempt == attempts:
                    raise RuntimeError(f"tokenize worker failed to start {attempt} times: {exc}") from exc
                logger.warning("tokenize worker died while starting (attempt %d): %s", attempt, type(exc).__name__)
                self.replace(first)
        self.look()
        return meta

    def look(self) -> None:
        """Record (and log) where the actors not yet described run."""
        import ray
        from ray.exceptions import RayError

        for slot in [s for s in self.slots if s not in self.describe]:
            try:
                d = ray.get(self.handle(slot).describe.remote())
            except RayError:
                continue  # died: its shard's retry replaces it
            self.describe[slot] = d
            gpu = f"GPU {','.join(d['gpu_ids'])}" if d["gpu_ids"] else "no GPU"
            # A GPU actor on the CPU is worth a line by default: the job runs, far slower than asked.
            logger.log(logging.WARNING if d["note"] else logging.INFO, "tokenize worker %d: node %s, %s, device %s, "
                       "%d threads%s", slot, d["node"][:12], gpu, d["device"], d["threads"],
                       f" ({d['note']})" if d["note"] else "")

    def kill(self) -> None:
        import ray

        for handle, _ in self.slots.values():
            ray.kill(handle)
