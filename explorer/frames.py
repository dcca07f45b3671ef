"""Embedding frames: the per-sample vectors of one embedding (coordinates, class, source, split, samples row, ids).

`load_frame` reads an embedding's fitted rows and appends the samples placed in it after
the fit; `EmbeddingFrame` keeps them aligned by embedding row and finds rows by id. Reads
go through `explorer.tables`; no Streamlit.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lake.layout import SAMPLES_GROUP, analysis_group

from .columns import or_unknown, take
from .lake_status import EmbeddingInfo
from .rows import MAX_SCANNED_IDS, HashIndex, factorize, factorize_both, first_row, hash_ids, row_uniform
from .tables import label_column, points, table_ids, table_sample_rows

# Ids -> their rows in `samples` (given the ids' hashes): the session's memoised join.
SamplesAligner = Callable[[np.ndarray, np.ndarray], np.ndarray]


class EmbeddingFrame:
    """The per-sample vectors of one embedding, aligned by embedding row.

    The ids are read lazily (`load_ids`): a first page needs only coordinates and codes,
    and reading plus hashing 1.28M id strings costs ~1 s. They are read once, on first
    use (drawn points, a click, an export) or by `LakeSession.warm`.
    """

    def __init__(
        self,
        info: EmbeddingInfo,
        coords: np.ndarray,
        load_ids: Callable[[], np.ndarray],
        class_id: np.ndarray,
        source_code: np.ndarray,
        sources: tuple[str, ...],
        split_code: np.ndarray,
        splits: tuple[str, ...],
        sample_row: np.ndarray,
        id_hash: np.ndarray | None = None,
        n_fitted: int | None = None,
    ):
        self.info = info
        self.coords = coords  # (n, dims) float32
        self.class_id = class_id  # (n,) int16
        self.source_code = source_code  # (n,) int32 into `sources`
        self.sources = sources
        self.split_code = split_code  # (n,) int32 into `splits`
        self.splits = splits
        self.sample_row = sample_row  # (n,) int64 row in `samples` (-1: not in the samples table)
        # Rows [0, n_fitted) are the embedding's fitted rows in its table order; the rows after
        # them are placed samples (`analysis/placed/<key>/<name>`), not part of the fit.
        self.n_fitted = len(coords) if n_fitted is None else int(n_fitted)
        self._load_ids = load_ids
        self._ids: np.ndarray | None = None
        self._id_hash = id_hash
        self._sorted: HashIndex | None = None  # built on the first lookup of many ids
        self._scanned: dict[str, int] = {}  # rows of ids found by a scan
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        return len(self.coords)

    @property
    def sample_id(self) -> np.ndarray:
        """(n,) id strings, read on first use."""
        if self._ids is None:
            with self._lock:
                if self._ids is None:
                    self._ids = self._load_ids()
        return self._ids

    @property
    def id_hash(self) -> np.ndarray:
        """(n,) uint64 hash of each id (for lookups by id), computed on first use."""
        if self._id_hash is None:
            ids = self.sample_id
            with self._lock:
                if self._id_hash is None:
                    self._id_hash = hash_ids(ids)
        return self._id_hash

    @property
    def n_placed(self) -> int:
        return self.size - self.n_fitted

    def is_placed(self, row: int) -> bool:
        """Whether embedding row `row` is a placed sample (projected into the stored embedding, not fitted)."""
        return self.n_fitted <= int(row) < self.size

    @property
    def sampling_uniform(self) -> np.ndarray:
        """A fixed uniform [0, 1) number per point for hash-threshold sampling (see `row_uniform`)."""
        return row_uniform(self.size)

    def rows_of(self, ids: list[str] | np.ndarray) -> np.ndarray:
        """Embedding rows of the given sample ids (-1 where absent)."""
        ids = np.asarray(list(ids), dtype=np.dtypes.StringDType())
        if ids.size == 0:
            return np.zeros(0, dtype=np.int64)
        if self._sorted is None and ids.size <= MAX_SCANNED_IDS:
            # A click needs one or a few ids: a scan (~15 ms each at 1.28M rows) beats
            # hashing every id (~0.6 s), which is left to lookups of many ids. Each rerun
            # asks again for the selected and manual ids, so their rows are remembered.
            if len(self._scanned) > MAX_SCANNED_IDS * 64:
                self._scanned.clear()
            found = []
            for i in ids:
                row = self._scanned.get(str(i))
                if row is None:
                    row = self._scanned[str(i)] = first_row(np.flatnonzero(self.sample_id == i))
                found.append(row)
            return np.array(found, dtype=np.int64)
        if self._sorted is None:
            self._sorted = HashIndex(self.sample_id, self.id_hash)
        return self._sorted.rows(ids)

    def source_is(self, name: str) -> np.ndarray:
        code = self.sources.index(name) if name in self.sources else -2
        return self.source_code == code


@dataclass(frozen=True)
class _Rows:
    """One table's points before they become a frame: fitted rows, or the placed ones appended to them."""

    coords: np.ndarray
    load_ids: Callable[[], np.ndarray]
    class_id: np.ndarray
    source: np.ndarray  # text
    split: np.ndarray  # text
    sample_row: np.ndarray
    id_hash: np.ndarray | None

    def subset(self, rows: np.ndarray) -> _Rows:
        if len(rows) == len(self.coords):
            return self
        load = self.load_ids
        return _Rows(self.coords[rows], lambda: load()[rows], self.class_id[rows], self.source[rows], self.split[rows],
                     self.sample_row[rows], None if self.id_hash is None else self.id_hash[rows])  # fmt: skip


