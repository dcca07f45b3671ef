"""The comparison metrics of a key (``analysis/compare/<key>``) as the Real vs generated page shows them.

Overall metrics come from the group's attributes, per-class metrics from its 1-D arrays on
the `class` dimension, labelled by `class` (or `class_id`). No Streamlit.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .columns import categorical_or_numeric
from .tables import read_native


def compare_summary(lake: Any, group: str | None, classes: Any) -> tuple[dict[str, Any], Any]:
    """Overall metrics (attributes) and the per-class metrics table of compare group `group` (None: empty)."""
    import pandas as pd

    if group is None:
        return {}, pd.DataFrame()
    attrs = lake.attrs(group)
    overall = {k: v for k, v in attrs.items() if isinstance(v, (int, float, str, bool))}
    if isinstance(attrs.get("parameters"), dict):  # k, max_per_set, ...: what the metrics mean depends on them
        overall.update({f"parameters.{k}": v for k, v in attrs["parameters"].items() if isinstance(v, (int, float, str, bool))})
    columns: dict[str, np.ndarray] = {}
    for array in lake.arrays(group):
        if array.ndim == 1 and array.dims and array.dims[0] == "class":
            columns[array.name] = read_native(lake, group, array.name)
    if not columns:
        return overall, pd.DataFrame()
    table = pd.DataFrame({name: categorical_or_numeric(values) if values.dtype.kind not in "iuf" else values for name, values in columns.items()})
    id_column = next((c for c in ("class", "class_id") if c in table), None)
    if id_column is not None:
        ids = table.pop(id_column).astype(int)
        table.pop("class_label") if "class_label" in table else None  # the analysis job's copy of the label below
        # The analysis job prefixes per-class metrics with `class_` (class_precision, ...).
        table = table.rename(columns={c: c.removeprefix("class_") for c in table if c.startswith("class_") and c.removeprefix("class_") not in table})
        table.insert(0, "class", [classes.label(int(i)) if 0 <= i < 1000 else str(i) for i in ids])
        table.insert(0, "class_id", ids)
    first = [c for c in _PER_CLASS_ORDER if c in table]
    return overall, table[first + [c for c in table if c not in first]]


# Per-class table columns in reading order: who, how many, then the metrics in the order the analysis job names them.
_PER_CLASS_ORDER = ("class_id", "class", "n_real", "n_generated", "frechet_distance", "precision", "recall", "density", "coverage")


