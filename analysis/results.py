"""Writing analysis results into the lake, and reading their labels back.

Every result group is written under a staging name inside one `LakeWriter` session and
swapped into its final path only when complete, just before the commit, so a failed run
leaves the lake (and any previous result at that path) unchanged; see
`lake.writer.StagedGroup` (re-exported here). The table specs are in `lake.layout`.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

import numpy as np

from lake.layout import LABEL_COLUMNS, label_column_specs
from lake.writer import StagedGroup
from lake.writer import write_array as write_fixed

from .errors import AnalysisError
from .keys import AnalysisKey

__all__ = ["LABEL_COLUMNS", "WRITE_ROWS", "LabelColumns", "StagedGroup", "base_attrs", "group_attrs", "label_column_specs", "now", "read_labels", "require_group", "to_attr", "write_fixed", "write_rows"]


def now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def to_attr(value: Any) -> Any:
    """A JSON-safe attribute value (numpy scalars and arrays become Python numbers and lists)."""
    if isinstance(value, dict):
        return {str(k): to_attr(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_attr(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        return to_attr(value.tolist())
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


@dataclass
class LabelColumns:
    """sample_id, source, class_id, split and sample_row of a result table's rows."""

    sample_id: np.ndarray
    source: np.ndarray
    class_id: np.ndarray
    split: np.ndarray
    sample_row: np.ndarray

    def as_columns(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in LABEL_COLUMNS}

    def slice(self, start: int, stop: int) -> LabelColumns:
        return LabelColumns(*(getattr(self, name)[start:stop] for name in LABEL_COLUMNS))

    def __len__(self) -> int:
        return len(self.sample_id)


def read_labels(lake: Any, group: str, start: int = 0, stop: int | None = None) -> LabelColumns:
    """The label columns of rows [start, stop) of a result table."""
    stop = int(lake.shape(group, "sample_id")[0]) if stop is None else stop

    def read(name: str, dtype: Any) -> np.ndarray:
        return np.asarray(lake.column(group, name, slice(start, stop)), dtype=dtype)

    return LabelColumns(
        sample_id=read("sample_id", object),
        source=read("source", object),
        class_id=read("class_id", np.int16),
        split=read("split", object),
        sample_row=read("sample_row", np.int64),
    )


def require_group(lake: Any, group: str, hint: str) -> None:
    if not lake.has(group):
        raise AnalysisError(f"{lake.path}: no {group}; {hint}")


def group_attrs(lake: Any, group: str) -> dict[str, Any]:
    return lake.attrs(group)


def base_attrs(key: AnalysisKey, run_id: str, analysis: str, parameters: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Attributes every result group carries: what it is, from which table, with what, by which run."""
    return to_attr(
        {
            "analysis": analysis,
            "key": key.name,
            "layer": key.layer,
            "sigma": key.sigma,
            "source_group": key.activations_group,
            "parameters": parameters,
            "run_id": run_id,
            "created": now(),
            **extra,
        }
    )


# Rows per appended block when copying per-sample results into the lake.
WRITE_ROWS = 65536


def write_rows(table: Any, labels: LabelColumns, values: dict[str, np.ndarray]) -> None:
    """Append per-sample `values` (aligned with `labels`) with the label columns, in blocks."""
    for start in range(0, len(labels), WRITE_ROWS):
        stop = min(start + WRITE_ROWS, len(labels))
        columns = labels.slice(start, stop).as_columns()
        columns.update({name: array[start:stop] for name, array in values.items()})
        table.append(columns)
