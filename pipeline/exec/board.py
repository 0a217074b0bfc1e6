"""Where running shards post their progress (a tiny Ray actor the driver reads a few times a second).

A shard posts its running totals (videos, clips) under its id, so a retried shard starts again
from zero instead of counting its videos twice."""

from __future__ import annotations


class ProgressBoard:
    """Actor body: shard -> (videos, clips) of its current attempt."""

    def __init__(self) -> None:
        self.shards: dict[int, tuple[int, int]] = {}

    def post(self, shard: int, videos: int, clips: int) -> None:
        self.shards[shard] = (videos, clips)

    def totals(self) -> tuple[int, int]:
        """(videos, clips) over every shard that posted."""
        return (sum(v for v, _ in self.shards.values()), sum(c for _, c in self.shards.values()))
