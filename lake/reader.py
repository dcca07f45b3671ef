"""Reading a lake: only committed data, never a writer's work in progress."""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .schema import PROVENANCE_GROUP, SAMPLES_GROUP
from .store import check_lake, committed_nodes, lake_path


@dataclass(frozen=True)
class Lake:
    """A read-only view of a lake at its last commit."""

    path: Path

    @cached_property
    def _nodes(self) -> dict[str, dict[str, Any]]:
        return committed_nodes(check_lake(self.path))

    @cached_property
    def root(self) -> Any:
        import zarr

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return zarr.open_group(str(self.path), mode="r", use_consolidated=True)

    def has(self, group: str) -> bool:
        return group in self._nodes

    def groups(self, prefix: str = "") -> list[str]:
        """Committed group paths below `prefix`, e.g. groups('activations')."""
        return sorted(
            rel
            for rel, meta in self._nodes.items()
            if meta.get("node_type") == "group" and rel.startswith(prefix.rstrip("/") + "/" if prefix else "")
        )

    def dataset(self, group: str, chunks: Any = None) -> Any:
        """The group as a lazy xarray Dataset (what `xr.open_zarr(lake, group=...)` gives)."""
        import xarray as xr

        if not self.has(group):
            raise KeyError(f"{self.path}: no group {group!r} in this lake")
        kwargs = {} if chunks is None else {"chunks": chunks}
        return xr.open_zarr(str(self.path), group=group, consolidated=True, **kwargs)

    @property
    def num_samples(self) -> int:
        if not self.has(SAMPLES_GROUP):
            return 0
        return int(self._nodes[f"{SAMPLES_GROUP}/sample_id"]["shape"][0])

    def samples(self) -> Any:
        """The samples table as a Dataset (dimension `sample`; `image` plus label coordinates)."""
        return self.dataset(SAMPLES_GROUP)

    def column(self, group: str, name: str) -> np.ndarray:
        """One committed column read whole (fine for id/label columns, not for images)."""
        values = self.root[f"{group}/{name}"][:]
        return np.asarray(values, dtype=object) if values.dtype.kind in "OTU" else np.asarray(values)

    def sample_ids(self) -> np.ndarray:
        return self.column(SAMPLES_GROUP, "sample_id") if self.num_samples else np.array([], dtype=object)

    def images(self, rows: np.ndarray | list[int] | slice) -> np.ndarray:
        """Images (N, 64, 64, 3) uint8 at the given rows of the samples table."""
        array = self.root[f"{SAMPLES_GROUP}/image"]
        if isinstance(rows, slice):
            return np.asarray(array[rows])
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return np.zeros((0, *array.shape[1:]), dtype=np.uint8)
        return np.asarray(array.get_orthogonal_selection((rows,)))

    def provenance(self) -> list[dict[str, Any]]:
        """Every job's provenance record, oldest first."""
        records = [
            dict(meta.get("attributes", {}))
            for rel, meta in self._nodes.items()
            if rel.startswith(PROVENANCE_GROUP + "/") and rel.count("/") == 1
        ]
        return sorted(records, key=lambda r: (r.get("started", ""), r.get("run_id", "")))


def open_lake(path: str | os.PathLike[str]) -> Lake:
    """Open a lake for reading. Raises NotALakeError / SchemaVersionError with a one-line message."""
    lake = Lake(lake_path(path))
    check_lake(lake.path)
    return lake
