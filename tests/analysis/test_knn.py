"""k-NN graphs (exact and NN-descent) and interactive neighbour queries, on data read from a lake."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from analysis import AnalysisError, NeighborIndex, project, query, recall_at_k, run_knn
from analysis.neighbors import brute_force_query, drop_self

from tests.analysis.conftest import build_lake, synthetic_table

KEY = "enc.8x8_block2@sigma2"
QUIET = {"log": lambda _: None, "progress": False}


def _exact(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.neighbors import NearestNeighbors

    distances, indices = NearestNeighbors(n_neighbors=k + 1).fit(scores).kneighbors(scores)
    return indices[:, 1:], distances[:, 1:]


def test_exact_graph_matches_brute_force_and_excludes_self(lake: Path) -> None:
    outcome = run_knn(lake, "bottleneck", 2, k=7, pca_dim=10, **QUIET)
    ds = xr.open_zarr(lake, group=f"analysis/knn/{KEY}").load()
    scores = xr.open_zarr(lake, group=f"analysis/pca/{KEY}")["scores"].values
    assert outcome.summary["method"] == "exact" and ds.attrs["k"] == 7 and ds.sizes["k"] == 7
    expected_rows, expected_distances = _exact(scores, 7)
    rows = ds["neighbor_row"].values
    assert (rows != np.arange(len(rows))[:, None]).all()
    assert recall_at_k(rows, expected_rows) > 0.999
    np.testing.assert_allclose(ds["distance"].values, expected_distances, rtol=1e-4, atol=1e-4)
    assert (np.diff(ds["distance"].values, axis=1) >= 0).all()
    ids = ds["sample_id"].values
    assert (ds["neighbor_id"].values == ids[rows]).all()


def test_nndescent_graph_recall_at_10_on_a_lake(tmp_path: Path) -> None:
    table = synthetic_table(n_real=1800, n_generated=1200, n_classes=12, n_channel=32, sigmas=(2.0,), nan_rows=0, seed=3)
    lake = build_lake(tmp_path / "lake", table, samples=False, rows_per_chunk=512)
    outcome = run_knn(lake, "bottleneck", 2, k=10, exact_below=1000, pca_dim=16, **QUIET)
    assert outcome.summary["method"] == "nndescent"

    graph = xr.open_zarr(lake, group=f"analysis/knn/{KEY}")
    scores = xr.open_zarr(lake, group=f"analysis/pca/{KEY}")["scores"].values
    truth, _ = _exact(scores, 10)
    stored = graph["neighbor_row"].values
    assert recall_at_k(stored, truth) >= 0.95
    assert graph.attrs["recall_estimate"] >= 0.9 and graph.attrs["recall_sample"] == 500
    # Seeded: a forced rerun builds the same graph.
    run_knn(lake, "bottleneck", 2, k=10, exact_below=1000, pca_dim=16, force=True, **QUIET)
    again = xr.open_zarr(lake, group=f"analysis/knn/{KEY}")["neighbor_row"].values
    np.testing.assert_array_equal(again, stored)


def test_neighbor_index_queries(lake: Path, table) -> None:
    run_knn(lake, "bottleneck", 2, k=5, pca_dim=10, **QUIET)
    index = NeighborIndex.open(lake, KEY)
    scores = xr.open_zarr(lake, group=f"analysis/pca/{KEY}")["scores"].values
    ids = index.sample_ids
    assert index.stored_rows is not None and len(index) == len(scores)

    # Within the stored depth: the stored graph; by id or by row alike.
    rows_by_id, d_by_id = index.query([ids[3], ids[10]], k=5)
    rows_by_row, _ = index.query([3, 10], k=5)
    np.testing.assert_array_equal(rows_by_id, rows_by_row)
    # Deeper than stored: exact brute force, consistent with the stored prefix.
    deep_rows, deep_d = index.query([ids[3], ids[10]], k=12)
    truth, truth_d = _exact(scores, 12)
    np.testing.assert_array_equal(deep_rows, truth[[3, 10]])
    np.testing.assert_allclose(deep_d, truth_d[[3, 10]], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(deep_d[:, :5], d_by_id, rtol=1e-5, atol=1e-5)

    # A new point: project raw activations, find the sample they came from at distance ~0.
    values = table.values[:, 1, :]
    valid = ~np.isnan(values).any(axis=1)
    row = 17
    vector = project(lake, KEY, values[valid][row : row + 1])
    found, distances = index.query_vectors(vector, k=3)
    assert found[0, 0] == row and distances[0, 0] < 1e-3

    with pytest.raises(AnalysisError, match="not-a-sample"):
        index.query(["not-a-sample"], k=3)


def test_brute_force_query_handles_duplicates_and_self() -> None:
    data = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [3.0, 0.0]], dtype=np.float32)
    norms = (data**2).sum(axis=1)
    rows, distances = brute_force_query(data, norms, data[[0]], k=2, exclude=np.array([0]))
    assert rows.tolist() == [[1, 2]] and distances.tolist() == [[0.0, 1.0]]
    # A duplicate listed before self: self is still the one removed.
    indices = np.array([[1, 0, 2]])
    kept, _ = drop_self(indices, np.zeros((1, 3), dtype=np.float32), 2, rows=np.array([0]))
    assert kept.tolist() == [[1, 2]]


def test_query_command_lists_neighbours(lake: Path, table) -> None:
    run_knn(lake, "bottleneck", 2, k=5, pca_dim=10, **QUIET)
    target = str(table.sample_ids[0])
    neighbours = query(lake, [target], "bottleneck", 2, k=4, log=lambda _: None)
    assert [n.rank for n in neighbours] == [1, 2, 3, 4]
    assert all(n.query == target and n.sample_id != target for n in neighbours)
    # Class clusters are well separated: neighbours share the class.
    assert {n.class_id for n in neighbours} == {int(table.class_id[0])}
