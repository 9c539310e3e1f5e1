"""The approximate-nearest-neighbour (ANN) index of a chunk table's vectors: when one is worth
building, how it is built, and the settings a vector search uses with it.

Below `MIN_ROWS` vectors a flat scan is exact and fast enough, and no index exists.  Past it,
the writer builds an IVF_SQ index (inverted lists of 8-bit scalar-quantised vectors) when the
library is idle (`Store.maintain_vector_index`, from `Engine.idle_maintenance`).  A search then
probes `PROBE_SHARE` of the partitions and re-ranks `REFINE_FACTOR` times the rows it wants with
their exact float32 vectors, which keeps its recall against a flat search at 0.95 or better
(bench/scale.py measures it).  Rows added after the build are still found: LanceDB scans them
flat beside the index, and the compaction (`optimize`) folds them into it.  The index is
retrained from scratch once the table has grown `REBUILD_GROWTH` times past the rows it was
trained on, so that its partitions keep a useful size.

Each index's name records how it was built (``vector_ann_p<partitions>_n<rows>``): readers in
another process learn the partition count from the name, with no extra table to keep in step.

Tuning (`bench/scale.py --ann-sweep` and its scripts; 200 queries at 100k rows, 60 at 1M, top 10
and top 50 against a flat scan).  LanceDB's `optimize()` (the compaction, which always follows a
build) merges an IVF index's partitions, whatever it was built with: on 100k rows 33 partitions
became 12, 199 became 4, 100 became 9, 12 became 10; on 1M rows 333 became 261 (lancedb 0.40; a
`target_partition_size` given at build time made no difference).  So at 100k rows the index has
about ten partitions, and the probes needed for recall 0.95 (all of them: 4 of 12 gave 0.77, 8
gave 0.87) make it a scan of the 8-bit vectors: 5 ms, where the flat scan of the float32 vectors
takes 130 ms.  The re-rank: 3x the wanted rows gives what 5x gives (100k: recall 1.0 @10 and
@50; 1M rows, 50 probes: 0.967 / 0.966 for both) for about 1 ms less; 2x loses recall where rows
are dense (100k: 0.991 / 0.999, but 1M: 0.940 @10), 1x more (100k: 0.85 / 0.89).  IVF_PQ took
337 s to build on 100k rows (IVF_SQ: 10-25 s) and stayed below 0.8 recall in every setting
tried; IVF_HNSW_SQ (one partition, m=16, ef_construction=100) built in 37 s but needed ef=1200
for recall 0.995 @10 (0.92 @50), no faster; IVF_FLAT needed 16 of 64 partitions for 0.96 (before
any compaction) and was slower (26 ms).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MIN_ROWS",
    "AnnIndex",
    "SearchParams",
    "build",
    "find",
    "partitions_for",
    "rebuild_reason",
    "search_params",
]

VECTOR_COLUMN = "vector"
NAME_PREFIX = "vector_ann"
MIN_ROWS = 20_000  # below this many vectors a flat scan takes about 20 ms (STACK-NOTES.md)
ROWS_PER_PARTITION = 3_000  # k-means target; sqrt-like growth keeps probes cheap at 1M rows
MAX_PARTITIONS = 1_024
PROBE_SHARE = 0.15  # the share of partitions a search scans (0.05 lost recall: 0.87)
MIN_PROBES = 16  # with few partitions (100k rows: about 10 once compacted) probe them all
REFINE_FACTOR = 3  # re-rank this many times the wanted rows with exact vectors (see above)
REBUILD_GROWTH = 2.0  # retrain once the table holds this many times the rows trained on
_NAME = re.compile(rf"^{NAME_PREFIX}_p(\d+)_n(\d+)$")


@dataclass(frozen=True)
class AnnIndex:
    """A table's vector index as its name and LanceDB's statistics describe it."""

    name: str
    partitions: int
    trained_rows: int  # rows with vectors when it was built
    unindexed_rows: int  # rows added since, scanned flat until the next compaction


@dataclass(frozen=True)
class SearchParams:
    nprobes: int
    refine_factor: int


def partitions_for(rows: int) -> int:
    """How many IVF partitions to train for `rows` vectors."""
    return max(8, min(MAX_PARTITIONS, rows // ROWS_PER_PARTITION))


def index_name(partitions: int, rows: int) -> str:
    return f"{NAME_PREFIX}_p{partitions}_n{rows}"


def find(tbl: Any) -> AnnIndex | None:
    """The table's vector index, if it has one of ours."""
    for idx in tbl.list_indices():
        match = _NAME.match(str(idx.name))
        if match is None or list(idx.columns) != [VECTOR_COLUMN]:
            continue
        stats = tbl.index_stats(idx.name)
        unindexed = int(stats.num_unindexed_rows) if stats is not None else 0
        return AnnIndex(str(idx.name), int(match.group(1)), int(match.group(2)), unindexed)
    return None


def rebuild_reason(index: AnnIndex | None, vector_rows: int) -> str:
    """Why the index should be (re)built now; "" when it should not."""
    if vector_rows < MIN_ROWS:
        return ""
    if index is None:
        return f"{vector_rows} vectors, no index yet"
    if vector_rows >= REBUILD_GROWTH * index.trained_rows:
        return f"{vector_rows} vectors, index trained on {index.trained_rows}"
    return ""


def build(tbl: Any, vector_rows: int) -> str:
    """Train and write the index for the table's current vectors; returns its name.  Takes
    seconds at 100k rows and minutes at 1M: the caller runs it when the library is idle."""
    from lancedb.index import IvfSq

    partitions = partitions_for(vector_rows)
    name = index_name(partitions, vector_rows)
    old = find(tbl)
    tbl.create_index(
        VECTOR_COLUMN,
        config=IvfSq(distance_type="cosine", num_partitions=partitions),
        replace=True,
        name=name,
    )
    if old is not None and old.name != name:
        for idx in tbl.list_indices():
            if idx.name == old.name:  # replace=True keeps an index of another name
                tbl.drop_index(old.name)
    return name


def search_params(index: AnnIndex | None) -> SearchParams | None:
    """The probes and re-rank depth for a search with `index`; None for a flat search."""
    if index is None:
        return None
    probes = max(MIN_PROBES, math.ceil(index.partitions * PROBE_SHARE))
    return SearchParams(nprobes=min(probes, index.partitions), refine_factor=REFINE_FACTOR)
