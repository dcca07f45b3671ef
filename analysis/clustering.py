"""k-means over row blocks read on demand: seeded, out of core, independent of the block size.

Used for the clusters of a key's PCA scores (`steps.clusters`) and of the prompts' pooled
text embeddings (`analysis.prompts`). The rows never need to fit in memory at once:

1. *Initial centres*: scikit-learn's `KMeans` (k-means++, seeded, `INIT_RUNS` = 1 run, its own
   default for k-means++) on
   a subset of rows the caller chooses by a seeded hash of the row ids (`INIT_ROWS`, or
   more when k is large), so the start depends on the ids and the seed only.
2. *Lloyd iterations over every row*: each pass reads the rows block by block, assigns
   each row to its nearest centre and accumulates per-cluster sums (float64) and counts;
   the new centres are their means. A cluster left empty is moved to the row farthest
   from its centre (as scikit-learn does). It stops when no row changes cluster or the
   centres move less than `tol` x the data's mean variance (scikit-learn's rule), or after
   `max_iter` passes; the labels returned always belong to the centres returned.

Determinism whatever the block size: every number is computed per *segment* of
`SEGMENT_ROWS` rows counted from row 0 (a read block is a whole number of segments), and
segment results are combined in segment order (a segment's per-cluster sums come from its
rows grouped by cluster in row order). So the same rows, k and seed give bit-identical labels and centres for any
`block_rows`, on any machine with the same BLAS. Tables that fit in `CACHE_BYTES` are read
once and kept in memory (same segments, same results); larger ones are streamed each pass.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import AnalysisError

# The unit of computation (see the module docstring): results never depend on anything coarser.
SEGMENT_ROWS = 4096
# Rows of the seeded subset the initial centres are fitted on (at least 20 per cluster).
INIT_ROWS = 20000
INIT_PER_CLUSTER = 20
INIT_RUNS = 1
# Tables up to this size (float32) are read once and kept in memory across passes.
CACHE_BYTES = 256 << 20
# Rows read at once when streaming (rounded to whole segments).
DEFAULT_BLOCK_ROWS = 16 * SEGMENT_ROWS


@dataclass(frozen=True)
class RowSource:
    """Where k-means reads its rows: `block(start, stop)` and `take(rows)` give float32 (rows, features)."""

    n_rows: int
    n_features: int
    block: Callable[[int, int], np.ndarray]
    take: Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class KMeansResult:
    """Labels (int32 per row), centres (k, features) float64, and how the run went."""

    labels: np.ndarray
    centers: np.ndarray
    inertia: float  # sum of squared distances of the rows to their centres
    iterations: int  # Lloyd passes over every row
    converged: bool
    init_rows: int
    relocated: int  # times an empty cluster was moved to a far row
    sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def attrs(self) -> dict[str, Any]:
        """The run's figures as result attributes."""
        return {"n_clusters": int(len(self.centers)), "inertia": float(self.inertia), "iterations": self.iterations,
                "converged": self.converged, "init_rows": self.init_rows, "relocated_empty_clusters": self.relocated,
                "cluster_sizes": [int(s) for s in self.sizes]}


def init_size(n_rows: int, k: int) -> int:
    """Rows the initial centres are fitted on: `INIT_ROWS`, at least `INIT_PER_CLUSTER` per cluster, at most all."""
    return min(n_rows, max(INIT_ROWS, INIT_PER_CLUSTER * k))


def _segments(n_rows: int) -> list[tuple[int, int]]:
    return [(start, min(start + SEGMENT_ROWS, n_rows)) for start in range(0, n_rows, SEGMENT_ROWS)]


