"""Samples placed in an embedding after its fit: their lineage (parent links) and the neighbours placement stored.

Placed rows follow an embedding's fitted rows in its `EmbeddingFrame`; these readers
join them with ``lineage`` and ``analysis/placed/<key>[/<name>]``. No Streamlit.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lake.layout import LINEAGE_GROUP, analysis_group

from .frames import EmbeddingFrame
from .rows import align_rows
from .tables import read_native


@dataclass(frozen=True)
class PlacedLineage:
    """Lineage of an embedding's placed rows: one entry per placed row, and the parent links to draw."""

    operation: np.ndarray  # (n_placed,) object: the edit that made each placed row ('' when the lineage lacks it)
    parent_ids: np.ndarray  # (n_placed,) object: comma-separated parent ids
    child_rows: np.ndarray  # (links,) int64 embedding row of the placed sample
    parent_rows: np.ndarray  # (links,) int64 embedding row of one of its parents (parents not in the embedding are left out)


def placed_lineage(lake: Any, frame: EmbeddingFrame) -> PlacedLineage:
    """How each placed row of `frame` was made (``lineage``), and the embedding rows of its parents."""
    n = frame.n_placed
    operation, parents = np.full(n, "", dtype=object), np.full(n, "", dtype=object)
    empty = np.zeros(0, np.int64)
    if n == 0 or not lake.has(LINEAGE_GROUP):
        return PlacedLineage(operation, parents, empty, empty)
    lineage_ids = read_native(lake, LINEAGE_GROUP, "sample_id")
    at = align_rows(frame.sample_id[frame.n_fitted :], lineage_ids)
    found = at >= 0
    if not found.any():
        return PlacedLineage(operation, parents, empty, empty)
    operation[found] = np.asarray(lake.column(LINEAGE_GROUP, "operation", at[found]), dtype=object)
    parents[found] = np.asarray(lake.column(LINEAGE_GROUP, "parent_ids", at[found]), dtype=object)
    children, parent_list = [], []
    for i in np.flatnonzero(found):
        for parent in str(parents[i]).split(","):
            if parent.strip():
                children.append(frame.n_fitted + int(i))
                parent_list.append(parent.strip())
    parent_rows = frame.rows_of(parent_list) if parent_list else empty
    child_rows = np.asarray(children, dtype=np.int64)
    keep = parent_rows >= 0
    return PlacedLineage(operation, parents, child_rows[keep], parent_rows[keep])




def placed_neighbours(lake: Any, frame: EmbeddingFrame, row: int, placed_table_rows: Callable[[str], np.ndarray],
                      pca_to_embedding: Callable[[str], np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    """The stored neighbours of placed row `row` (embedding rows, distances), where placement stored them; else None.

    Placement may keep, per placed sample, the fitted samples it was placed by
    (`neighbor_id`, `distance` in `analysis/placed/<key>/<name>` or `.../<key>`).
    `placed_table_rows(group)`: each placed row's row in that table; `pca_to_embedding(group)`:
    the embedding row of each row of the key's PCA table.
    """
    info = frame.info
    index = int(row) - frame.n_fitted
    if index < 0:
        return None
    for group in (analysis_group("placed", info.key, info.name), analysis_group("placed", info.key)):
        if lake.shape(group, "neighbor_id") is None or lake.shape(group, "distance") is None:
            continue
        table_row = int(placed_table_rows(group)[index])
        if table_row < 0:
            continue
        one = slice(table_row, table_row + 1)
        ids = lake.column(group, "neighbor_id", one, native=True)[0]
        distances = np.asarray(lake.column(group, "distance", one)[0], dtype=np.float32)
        rows = np.full(len(ids), -1, dtype=np.int64)
        pca = analysis_group("pca", info.key)
        if lake.shape(group, "neighbor_row") is not None and lake.has(pca):
            # neighbor_row indexes the PCA table: trusted only where the id agrees (as for the k-NN graph).
            table_rows = np.asarray(lake.column(group, "neighbor_row", one)[0], dtype=np.int64)
            inverse = pca_to_embedding(pca)
            valid = (table_rows >= 0) & (table_rows < len(inverse))
            rows[valid] = inverse[table_rows[valid]]
            agree = rows >= 0
            agree[agree] = np.asarray(frame.sample_id[rows[agree]] == ids[agree], dtype=bool)
            rows[~agree] = -1
        if (rows < 0).any():
            rows[rows < 0] = frame.rows_of(ids[rows < 0])
        keep = (rows >= 0) & np.isfinite(distances)
        order = np.argsort(distances[keep], kind="stable")
        return rows[keep][order], distances[keep][order]
    return None
