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
import shutil
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from .layout import provenance_group, staging_group
from .provenance import Provenance
from .schema import STRING, TableSpec
from .store import check_lake, commit, create_lake, create_table_arrays, lake_path, read_root_document, remove_orphan_temp_files, restore, writer_lock


@dataclass
class Table:
    """An append-only, row-aligned group of arrays inside an open writer session."""

    group: Any  # zarr.Group, opened on live (uncommitted) metadata
    spec: TableSpec
    writer: LakeWriter | None = None  # counts appended rows for provenance

    @property
    def num_rows(self) -> int:
        return int(self.group[self.spec.key_column].shape[0])

    def keys(self) -> np.ndarray:
        """Every value of the key column (e.g. all sample ids), in row order."""
        return np.asarray(self.group[self.spec.key_column][:], dtype=object)

    def column(self, name: str) -> Any:
        """The live zarr array of a column (for reads and region writes inside the session)."""
        return self.group[name]

    def append(self, columns: Mapping[str, np.ndarray | Sequence[Any]]) -> slice:
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

    def extend_axis(self, dim: str, values: Sequence[Any]) -> None:
        """Append `values` to the fixed coordinate `dim` and grow every column along it.

        The new cells read as the column's fill value (NaN, False) until written; with
        the axis chunked one wide (`ColumnSpec.inner_chunks`) nothing stored is rewritten.
        """
        coord = self.group[dim]
        old = int(coord.shape[0])
        total = old + len(values)
        coord.resize((total,))
        coord[old:] = np.asarray(values, dtype=coord.dtype)
        for column in self.spec.columns:
            if dim in column.inner_dims and column.name in self.group.array_keys():
                array = self.group[column.name]
                axis = 1 + column.inner_dims.index(dim)
                shape = list(array.shape)
                shape[axis] = total
                array.resize(tuple(shape))


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
    def open(cls, path: str | os.PathLike[str], provenance: Provenance, create: bool = True) -> LakeWriter:
        return cls(lake_path(path), provenance, create)

    def __enter__(self) -> LakeWriter:
        import zarr

        if self._create and (not self.path.exists() or (self.path.is_dir() and not any(self.path.iterdir()))):
            create_lake(self.path, {})
        check_lake(self.path)
        self._lock.__enter__()
        try:
            doc = read_root_document(self.path)
            assert doc is not None
            restore(self.path, doc)  # undo whatever a killed writer left uncommitted
            remove_orphan_temp_files(self.path)
            self._start_document = doc
            self._root = zarr.open_group(str(self.path), mode="r+", use_consolidated=False)
            runs = self._root.require_group(provenance_group())
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

    def attrs(self, path: str) -> dict[str, Any] | None:
        """Attributes of the group at `path` in the live session, or None when there is none."""
        import zarr

        parent, _, name = path.rpartition("/")
        try:
            node = (self._root.require_group(parent) if parent else self._root)[name]
        except KeyError:
            return None
        return dict(node.attrs) if isinstance(node, zarr.Group) else None

    def staged(self, final_path: str) -> StagedGroup:
        """A result group written under a staging name and swapped into `final_path` on `publish()`."""
        return StagedGroup(self, final_path)

    def swap(self, staging_path: str, final_path: str) -> None:
        """Move the group at `staging_path` to `final_path`, replacing what is there, and commit.

        Any previous group at `final_path` goes to the lake's trash folder (outside the
        Zarr hierarchy) first and is deleted after the commit. The only unsafe window is
        the two renames and the commit (milliseconds): a crash exactly there leaves the
        old group's metadata without its chunks, and rerunning the job repairs it.
        """
        final_dir = self.path / final_path
        staging_dir = self.path / staging_path
        trash = self.path / TRASH_DIR
        shutil.rmtree(trash, ignore_errors=True)  # leftovers of a run killed after its commit
        if final_dir.exists():
            trash.mkdir(parents=True, exist_ok=True)
            os.rename(final_dir, trash / self.provenance.run_id)
        final_dir.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging_dir, final_dir)
        if staging_path in self.rows_added:
            self.rows_added[final_path] = self.rows_added.pop(staging_path)
        self.commit()
        shutil.rmtree(trash, ignore_errors=True)

    def commit(self, status: str = "running") -> None:
        """Make all writes so far visible to readers and durable across kill -9."""
        record = self._root[provenance_group(self.provenance.run_id)]
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


TRASH_DIR = ".dmd2viz-trash"


class StagedGroup:
    """A result group written under a staging name, then swapped into place.

    Inside the writer session: `table()` / `write_array()` write to
    ``<final>.staging-<run_id>``; `publish()` swaps it into the final path and commits
    (`LakeWriter.swap`). An exception before `publish()` makes the writer roll the
    staging group back, and the old result is untouched.
    """

    def __init__(self, writer: LakeWriter, final_path: str):
        self.writer = writer
        self.final_path = final_path
        self.staging_path = staging_group(final_path, writer.provenance.run_id)

    def table(self, spec: TableSpec) -> Table:
        """Open `spec` (whose path is the final one) at the staging path."""
        return self.writer.table(replace(spec, path=self.staging_path))

    def group(self) -> Any:
        return self.writer.group(self.staging_path)

    def write_array(self, name: str, values: np.ndarray, dims: tuple[str, ...], attrs: dict[str, Any] | None = None) -> None:
        """A small non-table array (a transform, per-class metrics) beside the staged table."""
        write_array(self.group(), name, values, dims, attrs)

    def publish(self) -> None:
        self.writer.swap(self.staging_path, self.final_path)


def write_array(group: Any, name: str, values: np.ndarray, dims: tuple[str, ...], attrs: dict[str, Any] | None = None) -> None:
    """Write `values` whole as array `name` of a live group, labelled with `dims` (strings as UTF-8)."""
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
