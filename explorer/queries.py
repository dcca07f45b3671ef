"""Nearest-neighbour queries for the selected point.

Activation-space neighbours come from the stored k-NN graph (`analysis/knn/<key>`, one
row read per query); for a k larger than the graph holds they are computed by brute
force over the stored PCA scores (`analysis/pca/<key>/scores`), streamed block by block
so memory stays bounded. Projection neighbours are a brute-force search in the plotted
coordinates.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import KNN_PREFIX, PCA_PREFIX, EmbeddingFrame, LakeSession
from .views import nearest_in_plane

# Rows of PCA scores read per block in brute-force search: 64k x 256 float32 = 64 MiB at most.
_BLOCK_ROWS = 65_536


@dataclass(frozen=True)
class Neighbours:
    """Neighbours of one point: embedding rows (nearest first), distances, and where they came from."""

    rows: np.ndarray  # int64 embedding rows
    distances: np.ndarray  # float32
    space: str  # "activation (stored k-NN graph)", "activation (PCA scores, brute force)", "projection"
    note: str = ""

    def __len__(self) -> int:
        return len(self.rows)


def stored_k(session: LakeSession, key: str) -> int:
    """How many neighbours the stored k-NN graph holds per sample (0 when there is none)."""
    group = session.group_for(KNN_PREFIX, key)
    return int(session.lake.root[f"{group}/neighbor_id"].shape[1]) if group else 0


def activation_neighbours(session: LakeSession, ref: str, row: int, k: int) -> Neighbours:
    """The k nearest samples to embedding row `row` in activation space."""
    info = session.embedding(ref)
    frame = session.frame(ref)
    knn_group = session.group_for(KNN_PREFIX, info.key)
    pca_group = session.group_for(PCA_PREFIX, info.key)
    if knn_group:
        result = _from_graph(session, frame, ref, knn_group, row, k)
        if len(result) >= k or not pca_group:
            note = "" if len(result) >= k else f"the stored k-NN graph holds {stored_k(session, info.key)} neighbours per sample"
            return Neighbours(result.rows, result.distances, result.space, result.note or note)
    if pca_group and session.lake.has(f"{pca_group}/scores"):
        return _brute_force_pca(session, frame, ref, pca_group, row, k)
    rows, distances = nearest_in_plane(frame.coords, row, k)
    return Neighbours(rows, distances, "projection", "no k-NN graph or PCA scores for this layer: showing neighbours in the projection")


def projection_neighbours(frame: EmbeddingFrame, row: int, k: int) -> Neighbours:
    """The k nearest points in the embedding's own coordinates (2D or 3D)."""
    rows, distances = nearest_in_plane(frame.coords, row, k)
    return Neighbours(rows, distances, "projection")


def _from_graph(session: LakeSession, frame: EmbeddingFrame, ref: str, group: str, row: int, k: int) -> Neighbours:
    table_row = int(session.table_rows(group, ref)[row])
    if table_row < 0:
        return Neighbours(np.zeros(0, np.int64), np.zeros(0, np.float32), "activation (stored k-NN graph)", "this sample is not in the k-NN graph")
    root = session.lake.root
    ids = np.asarray(root[f"{group}/neighbor_id"][table_row])
    distances = np.asarray(root[f"{group}/distance"][table_row], dtype=np.float32)
    table_rows = np.asarray(root[f"{group}/neighbor_row"][table_row], dtype=np.int64)
    # neighbor_row indexes the k-NN table; trust it only where it agrees with neighbor_id.
    inverse = session.table_to_embedding(group, ref)
    valid = (table_rows >= 0) & (table_rows < len(inverse))
    rows = np.where(valid, inverse[np.clip(table_rows, 0, len(inverse) - 1)], -1)
    agree = rows >= 0
    agree[agree] = np.asarray(frame.sample_id[rows[agree]] == ids[agree], dtype=bool)
    if not agree.all():
        rows = np.where(agree, rows, frame.rows_of(ids))
    keep = (rows >= 0) & (rows != row) & np.isfinite(distances)
    rows, distances = rows[keep], distances[keep]
    order = np.argsort(distances, kind="stable")[:k]
    return Neighbours(rows[order], distances[order], "activation (stored k-NN graph)")


def _brute_force_pca(session: LakeSession, frame: EmbeddingFrame, ref: str, group: str, row: int, k: int) -> Neighbours:
    scores = session.lake.root[f"{group}/scores"]
    table_row = int(session.table_rows(group, ref)[row])
    space = "activation (PCA scores, brute force)"
    if table_row < 0:
        return Neighbours(np.zeros(0, np.int64), np.zeros(0, np.float32), space, "this sample has no PCA scores")
    inverse = session.table_to_embedding(group, ref)
    query = np.asarray(scores[table_row], dtype=np.float64)
    block = max(_BLOCK_ROWS // max(int(scores.chunks[0]), 1), 1) * int(scores.chunks[0])
    best_rows = np.zeros(0, np.int64)
    best_d = np.zeros(0, np.float64)
    query32 = query.astype(np.float32)
    shortlist = 2 * k + 16  # float32 ranks a shortlist (~5x faster); float64 decides within it
    for start in range(0, int(scores.shape[0]), block):
        chunk = np.asarray(scores[start : start + block], dtype=np.float32)
        diff = chunk - query32
        rough = np.einsum("ij,ij->i", diff, diff)
        rows = np.arange(start, start + len(chunk))
        eligible = (inverse[rows] >= 0) & (rows != table_row) & np.isfinite(rough)
        rows, rough = rows[eligible], rough[eligible]
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
    return Neighbours(inverse[best_rows[order]], best_d[order].astype(np.float32), space)


def activation_distances(session: LakeSession, ref: str, row: int, others: np.ndarray) -> np.ndarray | None:
    """PCA-space distances from `row` to each of `others` (None when the layer has no PCA scores)."""
    info = session.embedding(ref)
    group = session.group_for(PCA_PREFIX, info.key)
    if not group or not session.lake.has(f"{group}/scores") or len(others) == 0:
        return None
    table_rows = session.table_rows(group, ref)
    wanted = np.concatenate([[row], np.asarray(others, dtype=np.int64)])
    rows = table_rows[wanted]
    if (rows < 0).any():
        return None
    scores = np.asarray(session.lake.root[f"{group}/scores"].get_orthogonal_selection((rows,)), dtype=np.float64)
    return np.sqrt(((scores[1:] - scores[0]) ** 2).sum(axis=1)).astype(np.float32)
