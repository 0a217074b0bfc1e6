"""The tokenize job's progress line, per clip: videos done of those planned (the bar, with its ETA),
clips tokenized and an estimate of the clips planned, clips/s, shards committed and errors; and the
one line at start that says what the job's speed depends on and how to make it cheaper.

The counts come from the shards while they run (a shard reports after each video and each model
batch), so a corpus of one shard moves the bar many times, not once at its end.
"""

from __future__ import annotations

import logging
import time
from typing import Any

logger = logging.getLogger(__name__)

# measured: the shipped checkpoint on a 4-core CPU at 256x256 px, 17-frame clips, router gain2
CPU_REFERENCE = "a 4-core CPU tokenizes about 0.1 clips/s at 256x256 px with gain2"


def speed_line(device: str, workers: int, resolution: tuple[int, int], clip_frames: int, router: str,
               passes: tuple[float, float, float]) -> str:
    """What the job's speed depends on (device, pixels, the router's passes per clip) and how to lower
    its cost. passes: (encoder, decoder, compressor) passes per clip."""
    h, w = resolution
    enc, dec, comp = passes
    line = (f"speed: {workers} worker(s) on {device}, {h}x{w} px, {clip_frames}-frame clips, router {router} "
            f"({enc:g} encoder + {dec:g} decoder + {comp:g} compressor passes per clip); cost grows with pixels "
            f"x passes")
    cheaper = []
    if h * w > 128 * 128:
        cheaper.append(f"--resolution 128 (~{h * w / (128 * 128):.0f}x fewer pixels)")
    if dec > 1:
        cheaper.append("--router latent (no decoder pass to route)")
    if not device.startswith("cuda"):
        cheaper.append("a GPU worker (--device cuda)")
        line += f"; for scale, {CPU_REFERENCE}"
    return line + (f"; cheaper: {', '.join(cheaper)}" if cheaper else "")


class JobProgress:
    """The bar: videos of the plan (done shards count as done), with the clips and rates as postfix."""

    def __init__(self, videos_planned: int, videos_done: int, shards_planned: int, shards_done: int,
                 enabled: bool = True, file: Any = None) -> None:
        from tqdm import tqdm

        self.t0 = time.monotonic()
        self.base_videos = videos_done
        self.shards_planned, self.shards_done = shards_planned, shards_done
        self.bar = tqdm(total=videos_planned, initial=videos_done, desc="tokenize", unit="video",
                        disable=not enabled, file=file, mininterval=0)  # the caller paces `show`
        self.videos = self.clips = self.errors = 0

    def show(self, videos: int, clips: int, shards_done: int | None = None, errors: int | None = None) -> None:
        """This run's videos and clips so far (over every shard, running ones included)."""
        if shards_done is not None:
            self.shards_done = shards_done
        if errors is not None:
            self.errors = errors
        self.clips = max(clips, 0)
        rate = self.clips / max(time.monotonic() - self.t0, 1e-9)
        post: dict[str, Any] = {"clips": self.clips}
        if videos > 0 and self.clips > 0:  # clips per video so far times the videos left: the clips the plan will give
            post["planned"] = f"~{round(self.clips / videos * (self.bar.total - self.base_videos))}"
        post["clips/s"] = f"{rate:.2f}"
        post["shards"] = f"{self.shards_done}/{self.shards_planned}"
        if self.errors:
            post["errors"] = self.errors
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(self.base_videos + videos - self.bar.n)
        self.bar.refresh()  # the postfix may have moved while the videos did not

    def note(self, line: str) -> None:
        """A line above the bar (shown only when the bar is)."""
        if not self.bar.disable:
            self.bar.write(line, file=self.bar.fp)

    def close(self) -> None:
        self.bar.close()
