import numpy as np
from sklearn.neighbors import NearestNeighbors

from conftest import KEY, NAME_2D, STORED_K
from explorer import queries
from explorer.data import LakeSession


def _expected(built, sample_index, k):
    """sklearn's neighbours of one sample (samples-table index) in the stored PCA space."""
    session = LakeSession(built.path)
    scores = np.asarray(session.lake.root[f"analysis/pca/{KEY}/scores"][:])
    ids = np.asarray(session.lake.root[f"analysis/pca/{KEY}/sample_id"][:]).astype(object)
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
    scores = np.asarray(session.lake.root[f"analysis/pca/{KEY}/scores"][:], dtype=np.float64)
    assert np.allclose(manual, np.sqrt(((scores[others] - scores[3]) ** 2).sum(axis=1)), atol=1e-5)
