"""Job configuration of the tokenize pipeline: one frozen dataclass per component."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.decode.isolate import IsolationConfig
from pipeline.decode.step import DecodeConfig
from pipeline.plan.plan import PlanConfig
from pipeline.io.inputs import InputConfig, canonical_input
from pipeline.io.storage import StorageConfig
from pipeline.tokenize.step import TokenizeConfig
from schemas.config import FrozenConfig

# Settings that define the dataset's content: a rerun must match them exactly.
CONTENT_KEYS = ("input", "decode", "tokenize", "plan", "extensions")


DECODE_OVERLAP: tuple[str, ...] = ("auto", "overlap", "alternate")


@dataclass(frozen=True)
class ExecConfig(FrozenConfig):
    """How the job runs (may change between a run and its resume).

    num_workers: tokenize actors (None: sized from the cluster, see pipeline/exec/pool.py).
    gpus_per_worker: the share of a GPU each actor takes (1.0: one actor per GPU; 0.25: four).
    cores_per_cpu_worker: on a CPU-only cluster, one actor per this many cores of each node (0: one
      actor per node).
    pool_refresh_s: how often the driver looks for nodes that joined (and gives them actors).
    on_change: a rerun over an input whose listed videos were removed or changed (new size or
      version): "keep" (default) leaves their rows as tokenized, reports them and only adds new
      videos, so committed parts are never rewritten unasked; "retokenize" redoes the shards that
      hold them (a removed video becomes an error row). New videos always go to a new generation.
    decode_window: videos decoded ahead of the model per worker (bounds memory).
    decode_timeout_s: a decode taking longer is cancelled and retried, then recorded.
    decode_attempts: tries per video for crashed / hung decodes.
    max_shard_attempts: tries per shard when its worker dies or a video in it fails transiently;
      a shard still failing is left uncommitted (the job then ends with an error; a rerun retries it).
    retry_delay_s / max_retry_delay_s: backoff before a shard's next try (doubling, jittered).
    lease_ttl_s: how long the job's lease on OUTPUT lasts unrenewed (renewed every third of it): after
      a killed driver, another run can take the dataset over this long after the last renewal.
    worker_cpus / decode_cpus: Ray CPU resources of a tokenize actor / a decode task. Fractions
      keep small machines from deadlocking (actors holding every CPU while decodes wait).
    torch_threads: threads of a CPU tokenize actor (0: the node's cores / the actors on it).
    decode_overlap: 'auto' (overlap when the model runs on a GPU, alternate on CPU), 'overlap'
      (Ray decode tasks a sliding window ahead while the model runs) or 'alternate' (the actor
      decodes a window in its own crash-isolating child processes, then runs the model with
      nothing else in flight). On a CPU-only node the model and the decoders share the cores, and
      alternating was ~10% faster end to end on 2 cores (benchmarks/bench_pipeline.py).
    """

    num_workers: int | None = None
    decode_window: int = 4
    decode_timeout_s: float = 300.0
    decode_attempts: int = 2
    max_shard_attempts: int = 3
    retry_delay_s: float = 2.0
    max_retry_delay_s: float = 30.0
    lease_ttl_s: float = 120.0
    worker_cpus: float = 1.0
    decode_cpus: float = 0.5
    torch_threads: int = 0
    decode_overlap: str = "auto"
    gpus_per_worker: float = 1.0
    cores_per_cpu_worker: int = 0
    pool_refresh_s: float = 10.0
    on_change: str = "keep"

    def __post_init__(self) -> None:
        if self.on_change not in ("keep", "retokenize"):
            raise ValueError(f"on_change must be keep or retokenize, got {self.on_change!r}")
        if not 0 < self.gpus_per_worker <= 1:
            raise ValueError(f"gpus_per_worker must be in (0, 1], got {self.gpus_per_worker}")
        if self.cores_per_cpu_worker < 0:
            raise ValueError(f"cores_per_cpu_worker must be >= 0, got {self.cores_per_cpu_worker}")
        if not self.pool_refresh_s > 0:
            raise ValueError(f"pool_refresh_s must be > 0, got {self.pool_refresh_s}")
        if self.decode_overlap not in DECODE_OVERLAP:
            raise ValueError(f"decode_overlap must be one of {DECODE_OVERLAP}, got {self.decode_overlap!r}")
        if not (self.worker_cpus > 0 and self.decode_cpus > 0):
            raise ValueError(f"worker_cpus and decode_cpus must be > 0, got {self.worker_cpus}, {self.decode_cpus}")
        if self.torch_threads < 0:
            raise ValueError(f"torch_threads must be >= 0, got {self.torch_threads}")
        if self.num_workers is not None and self.num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {self.num_workers}")
        if self.decode_window < 1 or self.decode_attempts < 1 or self.max_shard_attempts < 1:
            raise ValueError(
                f"decode_window, decode_attempts and max_shard_attempts must be >= 1, got "
                f"{self.decode_window}, {self.decode_attempts}, {self.max_shard_attempts}"
            )
        if not (0 <= self.retry_delay_s <= self.max_retry_delay_s):
            raise ValueError(f"retry delays must satisfy 0 <= retry_delay_s <= max_retry_delay_s, got "
                             f"{self.retry_delay_s}, {self.max_retry_delay_s}")
        if not self.lease_ttl_s > 0:
            raise ValueError(f"lease_ttl_s must be > 0, got {self.lease_ttl_s}")
        if not self.decode_timeout_s > 0:
            raise ValueError(f"decode_timeout_s must be > 0, got {self.decode_timeout_s}")


    @property
    def isolation(self) -> IsolationConfig:
        """The decode timeout and attempts as the isolated decoders take them (one source of truth)."""
        return IsolationConfig(timeout_s=self.decode_timeout_s, attempts=self.decode_attempts)


def decode_overlaps(ex: ExecConfig, model_on_gpu: bool) -> bool:
    """Whether decoding runs alongside the model (see ExecConfig.decode_overlap)."""
    if ex.decode_overlap == "auto":
        return model_on_gpu
    return ex.decode_overlap == "overlap"


@dataclass(frozen=True)
class JobConfig(FrozenConfig):
    """input: prefix or list file of videos; output: dataset root (folder or s3:// prefix)."""

    input: str
    output: str
    decode: DecodeConfig = DecodeConfig()
    tokenize: TokenizeConfig = TokenizeConfig()
    plan: PlanConfig = PlanConfig()
    storage: StorageConfig = StorageConfig()
    execution: ExecConfig = ExecConfig()
    extensions: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "input", canonical_input(self.input))  # the resume key: one spelling
        if self.extensions is not None and not self.extensions:
            object.__setattr__(self, "extensions", None)  # () lists like None: the listing's defaults

    @property
    def source(self) -> InputConfig:
        """What to list: `input` with the job's extensions (the listing's defaults when None)."""
        return InputConfig(uri=self.input, **({"extensions": self.extensions} if self.extensions else {}))

    def content(self) -> dict[str, Any]:
        """The settings that decide the dataset's rows (compared on resume)."""
        full = self.to_dict()
        return {k: full[k] for k in CONTENT_KEYS}


def content_diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Human-readable list of 'key: old -> new' for every differing leaf."""
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += content_diff(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


@dataclass(frozen=True)
class JobResult:
    """What a run (or resume) of the job did; clips / tokens / errors count the whole dataset."""

    output: str
    n_shards: int
    shards_run: int
    shards_skipped: int
    videos: int
    clips: int
    tokens: int
    errors: int
    shard_retries: int
    seconds: float
    tokenizer_id: str
    beta: float
    expected_info: float
    router: str = "elbo"
    workers: int = 0  # tokenize actors at the largest the pool grew to
    nodes: int = 0  # nodes whose actors committed shards in this run
    generations: int = 1  # of the plan: runs that found new videos
    added: int = 0  # videos this run found new (a new generation), removed / changed: since the plan
    removed: int = 0
    changed: int = 0
