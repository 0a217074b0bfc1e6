"""Read a finished token dataset into a `tokenizer.lm.corpus.ClipCorpus` for the LM probe.

Through `pipeline.io.reader.DatasetReader`: the manifest first (a dataset without one is refused),
then every token part listed in it, each checked against its commit (size, SHA-256) and read for
only the columns the probe needs; masks become (t, h, w) positions with the loader's vectorised
decoder (`pipeline.loader.pack.Columns`). With max_clips, a first pass reads only
(video_id, clip_index) and keeps the max_clips clips whose hash of the pair is smallest, so the
sample is deterministic and independent of part order; the second pass reads only their rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from pipeline.io.dataset import DatasetDir
from pipeline.io.reader import DatasetReader
from tokenizer.lm.corpus import ClipCorpus, sample_rows

logger = logging.getLogger(__name__)

_COLUMNS = ["video_id", "clip_index", "frame_count", "height", "width", "grid_t", "grid_h", "grid_w", "tokens",
            "mask"]


@dataclass(frozen=True)
class CorpusRead:
    """corpus: the clips read; dataset_clips: clips in the dataset; sampled: whether max_clips cut it;
    fsq_levels: the dataset's FSQ levels (from its manifest)."""

    corpus: ClipCorpus
    dataset_clips: int
    sampled: bool
    fsq_levels: tuple[int, ...]


def read_corpus(ds: DatasetDir, max_clips: int | None = None) -> CorpusRead:
    """Every clip of the dataset (or a deterministic sample of max_clips); DatasetNotReadyError
    without a manifest, ValueError for a dataset without clips or with a part that differs from its
    commit (`pipeline.io.reader.PartIntegrityError`, naming the file)."""
    import pyarrow as pa

    from pipeline.loader.pack import Columns

    reader = DatasetReader(ds)
    manifest = reader.manifest
    shards = [p.shard for p in manifest.parts]
    keep: dict[int, np.ndarray] | None = None
    total = manifest.n_clips
    if max_clips is not None and total > max_clips:
        keys = [reader.read_part(s, ["video_id", "clip_index"]) for s in shards]
        vids = np.concatenate([k.column("video_id").to_numpy(zero_copy_only=False).astype(object) for k in keys])
        clip = np.concatenate([k.column("clip_index").to_numpy() for k in keys])
        rows = sample_rows(vids, clip, max_clips)
        bounds = np.cumsum([0] + [k.num_rows for k in keys])
        keep = {s: rows[(rows >= bounds[i]) & (rows < bounds[i + 1])] - bounds[i] for i, s in enumerate(shards)}
    tables = []
    for s in shards:
        t = reader.read_part(s, _COLUMNS)
        if keep is not None:
            t = t.take(pa.array(keep[s]))
        tables.append(t)
    table = pa.concat_tables(tables) if tables else None
    if table is None or table.num_rows == 0:
        raise ValueError(f"dataset {ds.root} has no clips")
    cols = Columns.from_table(table, ds.root)
    num = {c: table.column(c).to_numpy().astype(np.int64) for c in ("frame_count", "height", "width")}
    corpus = ClipCorpus(tokens=cols.tokens.astype(np.int64), positions=cols.positions(), offsets=cols.tok_offsets,
                        grids=cols.grids, pixels=num["frame_count"] * num["height"] * num["width"],
                        video_ids=table.column("video_id").to_numpy(zero_copy_only=False).astype(object))
    logger.info("read %d of %d clips (%d tokens) from %s", corpus.n_clips, total, corpus.n_tokens, ds.root)
    return CorpusRead(corpus=corpus, dataset_clips=total, sampled=keep is not None,
                      fsq_levels=tuple(manifest.file_meta.fsq_levels))
