"""Tables the researcher can download: the selection and the current filtered view."""
from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np

from .columns import NO_CLASS
from .frames import EmbeddingFrame

AXES = ("x", "y", "z")


def class_labels(class_id: np.ndarray, classes: Any) -> Any:
    """'1: goldfish' per row as a pandas Categorical (1000 strings, not one per row)."""
    import pandas as pd

    categories = [NO_CLASS] + [classes.label(i) for i in range(1000)]
    codes = np.clip(class_id.astype(np.int64) + 1, 0, 1000)
    return pd.Categorical.from_codes(codes, categories=categories)


def points_frame(frame: EmbeddingFrame, rows: np.ndarray, classes: Any, extra: Callable[[np.ndarray], dict[str, Any]] | None = None) -> Any:
    """One row per point: id, class, source, split, `extra`'s columns for these rows (the prompt columns of a
    lake with text-to-image samples: `prompts.export_columns`) and embedding coordinates."""
    import pandas as pd

    rows = np.asarray(rows, dtype=np.int64)
    table = pd.DataFrame(
        {
            "sample_id": pd.array(np.asarray(frame.sample_id[rows], dtype=object), dtype="string"),
            "class_id": frame.class_id[rows],
            "class": class_labels(frame.class_id[rows], classes),
            "source": pd.Categorical.from_codes(frame.source_code[rows], categories=list(frame.sources)),
            "split": pd.Categorical.from_codes(frame.split_code[rows], categories=list(frame.splits)),
        }
    )
    for name, values in (extra(rows) if extra is not None else {}).items():
        table[name] = values
    for axis in range(frame.coords.shape[1]):
        table[AXES[axis]] = frame.coords[rows, axis]
    return table


def selection_frame(
    frame: EmbeddingFrame,
    classes: Any,
    selected: int,
    neighbour_rows: np.ndarray,
    neighbour_distances: np.ndarray,
    neighbour_space: str,
    manual_rows: np.ndarray,
    manual_distances: np.ndarray | None,
    extra: Callable[[np.ndarray], dict[str, Any]] | None = None,
) -> Any:
    """The selected point, its k-NN and the manual neighbours, one row each, with distances."""
    import pandas as pd

    selected_rows = np.array([selected], dtype=np.int64)
    neighbour_rows = np.asarray(neighbour_rows, dtype=np.int64)
    manual_rows = np.asarray(manual_rows, dtype=np.int64)
    rows = np.concatenate([selected_rows, neighbour_rows, manual_rows])
    table = points_frame(frame, rows, classes, extra)
    table.insert(0, "role", ["selected"] + ["knn"] * len(neighbour_rows) + ["manual"] * len(manual_rows))
    table.insert(1, "rank", np.concatenate([[0], np.arange(1, len(neighbour_rows) + 1), np.arange(1, len(manual_rows) + 1)]))
    manual_d = np.full(len(manual_rows), np.nan) if manual_distances is None else np.asarray(manual_distances, np.float64)
    table["distance"] = np.concatenate([[0.0], np.asarray(neighbour_distances, np.float64), manual_d])
    table["distance_space"] = ["", *([neighbour_space] * len(neighbour_rows)), *(["activation (PCA scores)"] * len(manual_rows))]
    if manual_distances is None:
        table.loc[table["role"] == "manual", "distance_space"] = ""
    coords = frame.coords[rows].astype(np.float64)
    table["projection_distance"] = np.sqrt(((coords - coords[0]) ** 2).sum(axis=1))
    return pd.DataFrame(table)


def to_csv(table: Any) -> bytes:
    return table.to_csv(index=False).encode("utf-8")


def to_parquet(table: Any) -> bytes:
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False, engine="pyarrow")
    return buffer.getvalue()
