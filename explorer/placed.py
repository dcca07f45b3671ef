"""Samples placed in an embedding after its fit: their lineage (parent links) and the neighbours placement stored.

Placed rows follow an embedding's fitted rows in its `EmbeddingFrame`; these readers
join them with ``lineage`` and ``analysis/placed/<key>[/<name>]``. No Streamlit.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lake.layout import analysis_group

from .frames import EmbeddingFrame
from .rows import align_rows
from .tables import has_placement_neighbours, lineage_at, lineage_ids, placement_neighbours


@dataclass(frozen=True)
class PlacedLineage:
    """Lineage of an embedding's placed rows: one entry per placed row, and the parent links to draw."""

    operation: np.ndarray  # (n_placed,) object: the edit that made each placed row ('' when the lineage lacks it)
    parent_ids: np.ndarray  # (n_placed,) object: comma-separated parent ids
    child_rows: np.ndarray  # (links,) int64 embedding row of the placed sample
    parent_rows: np.ndarray  # (links,) int64 embedding row of one of its parents (parents not in the embedding are left out)

    def placement(self, index: int) -> str:
        """The hover line of placed row `index` (0 = the first placed row): 'placed, not fitted · variations of <parent>'."""
        operation, parents = self.operation[index], self.parent_ids[index]
        return f"placed, not fitted · {operation or 'edit'} of {parents}" if parents else "placed, not fitted"


def placed_lineage(lake: Any, frame: EmbeddingFrame) -> PlacedLineage:
    """How each placed row of `frame` was made (``lineage``), and the embedding rows of its parents."""
    n = frame.n_placed
    operation, parents = np.full(n, "", dtype=object), np.full(n, "", dtype=object)
    empty = np.zeros(0, np.int64)
    ids = lineage_ids(lake) if n else None
    if ids is None:
        return PlacedLineage(operation, parents, empty, empty)
    at = align_rows(frame.sample_id[frame.n_fitted :], ids)
    found = at >= 0
    if not found.any():
        return PlacedLineage(operation, parents, empty, empty)
    operation[found], parents[found] = lineage_at(lake, at[found])
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
        if not has_placement_neighbours(lake, group):
            continue
        table_row = int(placed_table_rows(group)[index])
        if table_row < 0:
            continue
        pca = analysis_group("pca", info.key)
        stored = placement_neighbours(lake, group, table_row, with_pca_rows=lake.has(pca))
        ids, distances, table_rows = stored.ids, stored.distances, stored.pca_rows
        rows = np.full(len(ids), -1, dtype=np.int64)
        if table_rows is not None:
            # neighbor_row indexes the PCA table: trusted only where the id agrees (as for the k-NN graph).
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
