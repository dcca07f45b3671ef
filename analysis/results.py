"""Writing analysis results into the lake, and reading them back.

Every result group is written under a staging name inside one `LakeWriter` session and
moved to its final path only when complete, just before the commit, so a failed run
leaves the lake (and any previous result at that path) unchanged; see `StagedGroup`.
"""
from __future__ import annotations

import datetime as _dt
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import AnalysisError
from .keys import AnalysisKey

TRASH_DIR = ".dmd2viz-trash"

# Columns every per-sample analysis table carries, aligned with the PCA table's rows.
LABEL_COLUMNS = ("sample_id", "source", "class_id", "split", "sample_row")


def label_column_specs() -> tuple[Any, ...]:
    from lake import ColumnSpec
    from lake.schema import STRING

    return (
        ColumnSpec("sample_id", STRING, attrs={"description": "id of the sample (join key with samples)"}),
        ColumnSpec("source", STRING, attrs={"description": "'real' or 'generated'"}),
        ColumnSpec("class_id", "int16", attrs={"description": "ImageNet-1k class id"}),
        ColumnSpec("split", STRING, attrs={"description": "split from the samples table ('' when the sample is absent there)"}),
        ColumnSpec("sample_row", "int64", attrs={"description": "row of the sample in the samples table (-1 when absent)"}),
    )


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


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


class StagedGroup:
    """A result group written under a staging name, then swapped into place.

    Inside the writer session: `table()` / `group()` write to ``<final>.staging-<run_id>``;
    `publish()` moves any previous result at the final path to the lake's trash folder
    (outside the Zarr hierarchy), renames the staging group to the final path and
    commits, then deletes the trash. An exception before `publish()` makes the writer
    roll the staging group back and the old result is untouched. The only unsafe window
    is the two renames and the commit (milliseconds): a crash exactly there leaves the
    old result's metadata without its chunks, and rerunning the command repairs it.
    """

    def __init__(self, writer: Any, final_path: str):
        self.writer = writer
        self.final_path = final_path
        self.staging_path = f"{final_path}.staging-{writer.provenance.run_id}"

    def table(self, spec: Any) -> Any:
        return self.writer.table(replace(spec, path=self.staging_path))

    def group(self) -> Any:
        return self.writer.group(self.staging_path)

    def publish(self) -> None:
        root: Path = self.writer.path
        final_dir = root / self.final_path
        staging_dir = root / self.staging_path
        trash = root / TRASH_DIR
        shutil.rmtree(trash, ignore_errors=True)  # leftovers of a run killed after its commit
        if final_dir.exists():
            trash.mkdir(parents=True, exist_ok=True)
            os.rename(final_dir, trash / self.writer.provenance.run_id)
        os.rename(staging_dir, final_dir)
        added = self.writer.rows_added
        if self.staging_path in added:
            added[self.final_path] = added.pop(self.staging_path)
        self.writer.commit()
        shutil.rmtree(trash, ignore_errors=True)


def write_fixed(group: Any, name: str, values: np.ndarray, dims: tuple[str, ...], attrs: dict[str, Any] | None = None) -> None:
    """A small non-table array (a transform, per-class metrics) inside a result group."""
    values = np.asarray(values)
    kwargs: dict[str, Any] = {}
    if values.dtype.kind in "OUT":
        from zarr.core.dtype import VariableLengthUTF8

        values = values.astype(object)
        kwargs["dtype"] = VariableLengthUTF8()
    array = group.create_array(
        name,
        shape=values.shape,
        chunks=values.shape if values.size else None,
        dimension_names=dims,
        attributes=attrs or {},
        **({"dtype": values.dtype} if not kwargs else kwargs),
    )
    if values.size:
        array[...] = values


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

    def slice(self, start: int, stop: int) -> "LabelColumns":
        return LabelColumns(*(getattr(self, name)[start:stop] for name in LABEL_COLUMNS))

    def __len__(self) -> int:
        return len(self.sample_id)


def read_labels(lake: Any, group: str, start: int = 0, stop: int | None = None) -> LabelColumns:
    """The label columns of rows [start, stop) of a result table."""
    arrays = lake.root[group]
    stop = int(arrays["sample_id"].shape[0]) if stop is None else stop

    def read(name: str, dtype: Any) -> np.ndarray:
        return np.asarray(arrays[name][start:stop], dtype=dtype)

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
    return dict(lake.root[group].attrs) if lake.has(group) else {}


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
