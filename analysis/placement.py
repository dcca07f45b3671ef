"""Placing new samples on a stored map: PCA projection, then the embedding's own neighbour weighting.

Pure functions (arrays in, arrays out); the lake reads and writes are in
``analysis/steps/place.py``. Nothing here needs a fitted UMAP object: a lake never
stores or loads a pickled model (opening a lake must never execute code), so a sample
is placed from stored arrays only:

1. its activations are projected through the key's stored PCA transform
   (`PCAModel.transform`: mean, scale, components);
2. its k nearest *fitted* rows in PCA space are found exactly (k and the metric are the
   embedding's own ``n_neighbors`` and ``metric``);
3. each neighbour gets UMAP's fuzzy membership weight ``exp(-max(0, d - rho) / sigma)``
   with the query's rho and sigma from umap-learn's own `smooth_knn_dist`, at the
   local connectivity of UMAP's fit (1: rho = the distance to the nearest fitted row,
   which gets weight 1, the rest decay from there);
4. the sample lands at the weighted mean of those neighbours' stored coordinates, as
   umap-learn's ``transform`` initialises new points (`init_graph_transform`; a query
   identical to a fitted row lands on it).

Two choices were made by measurement (``benchmarks/bench_place.py`` on the demo lake,
docs/analysis.md "Placing new samples"). umap's ``transform`` itself weights with local
connectivity 0 (rho = 0: nearly flat weights over the k neighbours, which pulls a point
toward the middle of its neighbourhood); the fit's weights (1) landed closer to where a
refit puts held-out samples among their neighbours (2.8 vs 3.6 spacings) and closer to
fitted rows' own coordinates in leave-one-out (2.2 vs 3.0), also ahead of the trivial
"nearest neighbour" baseline (3.1, 2.3). umap's short optimisation on top
(`refine_placement`) made it worse (4.0) and makes a point's position depend on the
other points placed in the same run (its epoch schedule is normalised by the batch's
strongest edge, negative samples share one random stream), which would break
"appending only new samples gives the same coordinates as placing them all at once";
so there is none. Both variants stay here for the benchmark.

Quality is measured as a *relative displacement*: the median distance between where a
sample was placed and where a reference puts it, divided by the median nearest-neighbour
distance of the reference map (1.0 = off by about one typical neighbour spacing).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import AnalysisError
from .jit import cache_compiled_kernels
from .neighbors import brute_force_query, drop_self, exact_neighbors

# What placed groups record as their method (attrs `method`).
METHOD = "umap-membership-weighted-mean"
METHOD_DESCRIPTION = (
    "project through the stored PCA; k = the embedding's n_neighbors nearest fitted rows in PCA space (exact, "
    "the embedding's metric); UMAP membership weights exp(-max(0, d - rho) / sigma) with rho, sigma from "
    "umap.umap_.smooth_knn_dist (local connectivity 1, as UMAP's fit); weighted mean of the neighbours' stored "
    "coordinates (how umap's transform initialises new points), no optimisation epochs; no pickled model"
)
# The local connectivity of the membership weights (see `membership_weights`; chosen by measurement).
LOCAL_CONNECTIVITY = 1.0
# Rows of fitted samples used for the leave-one-out check stored with every placed embedding.
CHECK_ROWS = 500
# Rows whose nearest-neighbour distance in a map sets its typical spacing.
SPACING_ROWS = 2000


@dataclass(frozen=True)
class Neighbourhood:
    """The k nearest fitted rows of each query, nearest first: rows (m, k) int64, distances (m, k) float32."""

    rows: np.ndarray
    distances: np.ndarray

    def first(self, k: int) -> Neighbourhood:
        """The k nearest of each (the lists are sorted, so a prefix is the smaller neighbourhood)."""
        return Neighbourhood(self.rows[:, :k], self.distances[:, :k])


def nearest_fitted(fitted: np.ndarray, queries: np.ndarray, k: int, metric: str = "euclidean",
                   exclude: np.ndarray | None = None) -> Neighbourhood:
    """The k nearest rows of `fitted` for each query, exactly (`exclude[i]`: a row query i must skip, -1 none).

    Euclidean goes through `neighbors.brute_force_query` (one matrix product, float64
    distances on the shortlist); other metrics through sklearn's brute force.
    """
    fitted = np.ascontiguousarray(fitted, dtype=np.float32)
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    k = min(k, len(fitted) - (0 if exclude is None else 1))
    if k < 1:
        raise AnalysisError(f"placement needs at least one fitted row to place against; there are {len(fitted)}")
    if metric == "euclidean":
        sq_norms = np.einsum("ij,ij->i", fitted, fitted)
        rows, distances = brute_force_query(fitted, sq_norms, queries, k, exclude=exclude)
        return Neighbourhood(rows, distances)
    try:
        rows, distances = exact_neighbors(fitted, queries, k + (0 if exclude is None else 1), metric)
    except ValueError as exc:
        raise AnalysisError(f"metric {metric!r}: exact neighbour search cannot use it ({exc})") from None
    if exclude is not None:
        rows, distances = drop_self(rows, distances, k, np.asarray(exclude, dtype=np.int64))
    return Neighbourhood(rows, distances.astype(np.float32))


def membership_weights(distances: np.ndarray, local_connectivity: float = LOCAL_CONNECTIVITY) -> np.ndarray:
    """UMAP's membership strength of each (query, neighbour) pair: ``exp(-max(0, d - rho) / sigma)``.

    rho and sigma per query come from `umap.umap_.smooth_knn_dist` with k = the number of
    neighbours, the weights from `compute_membership_strengths` (bipartite: a zero
    distance is a weight of 1, not a self-loop to drop). `local_connectivity` 1 is what
    UMAP's fit uses (rho = the distance to the nearest neighbour, which gets weight 1);
    0 is what umap's ``transform`` passes (``max(0, 1 - 1)``: rho = 0).
    """
    from umap import umap_

    distances = np.ascontiguousarray(distances, dtype=np.float32)
    m, k = distances.shape
    smooth_knn_dist = _interpreted(umap_.smooth_knn_dist)
    compute_membership_strengths = _interpreted(umap_.compute_membership_strengths)
    sigmas, rhos = smooth_knn_dist(distances, float(k), local_connectivity=float(local_connectivity))
    indices = np.tile(np.arange(k, dtype=np.int64), (m, 1))  # any non-negative index: only the values are kept
    _, _, values, _ = compute_membership_strengths(indices, distances, sigmas, rhos, bipartite=True)
    return np.asarray(values, dtype=np.float32).reshape(m, k)


def _interpreted(function: Any) -> Any:
    """umap-learn's own code of a numba function, run as plain Python (its `py_func`).

    umap-learn does not cache these compilations, so every placing process would pay them
    again (measured: ~6 s of CPU, 25 s wall on a loaded 2-core machine, for a job placing
    8 samples), while interpreted they take ~0.4 ms per query. Always interpreted, never
    switching by batch size, because the compiled version (fastmath) differs in the last
    bits and a sample's coordinates must not depend on how many were placed with it.
    """
    return getattr(function, "py_func", function)


def weighted_mean_placement(neighbourhood: Neighbourhood, weights: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Each query at the membership-weighted mean of its neighbours' coordinates (m, dim) float32.

    Vectorised `umap.umap_.init_graph_transform`: a query at distance 0 from a fitted
    row (weight exactly 1 under transform's weights) lands on it (the lowest row among
    several, as the library's CSR order does); a query without weight is NaN.
    """
    rows, weights = neighbourhood.rows, np.asarray(weights, dtype=np.float32)
    coords = np.asarray(coords, dtype=np.float32)
    total = weights.sum(axis=1, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        # float32 throughout, term by term in neighbour order, as the library accumulates
        out = np.zeros((len(rows), coords.shape[1]), dtype=np.float32)
        for j in range(rows.shape[1]):
            out += (weights[:, j] / total)[:, None] * coords[rows[:, j]]
    exact = neighbourhood.distances == 0.0
    snapped = exact.any(axis=1)
    if snapped.any():
        first = np.where(exact, rows, np.iinfo(np.int64).max).min(axis=1)
        out[snapped] = coords[first[snapped]]
    out[total == 0] = np.nan
    return out


def refine_placement(initial: np.ndarray, coords: np.ndarray, neighbourhood: Neighbourhood, weights: np.ndarray,
                     min_dist: float, seed: int, n_epochs: int | None = None) -> np.ndarray:
    """umap-learn's transform optimisation on top of `initial`: the fitted points stay, the placed ones move.

    The same call, schedule and constants as ``UMAP.transform`` (100 epochs up to 10,000
    queries, else 30; learning rate 1/4; 5 negative samples; a, b from `find_ab_params`
    with spread 1), driven by the same membership weights. Used by the benchmark.
    """
    from umap.layouts import optimize_layout_euclidean
    from umap.umap_ import find_ab_params, make_epochs_per_sample

    cache_compiled_kernels()

    m, k = neighbourhood.rows.shape
    n_epochs = n_epochs or (100 if m <= 10000 else 30)
    head = np.repeat(np.arange(m, dtype=np.int32), k)
    tail = neighbourhood.rows.reshape(-1).astype(np.int32)
    weight = np.asarray(weights, dtype=np.float32).reshape(-1).copy()
    weight[weight < weight.max() / float(n_epochs)] = 0.0  # what transform prunes
    keep = weight > 0
    head, tail, weight = head[keep], tail[keep], weight[keep]
    a, b = find_ab_params(1.0, min_dist)
    rng_state = np.random.RandomState(seed).randint(np.iinfo(np.int32).min + 1, np.iinfo(np.int32).max - 1, 3).astype(np.int64)
    embedding = np.array(initial, dtype=np.float32, copy=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(optimize_layout_euclidean(
            embedding, np.asarray(coords, dtype=np.float32).copy(), head, tail, n_epochs, len(coords),
            make_epochs_per_sample(weight, n_epochs), a, b, rng_state, 1.0, 1.0 / 4.0, 5.0, False,
        ), dtype=np.float32)


def place(fitted_scores: np.ndarray, coords: np.ndarray, queries: np.ndarray, n_neighbors: int,
          metric: str = "euclidean", exclude: np.ndarray | None = None,
          neighbourhood: Neighbourhood | None = None, local_connectivity: float = LOCAL_CONNECTIVITY) -> np.ndarray:
    """Coordinates (m, dim) of `queries` (PCA scores) in the map `coords` of the fitted rows `fitted_scores`.

    `neighbourhood`: the queries' neighbours when already found (at least `n_neighbors` per query).
    With ``local_connectivity=0`` this is exactly umap's ``transform`` before its epochs.
    """
    if neighbourhood is None:
        neighbourhood = nearest_fitted(fitted_scores, queries, n_neighbors, metric, exclude)
    near = neighbourhood.first(n_neighbors)
    return weighted_mean_placement(near, membership_weights(near.distances, local_connectivity), coords)


def nearest_neighbour_placement(neighbourhood: Neighbourhood, coords: np.ndarray) -> np.ndarray:
    """The trivial baseline: each query on its nearest fitted row."""
    return np.asarray(coords, dtype=np.float32)[neighbourhood.rows[:, 0]]


# --------------------------------------------------------------------------- measuring a placement


@dataclass(frozen=True)
class Similarity:
    """x -> scale * (x - source_mean) @ rotation + target_mean (orthogonal Procrustes with a uniform scale)."""

    rotation: np.ndarray
    scale: float
    source_mean: np.ndarray
    target_mean: np.ndarray

    def apply(self, points: np.ndarray) -> np.ndarray:
        return (self.scale * (np.asarray(points, dtype=np.float64) - self.source_mean) @ self.rotation + self.target_mean)


def procrustes_fit(source: np.ndarray, target: np.ndarray) -> Similarity:
    """The rotation (reflections allowed), uniform scale and shift that best map `source` onto `target` rows.

    Two UMAP runs of the same data agree only up to such a transform, so one map is
    aligned to the other on their shared rows before points are compared.
    """
    from scipy.linalg import orthogonal_procrustes

    source, target = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    a, b = source - source_mean, target - target_mean
    rotation, singular_sum = orthogonal_procrustes(a, b)
    norm = float((a * a).sum())
    scale = float(singular_sum / norm) if norm > 0 else 1.0
    return Similarity(rotation, scale, source_mean, target_mean)


def map_spacing(coords: np.ndarray, rows: int = SPACING_ROWS, seed: int = 0) -> float:
    """The median distance from a point of the map to its nearest other point (on a seeded sample of rows)."""
    coords = np.ascontiguousarray(coords, dtype=np.float32)
    coords = coords[np.isfinite(coords).all(axis=1)]
    if len(coords) < 2:
        return float("nan")
    from scipy.spatial import cKDTree

    pick = np.random.default_rng(seed).choice(len(coords), min(rows, len(coords)), replace=False)
    # A k-d tree: maps have 2 or 3 axes, where it answers in microseconds what a brute-force
    # scan of a million-row map would take a minute for. k=2: the point itself, then its nearest other.
    distances, _ = cKDTree(coords.astype(np.float64)).query(coords[pick].astype(np.float64), k=2)
    return float(np.median(distances[:, 1]))


def relative_displacement(placed: np.ndarray, reference: np.ndarray, spacing: float) -> float:
    """Median distance between placed and reference positions of the same samples, over the map's spacing."""
    offsets = np.linalg.norm(np.asarray(placed, dtype=np.float64) - np.asarray(reference, dtype=np.float64), axis=1)
    return float(np.median(offsets) / spacing) if spacing > 0 else float("nan")


def check_rows(n_fitted: int, seed: int, rows: int = CHECK_ROWS) -> np.ndarray:
    """The fitted rows a leave-one-out check places (a seeded sample, sorted)."""
    return np.sort(np.random.default_rng(seed).choice(n_fitted, min(rows, n_fitted), replace=False))


@dataclass(frozen=True)
class LeaveOneOut:
    """Fitted rows placed as if new, against their own stored coordinates (relative displacements)."""

    placed: float  # this module's placement
    nearest_neighbour: float  # the trivial baseline, same rows
    rows: int


def leave_one_out(fitted_scores: np.ndarray, coords: np.ndarray, n_neighbors: int, metric: str,
                  rows: np.ndarray) -> LeaveOneOut:
    """Place fitted `rows` as if new (each without itself among its neighbours) and measure how far
    they land from their own stored coordinates, relative to the map's spacing; with the baseline."""
    rows = np.asarray(rows, dtype=np.int64)
    near = nearest_fitted(fitted_scores, fitted_scores[rows], n_neighbors, metric, exclude=rows)
    placed = place(fitted_scores, coords, fitted_scores[rows], n_neighbors, neighbourhood=near)
    own, spacing = np.asarray(coords)[rows], map_spacing(coords)
    return LeaveOneOut(relative_displacement(placed, own, spacing),
                       relative_displacement(nearest_neighbour_placement(near, coords), own, spacing), int(len(rows)))
