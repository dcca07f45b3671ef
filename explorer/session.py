"""`LakeSession`: a read-only, lazily-filled view of one commit of a lake, shared by every app session.

The explorer holds, per embedding, only small per-sample vectors (an `EmbeddingFrame`:
coordinates, class codes, a 64-bit hash of each id, the row of each sample in the samples
table) and the ids themselves; images, activations, PCA scores and k-NN rows are read on
demand, a few rows at a time. The session memoises every join once per commit and is the
pages' one door to the lake: its accessors read typed tables (`explorer.tables`). Plain
Python + numpy, testable without Streamlit; the app caches one session per (lake, commit).
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lake.layout import LABEL_COLUMNS, SAMPLES_GROUP, analysis_group

from .columns import ColumnInfo, categorical_or_numeric, take
from .compare_summary import compare_summary
from .frames import EmbeddingFrame, load_frame
from .lake_status import EmbeddingInfo, list_embeddings
from .placed import PlacedLineage, placed_lineage, placed_neighbours
from .rows import MAX_SCANNED_IDS, HashIndex, align_rows, first_row, hash_ids, same_rows
from .tables import (
    JointEmbedding,
    PromptMapTable,
    ScheduleSteps,
    T2ISample,
    activation_clusters,
    has_activation_clusters,
    has_prompt_map,
    load_joint,
    load_schedules,
    prompt_clusters,
    prompt_map,
    read_native,
    read_t2i_sample,
    sample_record,
    sample_sources,
    t2i_ids,
    t2i_prompt_text,
    table_ids,
    table_length,
    table_sample_rows,
)


class LakeSession:
    """A read-only, lazily-filled view of one commit of a lake, shared by all app sessions.

    Thread-safe: Streamlit runs sessions in threads, so each memoised item is computed
    once under a lock.
    """

    def __init__(self, path: str | os.PathLike[str]):
        from lake import imagenet_classes, open_lake

        self.path = Path(path)
        self.lake = open_lake(path)
        self.classes = imagenet_classes()
        self.embeddings = list_embeddings(self.lake)
        self._memo: dict[Any, Any] = {}
        self._lock = threading.Lock()
        self._locks: dict[Any, threading.Lock] = {}

    def memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        """`compute()` once per key for the life of this session (i.e. of this commit of the lake)."""
        with self._lock:
            if key in self._memo:
                return self._memo[key]
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._memo:
                value = compute()
                with self._lock:
                    self._memo[key] = value
        return self._memo[key]

    # --- embeddings -------------------------------------------------------------
    def embedding(self, ref: str) -> EmbeddingInfo:
        for info in self.embeddings:
            if info.ref == ref:
                return info
        raise KeyError(ref)

    def frame(self, ref: str) -> EmbeddingFrame:
        return self.memo(("frame", ref), lambda: load_frame(self.lake, self.embedding(ref), self._align_to_samples))

    def _samples_ids(self) -> np.ndarray:
        return self.memo("samples_ids", lambda: table_ids(self.lake, SAMPLES_GROUP))

    def _samples_hash(self) -> np.ndarray:
        return self.memo("samples_hash", lambda: hash_ids(self._samples_ids()))

    def _align_to_samples(self, ids: np.ndarray, id_hash: np.ndarray) -> np.ndarray:
        return align_rows(ids, self._samples_ids(), self._samples_hash, id_hash)

    def warm(self, ref: str) -> threading.Thread:
        """Precompute, in a background thread, the one-off joins a first click or colour change needs.

        Joining a 1.28M-row analysis table by id reads its id column (~0.6 s); doing it while
        the researcher looks at the first page keeps the first click interactive.
        """

        def work() -> None:
            try:
                info = self.embedding(ref)
                frame = self.frame(ref)
                frame.sample_id  # noqa: B018 - reads the ids once, for clicks and exports
                for kind in ("knn", "pca", "compare"):
                    group = self.group_for(kind, info.key)
                    if group:
                        self.table_rows(group, ref)
                        if kind != "compare":
                            self.table_to_embedding(group, ref)
            except Exception:  # warming is an optimisation; the foreground path reports errors
                pass

        return self.memo(("warm", ref), lambda: _started(threading.Thread(target=work, name="dmd2viz-warm", daemon=True)))

    # --- per-sample columns -----------------------------------------------------
    def columns(self, ref: str) -> list[ColumnInfo]:
        """Per-sample columns for colouring: samples labels, the embedding's, the compare metrics, and the
        neighbourhood change against every key compared with this one (table ``vs <other key>``)."""
        info = self.embedding(ref)
        found: list[ColumnInfo] = []
        tables = [("samples", SAMPLES_GROUP, ()), ("compare", analysis_group("compare", info.key), ()),
                  *((f"vs {other}", group, LABEL_COLUMNS) for other, group in self.neighbourhoods(info.key))]
        for table, group, labels in tables:
            for array in self.lake.arrays(group):
                if not array.per_sample or array.name in ("sample_id", "sample_row") or array.name in labels:
                    continue
                numeric = array.dtype.kind in "iuf"  # bool columns are read as two categories
                found.append(ColumnInfo(f"{table}.{array.name}", group, array.name, numeric))
        return found

    def neighbourhoods(self, key: str) -> list[tuple[str, str]]:
        """(other key, group) of every ``analysis/neighbourhood`` table that compares `key` with another."""
        def compute() -> list[tuple[str, str]]:
            found = []
            for group in self.lake.results("neighbourhood"):
                attrs = self.lake.attrs(group)
                first, second = attrs.get("first_key"), attrs.get("second_key")
                if key in (first, second) and first != second:
                    found.append((str(second if first == key else first), group))
            return found

        return self.memo(("neighbourhoods", key), compute)

    def column_values(self, ref: str, column_ref: str) -> np.ndarray:
        """A per-sample column aligned to the embedding's rows (NaN / '' where missing).

        Numeric columns come back numeric (float with NaN where a row is missing); every
        other column, bool included, as StringDType text ("true"/"false" for bools).
        """
        return self.memo(("column", ref, column_ref), lambda: self._load_column(ref, column_ref))

    def _load_column(self, ref: str, column_ref: str) -> np.ndarray:
        frame = self.frame(ref)
        column = next((c for c in self.columns(ref) if c.ref == column_ref), None)
        if column is None:
            raise KeyError(column_ref)
        values = categorical_or_numeric(read_native(self.lake, column.group, column.name))
        if column.group == SAMPLES_GROUP:
            rows = frame.sample_row
        else:
            rows = self.table_rows(column.group, ref)
        return take(values, rows)

    # --- analysis groups ----------------------------------------------------------
    def group_for(self, kind: str, key: str) -> str | None:
        """The committed result group ``analysis/<kind>/<key>`` (kind: knn, pca, compare), else None."""
        path = analysis_group(kind, key)
        return path if self.lake.has(path) else None

    def table_rows(self, group: str, ref: str) -> np.ndarray:
        """Row of each embedding sample in an analysis table (knn, pca, compare) of the same key.

        These are tables of the fit: placed samples (the rows after `frame.n_fitted`) are
        never in them and get -1, and the fitted rows keep their one join (prefix match).
        """
        frame = self.frame(ref)

        def compute() -> np.ndarray:
            n = frame.n_fitted
            rows = None
            table_sample_row = table_sample_rows(self.lake, group)
            if table_sample_row is not None:  # same samples rows in the same order: no id join
                if same_rows(frame.sample_row[:n], table_sample_row):
                    rows = np.arange(n, dtype=np.int64)
            if rows is None:
                # The frame's id hashes are kept: its later lookups by id reuse them.
                ids = frame.sample_id if n == frame.size else frame.sample_id[:n]
                rows = align_rows(ids, table_ids(self.lake, group), target_hash=lambda: frame.id_hash[:n])
            return rows if n == frame.size else np.concatenate([rows, np.full(frame.n_placed, -1, dtype=np.int64)])

        return self.memo(("align", group, ref), compute)

    def table_to_embedding(self, group: str, ref: str) -> np.ndarray:
        """Inverse of `table_rows`: the embedding row of each row of the table (-1 where absent)."""

        def compute() -> np.ndarray:
            rows = self.table_rows(group, ref)
            n = table_length(self.lake, group)
            inverse = np.full(n, -1, dtype=np.int64)
            ok = rows >= 0
            inverse[rows[ok]] = np.flatnonzero(ok)
            return inverse

        return self.memo(("inverse", group, ref), compute)

    def placed_lineage(self, ref: str) -> PlacedLineage:
        """How each placed sample of the embedding was made, and the embedding rows of its parents (lineage lines)."""
        return self.memo(("lineage", ref), lambda: placed_lineage(self.lake, self.frame(ref)))

    def placed_neighbours(self, ref: str, row: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The stored neighbours of a placed row (embedding rows, distances), where placement stored them; else None."""
        return placed_neighbours(self.lake, self.frame(ref), row, lambda group: self._placed_table_rows(group, ref),
                                 lambda group: self.table_to_embedding(group, ref))  # fmt: skip

    def _placed_table_rows(self, group: str, ref: str) -> np.ndarray:
        """Row of each placed sample of the embedding in a placed table (-1 when absent)."""
        frame = self.frame(ref)
        return self.memo(("placed_align", group, ref),
                         lambda: align_rows(frame.sample_id[frame.n_fitted :], table_ids(self.lake, group)))  # fmt: skip

    def sample_rows(self, ids: list[str] | np.ndarray) -> np.ndarray:
        """Rows of the given ids in `samples` (-1 where absent): a scan for a few ids, the hash index for many."""
        # An array (a whole id column) converts without a Python object per id.
        ids = np.asarray(ids if isinstance(ids, np.ndarray) else list(ids), dtype=np.dtypes.StringDType())
        table = self._samples_ids()
        if ids.size <= MAX_SCANNED_IDS:
            return np.array([first_row(np.flatnonzero(table == i)) for i in ids], dtype=np.int64)
        index = self.memo("samples_index", lambda: HashIndex(table, self._samples_hash))
        return index.rows(ids)

    def column_rows(self, ids: np.ndarray) -> np.ndarray:
        """Rows in `samples` of another table's whole id column (-1 where absent).

        A job that writes a linked table (``t2i/<name>/samples``) appends its rows to
        `samples` in the same order, so the common case is one contiguous run: a scan for
        the first id and one vectorised comparison, instead of hashing every id.
        """
        ids = np.asarray(ids, dtype=np.dtypes.StringDType())
        table = self._samples_ids()
        if len(ids):
            start = first_row(np.flatnonzero(table == ids[0]))
            if 0 <= start and start + len(ids) <= len(table) and np.array_equal(table[start : start + len(ids)], ids):
                return np.arange(start, start + len(ids), dtype=np.int64)
        return self.sample_rows(ids)

    def images(self, sample_rows: np.ndarray) -> np.ndarray:
        return self.lake.images(np.asarray(sample_rows, dtype=np.int64))

    def sample_record(self, sample_row: int) -> dict[str, Any]:
        """Every scalar column of one sample (provenance: origin, seed, model, split...)."""
        return sample_record(self.lake, sample_row)

    def sample_sources(self, sample_rows: np.ndarray) -> list[str]:
        """The `source` of the given `samples` rows (all present)."""
        return sample_sources(self.lake, sample_rows)

    # --- typed tables the pages draw -------------------------------------------------
    def joint(self, layer: str) -> JointEmbedding:
        """``analysis/trajectory/<layer>``, the layer's joint embedding across noise levels (read once per commit)."""
        return self.memo(("joint", layer), lambda: load_joint(self.lake, layer))

    def joint_schedules(self, layer: str) -> dict[str, ScheduleSteps]:
        """The multi-step schedules whose steps are placed in `layer`'s joint embedding, by schedule."""
        return self.memo(("joint_schedules", layer), lambda: load_schedules(self.lake, layer))

    def prompt_map(self, name: str) -> PromptMapTable | None:
        """``analysis/prompts/<name>`` (map coordinates and clusters per prompt), or None without it."""
        return prompt_map(self.lake, name) if has_prompt_map(self.lake, name) else None

    def prompt_clusters(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(prompt_id, cluster) of ``analysis/prompts/<name>``, or None without it."""
        return prompt_clusters(self.lake, name)

    def activation_clusters(self, key: str) -> np.ndarray | None:
        """The k-means cluster of each row of ``analysis/clusters/<key>``, or None without that table."""
        return activation_clusters(self.lake, key)

    def has_activation_clusters(self, key: str) -> bool:
        """Whether `key` has k-means clusters (metadata only)."""
        return has_activation_clusters(self.lake, key)

    def clusters_group(self, key: str) -> str:
        """The group of `key`'s clusters table (to align its rows with `table_rows`)."""
        return analysis_group("clusters", key)

    def t2i_ids(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(sample_id, prompt_id) of every row of model `name`'s samples table."""
        return t2i_ids(self.lake, name)

    def t2i_prompt_text(self, name: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(prompt, negative prompt) at the given rows of model `name`'s samples table."""
        return t2i_prompt_text(self.lake, name, rows)

    def t2i_sample(self, name: str, row: int) -> T2ISample:
        """Row `row` of model `name`'s samples table: prompt, native image, step previews."""
        return read_t2i_sample(self.lake, name, row)

    def compare_summary(self, key: str) -> tuple[dict[str, Any], Any]:
        """Overall metrics (attributes) and the per-class metrics table of `analysis/compare/<key>`."""
        return self.memo(("compare", key), lambda: compare_summary(self.lake, self.group_for("compare", key), self.classes))


def _started(thread: threading.Thread) -> threading.Thread:
    """`thread`, started (the memo keeps one warming thread per embedding)."""
    thread.start()
    return thread


