"""Nearest neighbours in activation space (on PCA scores): graph building and queries.

Small tables get the exact graph (brute force, sklearn); large ones an approximate
graph from pynndescent (seeded, so reruns give the same graph). Queries come in two
forms, both numpy only (no dask, no torch, nothing heavy at import):

- `NeighborIndex` keeps one key's scores in memory and answers many queries (1.28M x 50
  scores by brute force in tens of milliseconds): ``analysis query``, notebooks.
- The lake read side (`stored_k`, `graph_row`, `streamed_neighbors`, `score_distances`)
  answers one query straight from the stored tables in bounded memory: the stored
  graph's row, else the PCA scores streamed block by block. The explorer uses these
  and maps the table rows they return onto its embedding's rows. A *placed* sample
  (``analysis/placed/<key>``, not a fitted row) has its nearest fitted rows stored with
  it: `placed_row` finds it, and `stored_k` / `graph_row` with ``placed=True`` read its
  neighbours in the same form (their rows index the PCA table, like the graph's).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lake.layout import AnalysisKey, analysis_group

from .errors import AnalysisError
from .jit import cache_compiled_kernels

EXACT_BELOW = 20000
# NN-descent keeps this many candidates per point (its default): building with more
# neighbours than are stored is what gets recall@10 well above 0.95.
NNDESCENT_NEIGHBORS = 30
# Query in groups so that the (rows x queries) distance block stays under ~256 MB.
QUERY_BLOCK_BYTES = 256 << 20
# Rows of PCA scores read per block when streaming them from the lake: 64k x 256 float32 = 64 MiB at most.
STREAM_BLOCK_ROWS = 65_536


@dataclass(frozen=True)
class KnnGraph:
    """k nearest other rows of every row, nearest first."""

    indices: np.ndarray  # (n, k) int64
    distances: np.ndarray  # (n, k) float32
    method: str  # "exact" or "nndescent"


def drop_self(indices: np.ndarray, distances: np.ndarray, k: int, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own index from its neighbour list (or the farthest one if absent); keep k."""
    rows = np.arange(len(indices)) if rows is None else rows
    is_self = indices == rows[:, None]
    # Where self is missing (exact duplicates can push it out), drop the last column instead.
    missing = ~is_self.any(axis=1)
    is_self[missing, -1] = True
    order = np.argsort(is_self, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(indices, order, axis=1), np.take_along_axis(distances, order, axis=1)


def exact_neighbors(data: np.ndarray, queries: np.ndarray, k: int, metric: str = "euclidean") -> tuple[np.ndarray, np.ndarray]:
    """k nearest rows of `data` for each query by brute force (sklearn), nearest first."""
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(data))
    model = NearestNeighbors(n_neighbors=k, algorithm="brute", metric=metric).fit(data)
    distances, indices = model.kneighbors(queries)
    return indices.astype(np.int64), distances.astype(np.float32)


def nndescent_index(data: np.ndarray, seed: int, metric: str = "euclidean", n_neighbors: int = NNDESCENT_NEIGHBORS) -> Any:
    """A seeded pynndescent index over `data` (its graph is built on construction)."""
    from pynndescent import NNDescent

    cache_compiled_kernels()
    return NNDescent(
        data,
        metric=metric,
        n_neighbors=min(n_neighbors, len(data) - 1),
        random_state=seed,
        n_jobs=os.cpu_count(),
        low_memory=True,
        verbose=False,
    )


def build_knn_graph(
    scores: np.ndarray,
    k: int = 10,
    *,
    exact: bool | None = None,
    exact_below: int = EXACT_BELOW,
    seed: int = 42,
    metric: str = "euclidean",
) -> KnnGraph:
    """The k-NN graph of the rows of `scores`, self excluded.

    `exact=None` chooses: brute force below `exact_below` rows, NN-descent above.
    """
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    n = len(scores)
    if n < 2:
        raise AnalysisError(f"a k-NN graph needs at least 2 rows; the table has {n}")
    k = min(k, n - 1)
    use_exact = n < exact_below if exact is None else exact
    if use_exact:
        indices, distances = exact_neighbors(scores, scores, k + 1, metric)
        method = "exact"
    else:
        index = nndescent_index(scores, seed, metric, max(NNDESCENT_NEIGHBORS, k + 1))
        indices, distances = index.neighbor_graph
        indices, distances = indices[:, : max(NNDESCENT_NEIGHBORS, k + 1)].astype(np.int64), distances.astype(np.float32)
        method = "nndescent"
    indices, distances = drop_self(indices, distances, k)
    return KnnGraph(indices, distances.astype(np.float32), method)


