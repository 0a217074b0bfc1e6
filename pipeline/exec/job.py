"""Job configuration of the tokenize pipeline: one frozen dataclass per component."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from pipeline.decode.step import DecodeConfig
from pipeline.exec.plan import PlanConfig
from pipeline.io.storage import StorageConfig
from pipeline.exec.tokenize_step import TokenizeConfig
from schemas.config import check_keys

JOB_FILE = "job.json"
PLAN_FILE = "plan.json"

# Settings that define the dataset's content: a rerun must match them exactly.
CONTENT_KEYS = ("input", "decode", "tokenize", "plan", "extensions")


DECODE_OVERLAP: tuple[str, ...] = ("auto", "overlap", "alternate")


@dataclass(frozen=True)
class ExecConfig:
    """How the job runs (may change between a run and its resume).

    num_workers: tokenize actors (None: one per GPU, or 1 without GPUs).
    decode_window: videos decoded ahead of the model per worker (bounds memory).
    decode_timeout_s: a decode taking longer is cancelled and retried, then recorded.
    decode_attempts: tries per video for crashed / hung decodes.
    max_shard_attempts: tries per shard when its worker dies.
    worker_cpus / decode_cpus: Ray CPU resources of a tokenize actor / a decode task. Fractions
      keep small machines from deadlocking (actors holding every CPU while decodes wait).
    torch_threads: threads of a CPU tokenize actor (0: the node's cores / num_workers).
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
    worker_cpus: float = 1.0
    decode_cpus: float = 0.5
    torch_threads: int = 0
    decode_overlap: str = "auto"

    def __post_init__(self) -> None:
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
        if not self.decode_timeout_s > 0:
            raise ValueError(f"decode_timeout_s must be > 0, got {self.decode_timeout_s}")


@dataclass(frozen=True)
class JobConfig:
    """input: prefix or list file of videos; output: dataset root (folder or s3:// prefix)."""

    input: str
    output: str
    decode: DecodeConfig = DecodeConfig()
    tokenize: TokenizeConfig = TokenizeConfig()
    plan: PlanConfig = PlanConfig()
    storage: StorageConfig = StorageConfig()
    execution: ExecConfig = ExecConfig()
    extensions: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "output": self.output,
            "decode": self.decode.to_dict(),
            "tokenize": dataclasses.asdict(self.tokenize),
            "plan": self.plan.to_dict(),
            "storage": self.storage.to_dict(),
            "execution": dataclasses.asdict(self.execution),
            "extensions": list(self.extensions) if self.extensions else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JobConfig:
        check_keys(cls, d)
        return cls(
            input=d["input"],
            output=d["output"],
            decode=DecodeConfig.from_dict(d.get("decode", {})),
            tokenize=TokenizeConfig(**d.get("tokenize", {})),
            plan=PlanConfig.from_dict(d.get("plan", {})),
            storage=StorageConfig.from_dict(d.get("storage", {})),
            execution=ExecConfig(**d.get("execution", {})),
            extensions=tuple(d["extensions"]) if d.get("extensions") else None,
        )

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
