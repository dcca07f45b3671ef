"""Per-sample columns: what a colourable column is (`ColumnInfo`) and how stored values become the explorer's.

Numbers stay numbers; bools and text of any storage become one text type; rows absent
from a table read as NaN, '' or -1. Plain numpy: no lake, no Streamlit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lake.layout import analysis_prefix

# Where a column comes from (`ColumnInfo.group`): the details panel tells compare metrics by it.
COMPARE_PREFIX = analysis_prefix("compare")

# How a sample without an ImageNet class (class_id -1: a JPEG without labels, a text-to-image
# sample whose prompt names no class) reads where a class name would.
NO_CLASS = "no class"


@dataclass(frozen=True)
class ColumnInfo:
    """A per-sample column the points can be coloured by."""

    ref: str  # "<table>.<name>", e.g. "samples.seed" or "compare.real_fraction"
    group: str
    name: str
    numeric: bool

    @property
    def label(self) -> str:
        table, _, name = self.ref.rpartition(".")  # a table may hold dots (a key), an array name never
        return f"{name} ({table})"

def take(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """values[rows] with NaN / '' / -1 where rows is -1."""
    safe = np.clip(rows, 0, max(len(values) - 1, 0))
    if len(values) == 0:
        out = np.zeros(len(rows), dtype=values.dtype if values.dtype.kind != "T" else object)
    else:
        out = values[safe]
    missing = rows < 0
    if missing.any():
        if out.dtype.kind == "f":
            out = out.copy()
            out[missing] = np.nan
        elif out.dtype.kind in "iub":
            out = out.astype(np.float64)
            out[missing] = np.nan
        else:
            out = out.copy()
            out[missing] = ""
    return out


def categorical_or_numeric(values: np.ndarray) -> np.ndarray:
    """Numbers stay numbers; bools and strings of any storage (bytes, object, StringDType) become StringDType text.

    One text type downstream means colouring, the 3D view, the details panel and exports
    never meet a None, bytes or a bool where they sort or format categories.
    """
    values = np.asarray(values)
    if values.dtype.kind in "iuf":
        return values
    if values.dtype.kind == "b":
        return np.where(values, "true", "false").astype(np.dtypes.StringDType())
    if values.dtype.kind == "T":
        return values
    if values.dtype.kind == "U":
        return values.astype(np.dtypes.StringDType())
    text = [_text(v) for v in values.tolist()]
    return np.array(text, dtype=np.dtypes.StringDType()) if text else np.zeros(0, np.dtypes.StringDType())


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):  # None / NaN: missing
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def or_unknown(values: np.ndarray | None, n: int) -> np.ndarray:
    """`values`, or n times "unknown" when the table has no such column."""
    if values is None:
        return np.full(n, "unknown", dtype=np.dtypes.StringDType())
    return values