def recall_at_k(approximate: np.ndarray, exact: np.ndarray) -> float:
    """Mean fraction of each row's exact k neighbours that the approximate list found."""
    k = exact.shape[1]
    hits = [len(np.intersect1d(a[:k], e)) for a, e in zip(approximate, exact)]
    return float(np.sum(hits) / (k * len(exact)))


def brute_force_query(
    data: np.ndarray, sq_norms: np.ndarray, queries: np.ndarray, k: int, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact euclidean k nearest rows of `data` for each query (excluding row `exclude[i]` if >= 0).

    ||x-q||^2 = ||x||^2 - 2 x.q + ||q||^2 through one matrix product, a partial sort for
    candidates, then exact float64 distances on those few candidates to order them.
    """
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    n, m = len(data), len(queries)
    k = min(k, n - (0 if exclude is None else 1))
    margin = min(n, k + 1 + 16)  # room for self and float32 rounding near the k-th distance
    out_rows = np.empty((m, k), dtype=np.int64)
    out_dist = np.empty((m, k), dtype=np.float32)
    block = max(1, QUERY_BLOCK_BYTES // max(1, n * 4))
    for start in range(0, m, block):
        q = queries[start : start + block]
        approx = sq_norms[:, None] - 2.0 * (data @ q.T)  # (n, b); ||q||^2 does not change the order
        if margin < n:
            candidates = np.argpartition(approx, margin - 1, axis=0)[:margin].T
        else:
            candidates = np.broadcast_to(np.arange(n), (len(q), n))
        for j, cand in enumerate(candidates):
            i = start + j
            if exclude is not None and exclude[i] >= 0:
                cand = cand[cand != exclude[i]]
            diff = data[cand].astype(np.float64) - q[j]
            dist = np.sqrt(np.einsum("ij,ij->i", diff, diff))
            order = np.lexsort((cand, dist))[:k]
            out_rows[i] = cand[order]
            out_dist[i] = dist[order]
    return out_rows, out_dist


@dataclass
class NeighborIndex:
    """Nearest-neighbour queries on one key's PCA scores, held in memory (for the explorer's cache).

    Open once with `NeighborIndex.open(lake, key)`; `query` takes sample ids or rows of the
    analysis tables (the PCA table's row order) and returns (rows, distances).
    """

    key: str
    scores: np.ndarray  # (n, d) float32
    sample_ids: np.ndarray  # (n,) object
    stored_rows: np.ndarray | None = None  # (n, k) from analysis/knn/<key>, when present and current
    stored_distances: np.ndarray | None = None
    _sq_norms: np.ndarray = field(init=False, repr=False)
    _row_of: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        import pandas as pd

        self.scores = np.ascontiguousarray(self.scores, dtype=np.float32)
        self._sq_norms = np.einsum("ij,ij->i", self.scores, self.scores)
        self._row_of = pd.Index(np.asarray(self.sample_ids, dtype=object))

    @classmethod
    def open(cls, lake: Any, key: Any, components: int | None = None, use_stored: bool = True) -> NeighborIndex:
        """Load the scores (all or the first `components`) and, if current, the stored k-NN graph."""
        from .store import load_index_inputs

        return cls(**load_index_inputs(lake, key, components, use_stored))

    def __len__(self) -> int:
        return len(self.scores)

    def rows_of(self, sample_ids: Any) -> np.ndarray:
        """Rows of the given sample ids; raises AnalysisError naming the first unknown one."""
        ids = np.atleast_1d(np.asarray(sample_ids, dtype=object))
        rows = np.asarray(self._row_of.get_indexer(ids), dtype=np.int64)
        if (rows < 0).any():
            raise AnalysisError(f"{self.key}: sample id {ids[rows < 0][0]!r} is not in this table")
        return rows

    def _as_rows(self, items: Any) -> np.ndarray:
        items = np.atleast_1d(np.asarray(items, dtype=object))
        if items.size and all(isinstance(v, (int, np.integer)) for v in items):
            rows = items.astype(np.int64)
            if (rows < 0).any() or (rows >= len(self)).any():
                raise AnalysisError(f"{self.key}: row out of range 0..{len(self) - 1}")
            return rows
        return self.rows_of(items)

    def query(self, items: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """k nearest other rows of each given sample (ids or rows): (rows (m, k), distances (m, k)).

        Uses the stored graph when it holds at least k neighbours, else exact brute force.
        """
        rows = self._as_rows(items)
        if self.stored_rows is not None and self.stored_distances is not None and k <= self.stored_rows.shape[1]:
            return self.stored_rows[rows, :k], self.stored_distances[rows, :k]
        return brute_force_query(self.scores, self._sq_norms, self.scores[rows], k, exclude=rows)

    def query_vectors(self, scores: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """k nearest rows to new points given as PCA scores (see `project` for activations)."""
        scores = np.atleast_2d(np.asarray(scores, dtype=np.float32))[:, : self.scores.shape[1]]
        return brute_force_query(self.scores, self._sq_norms, scores, k)


def nearest_real_distance(
    scores: np.ndarray, is_real: np.ndarray, rows: np.ndarray, distances: np.ndarray, exact_below: int, seed: int
) -> np.ndarray:
    """Distance from each row to its nearest *other* real row.

    Rows whose neighbour list (`rows`, `distances`) already holds a real sample take its
    distance; the others are queried against an index of the real rows (exact below
    `exact_below` real rows, else NN-descent seeded with `seed`).
    """
    from .metrics import first_real_distance

    nearest = first_real_distance(rows, distances, is_real)
    missing = np.flatnonzero(np.isnan(nearest))
    real_rows = np.flatnonzero(is_real)
    if missing.size == 0 or real_rows.size == 0:
        return nearest
    if real_rows.size < exact_below:
        found, found_distances = exact_neighbors(scores[real_rows], scores[missing], min(2, real_rows.size))
    else:
        index = nndescent_index(scores[real_rows], seed)
        found, found_distances = index.query(scores[missing], k=2)
    found_rows = real_rows[found]
    not_self = found_rows != missing[:, None]
    has_other = not_self.any(axis=1)
    first = np.argmax(not_self, axis=1)
    values = found_distances[np.arange(len(missing)), first].astype(np.float32)
    values[~has_other] = np.nan
    nearest[missing] = values
    return nearest


# --------------------------------------------------------------------------- the lake read side


@dataclass(frozen=True)
class GraphRow:
    """One row of a stored k-NN graph (``analysis/knn/<key>``), nearest first."""

    ids: np.ndarray  # (k,) neighbour sample ids (the stored string dtype)
    rows: np.ndarray  # (k,) int64 neighbour rows in the key's tables
    distances: np.ndarray  # (k,) float32


def _neighbour_group(key: AnalysisKey | str, placed: bool) -> str:
    # Placed samples keep their nearest fitted rows in the columns the k-NN graph uses.
    return analysis_group("placed" if placed else "knn", key)


def stored_k(lake: Any, key: AnalysisKey | str, *, placed: bool = False) -> int:
    """How many neighbours per sample the stored k-NN graph of `key` holds (0 when there is none).

    With `placed`: how many nearest fitted rows each placed sample of `key` has stored.
    """
    shape = lake.shape(_neighbour_group(key, placed), "neighbor_id")
    return int(shape[1]) if shape and len(shape) == 2 else 0


def placed_row(lake: Any, key: AnalysisKey | str, sample_id: str) -> int | None:
    """The row of `sample_id` in ``analysis/placed/<key>`` (None when it is not placed there)."""
    group = analysis_group("placed", key)
    if lake.shape(group, "sample_id") is None:
        return None
    ids = lake.column(group, "sample_id", native=True)
    hits = np.flatnonzero(ids == sample_id)
    return int(hits[0]) if hits.size else None


def graph_row(lake: Any, key: AnalysisKey | str, row: int, *, placed: bool = False) -> GraphRow:
    """Row `row` of the stored k-NN graph of `key`: one chunk read per column.

    With `placed`: row `row` of ``analysis/placed/<key>`` (see `placed_row`), whose
    neighbours are fitted rows of the key (`rows` index ``analysis/pca/<key>``).
    """
    group, one = _neighbour_group(key, placed), slice(int(row), int(row) + 1)
    return GraphRow(
        ids=lake.column(group, "neighbor_id", one, native=True)[0],
        rows=np.asarray(lake.column(group, "neighbor_row", one)[0], dtype=np.int64),
        distances=np.asarray(lake.column(group, "distance", one)[0], dtype=np.float32),
    )


def streamed_neighbors(
    lake: Any, key: AnalysisKey | str, row: int, k: int, eligible: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest other rows to `row` by exact euclidean distance on the stored PCA scores of `key`.

    Returns (rows, distances) in the key's table rows, nearest first (ties by row). Only
    rows where `eligible` (a bool per table row) is true are candidates. The scores are
    streamed in chunk-aligned blocks (`STREAM_BLOCK_ROWS`), so memory stays bounded at
    any table size; float32 ranks a shortlist per block (~5x faster) and float64 decides
    within it.
    """
    group = analysis_group("pca", key)
    info = lake.array_info(group, "scores")
    if info is None:
        raise AnalysisError(f"{lake.path}: no PCA scores for {key}; run `python -m analysis pca` first")
    query = np.asarray(lake.column(group, "scores", slice(int(row), int(row) + 1))[0], dtype=np.float64)
    block = max(STREAM_BLOCK_ROWS // max(info.chunks[0], 1), 1) * info.chunks[0]
    best_rows = np.zeros(0, np.int64)
    best_d = np.zeros(0, np.float64)
    query32 = query.astype(np.float32)
    shortlist = 2 * k + 16
    for start in range(0, info.shape[0], block):
        chunk = np.asarray(lake.column(group, "scores", slice(start, start + block)), dtype=np.float32)
        diff = chunk - query32
        rough = np.einsum("ij,ij->i", diff, diff)
        rows = np.arange(start, start + len(chunk))
        keep = (rows != row) & np.isfinite(rough)
        if eligible is not None:
            keep &= eligible[rows]
        rows, rough = rows[keep], rough[keep]
        if len(rough) > shortlist:
            rows = rows[np.argpartition(rough, shortlist - 1)[:shortlist]]
        d = np.sqrt(np.maximum(((chunk[rows - start].astype(np.float64) - query) ** 2).sum(axis=1), 0.0))
        if len(d) > k:
            top = np.argpartition(d, k - 1)[:k]
            rows, d = rows[top], d[top]
        best_rows = np.concatenate([best_rows, rows])
        best_d = np.concatenate([best_d, d])
        if len(best_d) > k:
            top = np.argpartition(best_d, k - 1)[:k]
            best_rows, best_d = best_rows[top], best_d[top]
    order = np.lexsort((best_rows, best_d))
    return best_rows[order], best_d[order].astype(np.float32)


def score_distances(lake: Any, key: AnalysisKey | str, row: int, others: np.ndarray) -> np.ndarray:
    """Euclidean PCA-score distances from table row `row` to each of the table rows `others` (float32)."""
    wanted = np.concatenate([[int(row)], np.asarray(others, dtype=np.int64)])
    scores = np.asarray(lake.column(analysis_group("pca", key), "scores", wanted), dtype=np.float64)
    return np.sqrt(((scores[1:] - scores[0]) ** 2).sum(axis=1)).astype(np.float32)
