"""Writing to a lake: a locked, crash-safe session with append-only tables.

    with LakeWriter.open(path, Provenance(job="ingest npz")) as writer:
        table = writer.table(SAMPLES)
        for batch in batches:
            table.append(batch)
            writer.commit()          # rows become visible, survive kill -9

Leaving the block with an exception restores the lake to how it was when the
session opened (earlier commits of *this* session included), so bad input never
leaves half a job behind. A killed process (kill -9) or an interrupted one (Ctrl-C)
keeps everything it committed, and rerunning the job resumes.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from .provenance import Provenance
from .schema import PROVENANCE_GROUP, STRING, TableSpec
from .store import check_lake, commit, create_lake, create_table_arrays, lake_path, read_root_document, restore, writer_lock


@dataclass
class Table:
    """An append-only, row-aligned group of arrays inside an open writer session."""

    group: Any  # zarr.Group, opened on live (uncommitted) metadata
    spec: TableSpec
    writer: "LakeWriter | None" = None  # counts appended rows for provenance

    @property
    def num_rows(self) -> int:
        return int(self.group[self.spec.key_column].shape[0])

    def keys(self) -> np.ndarray:
        """Every value of the key column (e.g. all sample ids), in row order."""
        return np.asarray(self.group[self.spec.key_column][:], dtype=object)

    def column(self, name: str) -> Any:
        """The live zarr array of a column (for reads and region writes inside the session)."""
        return self.group[name]

    def append(self, columns: Mapping[str, np.ndarray]) -> slice:
        """Append rows given as one array per column (every column of the spec, same length)."""
        missing = [c.name for c in self.spec.columns if c.name not in columns]
        if missing:
            raise ValueError(f"append to {self.spec.path} lacks columns {missing}")
        lengths = {len(columns[c.name]) for c in self.spec.columns}
        if len(lengths) != 1:
            raise ValueError(f"append to {self.spec.path}: columns differ in length {sorted(lengths)}")
        count = lengths.pop()
        start = self.num_rows
        # Every appended chunk holds real rows, so zarr's "is this chunk all fill
        # value?" scan (a full pass over each image chunk, under the GIL) is skipped.
        arrays = [
            self.group[column.name].async_array.with_config({"write_empty_chunks": True}) for column in self.spec.columns
        ]
        values = [
            np.asarray(columns[c.name], dtype=object) if c.dtype == STRING else columns[c.name] for c in self.spec.columns
        ]
        _run(_grow_and_write(arrays, start, count, values))
        if self.writer is not None:
            self.writer.rows_added[self.spec.path] = self.writer.rows_added.get(self.spec.path, 0) + count
        return slice(start, start + count)


async def _grow_and_write(arrays: list[Any], start: int, count: int, values: list[Any]) -> None:
    """Grow every column and write the new rows, all columns concurrently.

    One event-loop round trip per batch instead of two per column: chunk encoding
    runs in zarr's thread pool, so image compression overlaps the string columns.
    """
    import asyncio

    await asyncio.gather(*(a.resize((start + count, *a.shape[1:])) for a in arrays))
    await asyncio.gather(*(a.setitem(slice(start, start + count), v) for a, v in zip(arrays, values)))


def _run(coroutine: Any) -> Any:
    from zarr.core.sync import sync

    return sync(coroutine)


class LakeWriter:
    """An exclusive, crash-safe writing session on one lake."""

    def __init__(self, path: Path, provenance: Provenance, create: bool = True):
        self.path = path
        self.provenance = provenance
        self._create = create
        self._lock = writer_lock(path)
        self._start_document: dict[str, Any] | None = None
        self._root: Any = None
        self.rows_added: dict[str, int] = {}
        self._committed_rows: dict[str, int] = {}

    @classmethod
    def open(cls, path: str | os.PathLike[str], provenance: Provenance, create: bool = True) -> "LakeWriter":
        return cls(lake_path(path), provenance, create)

    def __enter__(self) -> "LakeWriter":
        import zarr

        if self._create and (not self.path.exists() or (self.path.is_dir() and not any(self.path.iterdir()))):
            create_lake(self.path, {})
        check_lake(self.path)
        self._lock.__enter__()
        try:
            doc = read_root_document(self.path)
            assert doc is not None
            restore(self.path, doc)  # undo whatever a killed writer left uncommitted
            self._start_document = doc
            self._root = zarr.open_group(str(self.path), mode="r+", use_consolidated=False)
            runs = self._root.require_group(PROVENANCE_GROUP)
            # We hold the lock, so a run still marked "running" died without finishing
            # (kill -9, power loss). Saying so goes out with this session's first commit.
            for _, earlier in runs.groups():
                if earlier.attrs.get("status") == "running":
                    earlier.attrs["status"] = "killed"
            record = self.provenance.to_attrs() | {"status": "running", "rows_added": {}}
            runs.create_group(self.provenance.run_id, attributes=record)
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self

    def table(self, spec: TableSpec) -> Table:
        """Open (creating if needed) a table; its arrays are created empty with the spec's chunking."""
        group = self._root.require_group(spec.path)
        create_table_arrays(group, spec)
        return Table(group, spec, self)

    def group(self, path: str) -> Any:
        """A live zarr group for results that are not append-only tables (written inside this session)."""
        return self._root.require_group(path)

    def commit(self, status: str = "running") -> None:
        """Make all writes so far visible to readers and durable across kill -9."""
        record = self._root[f"{PROVENANCE_GROUP}/{self.provenance.run_id}"]
        record.attrs.update({"status": status, "rows_added": dict(self.rows_added)})
        commit(self.path)
        self._committed_rows = dict(self.rows_added)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if exc_type is None:
                self.commit(status="complete")
            elif issubclass(exc_type, KeyboardInterrupt):
                # The user stopped the job: keep every committed batch (rerunning
                # resumes), drop only the batch in flight, and say so in provenance.
                doc = read_root_document(self.path)
                assert doc is not None
                restore(self.path, doc)
                self.rows_added = dict(self._committed_rows)
                self.commit(status="interrupted")
            else:
                # Bad input or an error mid-job: put the lake back exactly as it was.
                assert self._start_document is not None
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    restore(self.path, self._start_document)
        finally:
            self._lock.__exit__(None, None, None)
