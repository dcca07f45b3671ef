"""UMAP embeddings of PCA scores: fit (on everything or a balanced sample), chunked transform, quality.

Determinism: umap-learn with `random_state` runs single-threaded and reproducibly; the
fit sample is chosen by a seeded hash of the sample ids; the rest is transformed in
fixed row chunks (each chunk's result depends only on the model and that chunk), so
the same inputs and seed give the same coordinates on any scheduler.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .errors import AnalysisError
from .jit import cache_compiled_kernels
from .params import UMAPParams

# UMAPParams is declared in analysis.params (stdlib only, so the CLI reads its defaults); it
# stays importable from here, where the embedding code that takes it lives.
__all__ = ["MIN_ROWS", "TRANSFORM_ROWS", "TRUSTWORTHINESS_NEIGHBORS", "TRUSTWORTHINESS_SAMPLE", "UMAPParams", "check_metric",
           "fit_umap", "make_umap", "prepare_for_transform", "transform_rows", "trustworthiness"]

# Rows per transform task. Kept at 10,000: umap-learn picks 100 optimisation epochs for a
# transform of at most 10,000 rows (30 above), so every chunk gets the same treatment.
TRANSFORM_ROWS = 10000
TRUSTWORTHINESS_SAMPLE = 2000
TRUSTWORTHINESS_NEIGHBORS = 10
MIN_ROWS = 10


def make_umap(params: UMAPParams, n_rows: int, will_transform: bool = False) -> Any:
    import umap

    cache_compiled_kernels()

    if n_rows < MIN_ROWS:
        raise AnalysisError(f"UMAP needs at least {MIN_ROWS} rows; the table has {n_rows}")
    return umap.UMAP(
        n_components=params.n_components,
        n_neighbors=min(params.n_neighbors, n_rows - 1),
        min_dist=params.min_dist,
        metric=params.metric,
        random_state=params.seed,
        transform_seed=params.seed,
        n_jobs=1,  # what random_state implies anyway; saying so silences umap's warning
        # Below 4096 fitted rows umap-learn keeps no search index and transforms through a
        # Python-level pairwise loop (measured: ~60 s per 10,000 rows); NN-descent's index
        # makes the transform of the rest a fast index query.
        force_approximation_algorithm=will_transform,
        verbose=False,
    )


def fit_umap(scores: np.ndarray, params: UMAPParams, will_transform: bool = False) -> Any:
    """A UMAP model fitted on `scores` (its `embedding_` holds their coordinates).

    `will_transform`: the model will embed further rows (fit-on-sample mode).
    """
    model = make_umap(params, len(scores), will_transform)
    with warnings.catch_warnings():
        # Disconnected components in small or clustered data are expected; spectral
        # initialisation handles them, so the warning adds nothing for our users.
        warnings.filterwarnings("ignore", message=".*not fully connected.*")
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")
        model.fit(np.ascontiguousarray(scores, dtype=np.float32))
    return model


def check_metric(metric: str) -> None:
    """Raise AnalysisError unless umap-learn knows the metric by name."""
    from umap.distances import named_distances

    if metric not in named_distances:
        known = ", ".join(sorted(m for m in named_distances if "_" not in m)[:12])
        raise AnalysisError(f"--metric {metric!r}: not a UMAP metric; e.g. {known}")


def prepare_for_transform(model: Any) -> None:
    """Build the search index's query structures once, before tasks share the model across threads."""
    index = getattr(model, "_knn_search_index", None)
    if index is not None and hasattr(index, "prepare"):
        index.prepare()


def transform_rows(model: Any, scores: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Embed the rows of one chunk selected by `keep` with a fitted model (a Dask task)."""
    rows = np.ascontiguousarray(np.asarray(scores)[keep], dtype=np.float32)
    if len(rows) == 0:
        return np.zeros((0, model.n_components), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(model.transform(rows), dtype=np.float32)


def trustworthiness(original: np.ndarray, embedded: np.ndarray, n_neighbors: int = TRUSTWORTHINESS_NEIGHBORS) -> float:
    """sklearn's trustworthiness (1 = local neighbourhoods fully preserved)."""
    from sklearn.manifold import trustworthiness as sk_trustworthiness

    n = len(original)
    k = min(n_neighbors, max(1, (n - 1) // 2))
    if n < 4:
        return float("nan")
    return float(sk_trustworthiness(original, embedded, n_neighbors=k))
