"""Reading stored analysis results back from the lake (the read side of results.py)."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from .errors import AnalysisError
from .keys import AnalysisKey, parse_key
from .pca import PCAModel


def as_lake(lake: Any) -> Any:
    """A fresh read view of the lake (accepts a path or a `Lake`); always sees the last commit."""
    from lake import LakeError, open_lake

    path = lake.path if hasattr(lake, "path") and hasattr(lake, "dataset") else lake
    try:
        return open_lake(os.fspath(path))
    except LakeError as exc:
        raise AnalysisError(str(exc)) from None


def as_key(key: Any) -> AnalysisKey:
    return key if isinstance(key, AnalysisKey) else parse_key(str(key))


def require_pca(lake: Any, key: AnalysisKey) -> None:
    if not lake.has(key.pca_group):
        raise AnalysisError(
            f"{lake.path}: no PCA for {key.name}; run `python -m analysis pca --lake {lake.path} --layer {key.layer} --sigma {key.sigma:g}` first"
        )


def load_pca_model(lake: Any, key: Any) -> PCAModel:
    """The fitted standardise-and-project transform stored in ``analysis/pca/<key>``."""
    lake, key = as_lake(lake), as_key(key)
    require_pca(lake, key)
    attrs = lake.attrs(key.pca_group)

    def read(name: str) -> np.ndarray:
        return np.asarray(lake.column(key.pca_group, name), dtype=np.float64)

    return PCAModel(
        mean=read("mean"),
        scale=read("scale"),
        components=read("components"),
        explained_variance=read("explained_variance"),
        explained_variance_ratio=read("explained_variance_ratio"),
        n_samples=int(attrs.get("n_rows", 0)),
    )


def project(lake: Any, key: Any, activations: np.ndarray) -> np.ndarray:
    """PCA scores (n, component) of new activation rows (n, channel) with the stored transform."""
    return load_pca_model(lake, key).transform(activations)


def pca_scores(lake: Any, key: AnalysisKey | str, components: int | None = None, block_rows: int | None = None) -> Any:
    """The stored scores as a lazy (rows, component) dask array."""
    key = as_key(key)
    require_pca(lake, key)
    scores = lake.result("pca", key)["scores"].data
    if components is not None:
        scores = scores[:, :components]
    if block_rows:
        scores = scores.rechunk({0: block_rows})
    return scores


def load_scores(lake: Any, key: AnalysisKey | str, components: int | None = None) -> np.ndarray:
    """The stored scores read whole, float32 (n x components; 1.28M x 50 is 256 MB)."""
    key = as_key(key)
    require_pca(lake, key)
    width = lake.shape(key.pca_group, "scores")[1]
    stop = width if components is None else min(components, width)
    return np.ascontiguousarray(np.asarray(lake.column(key.pca_group, "scores", cols=slice(0, stop)), dtype=np.float32))


def pca_run_id(lake: Any, key: AnalysisKey) -> str | None:
    return lake.attrs(key.pca_group).get("run_id") if lake.has(key.pca_group) else None


def is_current(lake: Any, group: str, key: AnalysisKey) -> bool:
    """Whether a derived result was computed from the PCA now stored for its key."""
    if not lake.has(group):
        return False
    return lake.attrs(group).get("pca_run_id") == pca_run_id(lake, key)


def load_index_inputs(lake: Any, key: Any, components: int | None, use_stored: bool) -> dict[str, Any]:
    """What `NeighborIndex` holds: scores, ids and (when current) the stored k-NN graph."""
    lake, key = as_lake(lake), as_key(key)
    scores = load_scores(lake, key, components)
    ids = lake.column(key.pca_group, "sample_id")
    inputs: dict[str, Any] = {"key": key.name, "scores": scores, "sample_ids": ids}
    stored_dims = lake.attrs(key.knn_group).get("components") if lake.has(key.knn_group) else None
    if use_stored and is_current(lake, key.knn_group, key) and stored_dims == scores.shape[1]:
        inputs["stored_rows"], inputs["stored_distances"] = stored_neighbours(lake, key)
    return inputs


def stored_neighbours(lake: Any, key: AnalysisKey, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The stored k-NN graph's neighbour rows and distances (the first `k` columns, or all)."""
    cols = None if k is None else slice(0, k)
    rows = np.asarray(lake.column(key.knn_group, "neighbor_row", cols=cols), dtype=np.int64)
    distances = np.asarray(lake.column(key.knn_group, "distance", cols=cols), dtype=np.float32)
    return rows, distances