def _read_segments(source: RowSource, block_rows: int) -> Any:
    """Yield (start, stop, rows) per segment, reading `block_rows` (whole segments) at a time."""
    step = max(1, -(-block_rows // SEGMENT_ROWS)) * SEGMENT_ROWS
    for first in range(0, source.n_rows, step):
        last = min(first + step, source.n_rows)
        block = np.asarray(source.block(first, last), dtype=np.float32)
        for start in range(first, last, SEGMENT_ROWS):
            stop = min(start + SEGMENT_ROWS, last)
            yield start, stop, block[start - first : stop - first]


def _assign(rows: np.ndarray, x: np.ndarray, centers: np.ndarray, centers32: np.ndarray, half_norms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre of each row and the squared distance to it (float64).

    The choice uses |c|^2 / 2 - x.c in float32 (the row's own norm does not change which
    centre is nearest; one float32 product, as scikit-learn's loop on float32 data); the
    distance to the chosen centre is then computed directly in float64, free of the
    cancellation the expanded form has.
    """
    labels = np.argmin(half_norms[None, :] - rows @ centers32.T, axis=1).astype(np.int32)
    diff = x - centers[labels]
    return labels, np.einsum("ij,ij->i", diff, diff)


def initial_centers(sample: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k-means++ centres refined by Lloyd (scikit-learn `KMeans`, `INIT_RUNS` seeded runs) of the init subset."""
    from sklearn.cluster import KMeans

    with warnings.catch_warnings():
        # Fewer distinct rows than k: sklearn warns and leaves duplicate centres; the
        # Lloyd passes then relocate the empty ones, so the warning adds nothing.
        warnings.simplefilter("ignore")
        model = KMeans(n_clusters=k, init="k-means++", n_init=INIT_RUNS, random_state=seed).fit(sample.astype(np.float64))
    return np.asarray(model.cluster_centers_, dtype=np.float64)


def kmeans(source: RowSource, k: int, seed: int, init_rows: np.ndarray, *, block_rows: int | None = None,
           max_iter: int = 300, tol: float = 1e-4, progress: bool = False, desc: str = "k-means") -> KMeansResult:
    """k-means of every row of `source` into `k` clusters (see the module docstring).

    `init_rows`: the rows (sorted) of the seeded subset the initial centres come from.
    `block_rows` only sets how many rows are read at once; it never changes the result.
    """
    n = source.n_rows
    if not 1 <= k <= n:
        raise AnalysisError(f"k-means needs 1 <= k <= rows; got k={k} for {n} rows")
    sample = np.asarray(source.take(np.asarray(init_rows, dtype=np.int64)), dtype=np.float64)
    centers = initial_centers(sample, k, seed)
    threshold = tol * float(np.mean(np.var(sample, axis=0))) if len(sample) > 1 else 0.0
    cached: list[tuple[int, int, np.ndarray]] | None = None
    if n * source.n_features * 4 <= CACHE_BYTES:
        cached = list(_read_segments(source, n))

    def segments() -> Any:
        return iter(cached) if cached is not None else _read_segments(source, block_rows or DEFAULT_BLOCK_ROWS)

    from threadpoolctl import threadpool_limits
    from tqdm.auto import tqdm

    with threadpool_limits(1, user_api="blas"):
        # One BLAS thread, as scikit-learn's own Lloyd loop does: a segment's products are
        # small (4096 x features x k), where threads cost more than they bring (measured 14x
        # slower with 2 threads on a busy 2-core machine) and would make timings erratic.
        return _lloyd(source, k, centers, threshold, segments, sample_rows=len(sample), max_iter=max_iter,
                      progress=progress, desc=desc, tqdm=tqdm)


def _lloyd(source: RowSource, k: int, centers: np.ndarray, threshold: float, segments: Callable[[], Any], *, sample_rows: int,
           max_iter: int, progress: bool, desc: str, tqdm: Any) -> KMeansResult:
    """The Lloyd passes of `kmeans` from `centers` (see the module docstring)."""
    n = source.n_rows
    labels = np.full(n, -1, dtype=np.int32)
    iterations, converged, settled, relocated, inertia = 0, False, False, 0, 0.0
    bar = tqdm(total=max_iter, desc=desc, unit="pass", disable=not progress, leave=False)
    while True:
        centers32 = centers.astype(np.float32)
        half_norms = 0.5 * np.einsum("ij,ij->i", centers32, centers32)
        sums = np.zeros_like(centers)
        counts = np.zeros(k, dtype=np.int64)
        changed, inertia = 0, 0.0
        far_d, far_rows, far_x = np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros((0, source.n_features))
        for start, stop, rows in segments():
            rows = np.ascontiguousarray(rows, dtype=np.float32)
            x = rows.astype(np.float64)
            seg_labels, d2 = _assign(rows, x, centers, centers32, half_norms)
            changed += int(np.count_nonzero(seg_labels != labels[start:stop]))
            labels[start:stop] = seg_labels
            inertia += float(d2.sum())
            counts += np.bincount(seg_labels, minlength=k)
            # Per-cluster sums of this segment: rows grouped by cluster (stable), each group summed.
            order = np.argsort(seg_labels, kind="stable")
            present, firsts = np.unique(seg_labels[order], return_index=True)
            sums[present] += np.add.reduceat(x[order], firsts, axis=0)
            # Keep the k rows farthest from their centre so far (ties: the earlier row), for empty clusters.
            top = np.argpartition(-d2, k - 1)[:k] if len(d2) > k else np.arange(len(d2))
            far_d = np.concatenate([far_d, d2[top]])
            far_rows = np.concatenate([far_rows, top + start])
            far_x = np.concatenate([far_x, x[top]])
            keep = np.lexsort((far_rows, -far_d))[:k]
            far_d, far_rows, far_x = far_d[keep], far_rows[keep], far_x[keep]
        if changed == 0 or settled or iterations == max_iter:
            # `labels` were just assigned to `centers`, so they always belong together.
            converged = changed == 0 or settled
            break
        iterations += 1
        bar.update(1)
        new = centers.copy()
        filled = counts > 0
        new[filled] = sums[filled] / counts[filled, None]
        for slot, cluster in enumerate(np.flatnonzero(~filled)):
            if slot < len(far_x):
                new[cluster] = far_x[slot]
                relocated += 1
        # Centres that moved less than scikit-learn's tolerance have settled: one more pass assigns the rows to them.
        settled = float(((new - centers) ** 2).sum()) <= threshold and bool(filled.all())
        centers = new
    bar.close()
    return KMeansResult(labels=labels, centers=centers, inertia=inertia, iterations=iterations, converged=converged,
                        init_rows=sample_rows, relocated=relocated, sizes=np.bincount(labels, minlength=k))
