import subprocess
import sys

import numpy as np
from sklearn.neighbors import NearestNeighbors

from analysis.neighbors import NeighborIndex, graph_row, score_distances, stored_k, streamed_neighbors
from conftest import KEY, NAME_2D, STORED_K
from explorer import queries
from explorer.session import LakeSession
from lake import open_lake
from lake.layout import parse_key


def _expected(built, sample_index, k):
    """sklearn's neighbours of one sample (samples-table index) in the stored PCA space."""
    session = LakeSession(built.path)
    scores = session.lake.column(parse_key(KEY).pca_group, "scores")
    ids = session.lake.column(parse_key(KEY).pca_group, "sample_id")
    query_row = int(np.flatnonzero(ids == built.sample_ids[sample_index])[0])
    distance, index = NearestNeighbors(n_neighbors=k + 1).fit(scores).kneighbors(scores[query_row : query_row + 1])
    return ids[index[0, 1:]].tolist(), distance[0, 1:]


def test_stored_graph_neighbours_match_sklearn(small_lake):
    session = LakeSession(small_lake.path)
    ref = f"{KEY}/{NAME_2D}"
    frame = session.frame(ref)
    result = queries.activation_neighbours(session, ref, 17, 5)
    assert result.space.startswith("activation (stored")
    ids, distances = _expected(small_lake, 17, 5)
    assert frame.sample_id[result.rows].tolist() == ids
    assert np.allclose(result.distances, distances, atol=1e-4)


def test_large_k_is_brute_forced_over_pca_scores_in_a_shuffled_lake(shuffled_lake):
    session = LakeSession(shuffled_lake.path)
    ref = f"{KEY}/{NAME_2D}"
    frame = session.frame(ref)
    k = STORED_K + 7
    row = 11
    sample_index = int(frame.sample_row[row])
    result = queries.activation_neighbours(session, ref, row, k)
    assert result.space.startswith("activation (PCA")
    ids, distances = _expected(shuffled_lake, sample_index, k)
    assert frame.sample_id[result.rows].tolist() == ids
    assert np.allclose(result.distances, distances, atol=1e-4)
    graph = queries.activation_neighbours(session, ref, row, 4)
    assert frame.sample_id[graph.rows].tolist() == ids[:4]


def test_projection_neighbours_and_manual_distances(small_lake):
    session = LakeSession(small_lake.path)
    ref = f"{KEY}/{NAME_2D}"
    frame = session.frame(ref)
    result = queries.projection_neighbours(frame, 3, 6)
    d = np.sqrt(((frame.coords - frame.coords[3]) ** 2).sum(axis=1))
    d[3] = np.inf
    assert result.rows.tolist() == np.argsort(d, kind="stable")[:6].tolist()
    others = np.array([10, 200])
    manual = queries.activation_distances(session, ref, 3, others)
    scores = np.asarray(session.lake.column(parse_key(KEY).pca_group, "scores"), dtype=np.float64)
    assert np.allclose(manual, np.sqrt(((scores[others] - scores[3]) ** 2).sum(axis=1)), atol=1e-5)


def test_the_lake_read_side_agrees_with_the_in_memory_index_and_the_stored_graph(shuffled_lake):
    """analysis.neighbors reads one query from the lake; it answers what NeighborIndex answers in memory."""
    lake = open_lake(shuffled_lake.path)
    key = parse_key(KEY)
    scores = lake.column(key.pca_group, "scores")
    ids = lake.column(key.pca_group, "sample_id")
    index = NeighborIndex(key=KEY, scores=scores, sample_ids=ids)
    k = STORED_K + 5
    for row in (0, 7, len(ids) - 1):
        rows, distances = streamed_neighbors(lake, key, row, k)
        expected_rows, expected_distances = index.query([row], k=k)
        assert rows.tolist() == expected_rows[0].tolist() and row not in rows.tolist()
        np.testing.assert_allclose(distances, expected_distances[0], rtol=1e-5)
        np.testing.assert_allclose(score_distances(lake, key, row, rows), distances, rtol=1e-5)
    # Ineligible rows (samples the embedding does not show) are never returned.
    eligible = np.arange(len(ids)) % 3 != 0
    rows, _ = streamed_neighbors(lake, key, 7, k, eligible=eligible)
    assert len(rows) == k and eligible[rows].all()
    # The stored graph's row, read one row at a time, is the stored table's row.
    assert stored_k(lake, KEY) == STORED_K
    stored = lake.result("knn", key)
    one = graph_row(lake, key, 4)
    assert one.ids.tolist() == stored["neighbor_id"].values[4].tolist()
    np.testing.assert_array_equal(one.rows, stored["neighbor_row"].values[4])
    np.testing.assert_array_equal(one.distances, stored["distance"].values[4])
    assert stored_k(lake, "no.such_layer@sigma1") == 0


def test_importing_the_neighbour_read_side_loads_no_dask_or_torch():
    code = "import sys, analysis.neighbors, explorer.queries; print(sorted(m for m in ('dask', 'torch', 'sklearn', 'pynndescent') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
