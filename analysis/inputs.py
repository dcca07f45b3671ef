"""Reading an activation table for one (layer, sigma) lazily, as a Dask array.

Nothing here loads the activation values: `ActivationTable.values` is a dask array
backed by the Zarr chunks, and the label columns are read one row range at a time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lake.layout import SAMPLES_GROUP

from .errors import AnalysisError
from .keys import AnalysisKey, available_sigmas, sigma_index

# Blocks of about this many bytes (one sigma's float32 values) per Dask task: big enough
# that task overhead is negligible, small enough that a few in flight per core stay far
# below the memory of a laptop.
TARGET_BLOCK_BYTES = 64 << 20


@dataclass
class ActivationTable:
    """One (layer, sigma) slice of ``activations/<layer>``: rows x channels, lazily."""

    key: AnalysisKey
    values: Any  # dask.array (rows, channel) float32, row-chunked
    dataset: Any  # the xarray Dataset of the group (lazy)
    channel: np.ndarray
    attrs: dict[str, Any]

    @property
    def num_rows(self) -> int:
        return int(self.values.shape[0])

    @property
    def num_features(self) -> int:
        return int(self.values.shape[1])

    def labels(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """sample_id, source and class_id of rows [start, stop) (only these rows are read)."""
        part = self.dataset.isel(sample=slice(start, stop))
        return {
            "sample_id": np.asarray(part["sample_id"].values, dtype=object),
            "source": np.asarray(part["source"].values, dtype=object),
            "class_id": np.asarray(part["class_id"].values).astype(np.int16),
        }


def block_rows_for(chunk_rows: int, num_features: int, target_bytes: int = TARGET_BLOCK_BYTES) -> int:
    """Rows per Dask block: a whole number of storage chunks, about `target_bytes` of float32."""
    per_chunk = max(1, chunk_rows) * num_features * 4
    return max(1, target_bytes // per_chunk) * max(1, chunk_rows)


def open_activations(lake: Any, key: AnalysisKey, block_rows: int | None = None) -> ActivationTable:
    """The activation table of `key` as a lazy (rows, channel) dask array.

    `block_rows` overrides the Dask block size (a multiple of the storage chunk is best).
    """
    group = key.activations_group
    if not lake.has(group):
        raise AnalysisError(f"{lake.path}: no group {group}")
    ds = lake.activations(key.layer)
    if "mean" not in ds:
        raise AnalysisError(f"{lake.path}: {group} has no 'mean' variable")
    sigmas = available_sigmas(lake, key.layer)
    index = sigma_index(sigmas, key.sigma)
    if index is None:
        raise AnalysisError(f"{lake.path}: {group} has no sigma {key.sigma:g}")
    mean = ds["mean"]
    values = mean.data[:, index, :]
    chunk_rows = int(mean.data.chunks[0][0]) if mean.data.chunks[0] else 1
    rows = block_rows or block_rows_for(chunk_rows, int(values.shape[1]))
    if rows != chunk_rows:
        values = values.rechunk({0: rows, 1: -1})
    channel = np.asarray(ds["channel"].values) if "channel" in ds.coords else np.arange(values.shape[1])
    return ActivationTable(key=key, values=values, dataset=ds, channel=channel, attrs=dict(ds.attrs))


def probed_count(lake: Any, key: AnalysisKey) -> int | None:
    """How many rows have `probed` set at this sigma (None when the table has no `probed` column).

    Together with the row count it tells whether the table changed since a PCA was made
    (ingest can fill in cells of existing rows without adding rows).
    """
    group = key.activations_group
    if not lake.has(f"{group}/probed"):
        return None
    index = sigma_index(available_sigmas(lake, key.layer), key.sigma)
    rows = lake.shape(group, "probed")[0]
    total, step = 0, 1 << 20
    for start in range(0, rows, step):
        total += int(np.count_nonzero(lake.column(group, "probed", slice(start, start + step), cols=index)))
    return total


@dataclass
class SampleLookup:
    """Join from sample ids to the samples table: its row and `split` (absent samples tolerated)."""

    index: Any  # pandas.Index of sample ids -> samples row
    split: np.ndarray  # object array, aligned with the samples table

    @classmethod
    def from_lake(cls, lake: Any) -> SampleLookup:
        import pandas as pd

        if lake.num_samples == 0:
            return cls(pd.Index([], dtype=object), np.array([], dtype=object))
        ids = lake.sample_ids()
        has_split = lake.shape(SAMPLES_GROUP, "split") is not None
        split = lake.column(SAMPLES_GROUP, "split") if has_split else np.full(len(ids), "", dtype=object)
        return cls(pd.Index(ids), np.asarray(split, dtype=object))

    def rows(self, sample_ids: np.ndarray) -> np.ndarray:
        """Row in the samples table of each id, -1 where the sample is not in the table."""
        if len(self.index) == 0:
            return np.full(len(sample_ids), -1, dtype=np.int64)
        return np.asarray(self.index.get_indexer(np.asarray(sample_ids, dtype=object)), dtype=np.int64)

    def splits(self, rows: np.ndarray) -> np.ndarray:
        """`split` of each row ('' where the sample is absent)."""
        out = np.full(len(rows), "", dtype=object)
        found = rows >= 0
        out[found] = self.split[rows[found]]
        return out