def load_frame(lake: Any, info: EmbeddingInfo, align_to_samples: SamplesAligner) -> EmbeddingFrame:
    """The frame of embedding `info`: its fitted rows, then the samples placed in it after the fit."""
    fitted = _load_rows(lake, info.path, align_to_samples)
    placed = _placed_rows(lake, info, fitted.sample_row, align_to_samples)
    if placed is None:
        source_codes, sources = factorize(fitted.source)
        split_codes, splits = factorize(fitted.split)
        return EmbeddingFrame(info, fitted.coords, fitted.load_ids, fitted.class_id, source_codes, sources, split_codes, splits,
                              fitted.sample_row, fitted.id_hash)  # fmt: skip
    # Placed samples follow the fitted rows, so every fitted row keeps its index (and the
    # joins with the key's tables keep their prefix match).
    n = len(fitted.coords)
    fitted_ids, placed_ids = fitted.load_ids, placed.load_ids
    id_hash = None if fitted.id_hash is None else np.concatenate([fitted.id_hash, hash_ids(placed_ids())])
    source_codes, sources = factorize_both(fitted.source, placed.source)
    split_codes, splits = factorize_both(fitted.split, placed.split)
    return EmbeddingFrame(
        info,
        np.concatenate([fitted.coords, placed.coords]),
        lambda: np.concatenate([fitted_ids(), placed_ids()]),
        np.concatenate([fitted.class_id, placed.class_id]),
        source_codes,
        sources,
        split_codes,
        splits,
        np.concatenate([fitted.sample_row, placed.sample_row]),
        id_hash,
        n_fitted=n,
    )


def _load_rows(lake: Any, group: str, align_to_samples: SamplesAligner) -> _Rows:
    """The per-sample vectors of one table of points (an embedding, or its placed samples)."""
    coords = points(lake, group)
    n = len(coords)

    def load_ids() -> np.ndarray:
        return table_ids(lake, group)

    id_hash = None
    stored_rows = table_sample_rows(lake, group)  # written by the analysis package: no id join needed
    if stored_rows is not None:
        sample_row = stored_rows
    else:
        ids = load_ids()
        id_hash = hash_ids(ids)
        sample_row = align_to_samples(ids, id_hash)
        load_ids = lambda: ids  # noqa: E731 - already read

    def labels(name: str) -> np.ndarray | None:
        # The table's own copy of a label, else the samples table's, aligned by samples row.
        own = label_column(lake, group, name)
        if own is not None:
            return own
        column = label_column(lake, SAMPLES_GROUP, name)
        return None if column is None else take(column, sample_row)

    class_id = labels("class_id")
    if class_id is None:
        class_id = np.full(n, -1, np.int16)
    elif class_id.dtype.kind == "f":  # some ids were missing from the samples table
        class_id = np.where(np.isnan(class_id), -1, class_id).astype(np.int16)
    else:
        class_id = class_id.astype(np.int16)
    return _Rows(coords, load_ids, class_id, or_unknown(labels("source"), n), or_unknown(labels("split"), n), sample_row, id_hash)


def _placed_rows(lake: Any, info: EmbeddingInfo, fitted_sample_row: np.ndarray, align_to_samples: SamplesAligner) -> _Rows | None:
    """The samples placed in this embedding (not fitted), minus any that a later refit made fitted rows; None when none."""
    group = analysis_group("placed", info.key, info.name)
    shape = lake.shape(group, "embedding") if lake.has(group) else None
    if shape is None or len(shape) != 2 or shape[1] != info.dims or shape[0] == 0:
        return None
    placed = _load_rows(lake, group, align_to_samples)
    # One bool per samples row marks the fitted samples: O(n), no id join at 1.28M rows.
    fitted = np.zeros(max(lake.num_samples, 1), dtype=bool)
    fitted[fitted_sample_row[(fitted_sample_row >= 0) & (fitted_sample_row < len(fitted))]] = True
    rows = placed.sample_row
    keep = ~((rows >= 0) & fitted[np.clip(rows, 0, len(fitted) - 1)])
    return placed.subset(np.flatnonzero(keep)) if keep.any() else None
