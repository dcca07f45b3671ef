"""Nearest-neighbour queries for the selected point.

Activation-space neighbours come from the stored k-NN graph (one row read per query);
for a k larger than the graph holds they are computed by brute force over the stored
PCA scores, streamed block by block so memory stays bounded. Both reads are the lake
read side of `analysis.neighbors` (the one the analysis package owns); this module maps
their table rows onto the embedding's rows and says where the neighbours came from.
Projection neighbours are a brute-force search in the plotted coordinates.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis import neighbors
from analysis.neighbors import graph_row, score_distances, streamed_neighbors

from .frames import EmbeddingFrame
from .session import LakeSession
from .views import nearest_in_plane


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
    return neighbors.stored_k(session.lake, key)


def activation_neighbours(session: LakeSession, ref: str, row: int, k: int) -> Neighbours:
    """The k nearest samples to embedding row `row` in activation space."""
    info = session.embedding(ref)
    frame = session.frame(ref)
    knn_group = session.group_for("knn", info.key)
    pca_group = session.group_for("pca", info.key)
    if knn_group:
        result = _from_graph(session, frame, ref, knn_group, row, k)
        if len(result) >= k or not pca_group:
            note = "" if len(result) >= k else f"the stored k-NN graph holds {stored_k(session, info.key)} neighbours per sample"
            return Neighbours(result.rows, result.distances, result.space, result.note or note)
    if pca_group and session.lake.shape(pca_group, "scores") is not None:
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
    stored = graph_row(session.lake, session.embedding(ref).key, table_row)
    ids, distances, table_rows = stored.ids, stored.distances, stored.rows
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
    table_row = int(session.table_rows(group, ref)[row])
    space = "activation (PCA scores, brute force)"
    if table_row < 0:
        return Neighbours(np.zeros(0, np.int64), np.zeros(0, np.float32), space, "this sample has no PCA scores")
    inverse = session.table_to_embedding(group, ref)  # only samples of the embedding can be shown
    rows, distances = streamed_neighbors(session.lake, session.embedding(ref).key, table_row, k, eligible=inverse >= 0)
    return Neighbours(inverse[rows], distances, space)


def activation_distances(session: LakeSession, ref: str, row: int, others: np.ndarray) -> np.ndarray | None:
    """PCA-space distances from `row` to each of `others` (None when the layer has no PCA scores)."""
    info = session.embedding(ref)
    group = session.group_for("pca", info.key)
    if not group or session.lake.shape(group, "scores") is None or len(others) == 0:
        return None
    table_rows = session.table_rows(group, ref)
    wanted = np.concatenate([[row], np.asarray(others, dtype=np.int64)])
    rows = table_rows[wanted]
    if (rows < 0).any():
        return None
    return score_distances(session.lake, info.key, int(rows[0]), rows[1:])
