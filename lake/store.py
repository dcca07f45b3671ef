"""The lake on disk: creation, the writer lock, the commit point and rollback.

Commit protocol. The root ``zarr.json`` carries *consolidated metadata* for the
whole hierarchy, and that document is the commit record: readers (plain
``xr.open_zarr`` and ``zarr.open_group``) use it by default, so they see exactly the
shapes of the last commit. A writer grows arrays and writes chunks freely (every
file write is an atomic rename in zarr's LocalStore), then commits by rewriting the
root document atomically with ``zarr.consolidate_metadata``. A writer that dies
leaves live metadata ahead of the commit; the next writer rolls every node back to
the committed document before it starts (``restore``), so rows of a killed run are
never visible and never duplicated.
"""
from __future__ import annotations

import fcntl
import glob
import json
import math
import os
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .errors import LakeLockedError, NotALakeError, SchemaVersionError
from .layout import SAMPLES
from .schema import SCHEMA_ATTR, SCHEMA_VERSION, STRING, ColumnSpec, TableSpec

LOCK_FILE = ".dmd2viz.lock"
META = "zarr.json"


def lake_path(path: str | os.PathLike[str]) -> Path:
    """Normalise a lake location. Only local directories are supported for now."""
    text = os.fspath(path)
    if text.startswith("file://"):
        text = text[len("file://") :]
    if "://" in text:
        raise NotALakeError(f"{text}: only local lake directories are supported in this version")
    return Path(text).expanduser()


def read_root_document(path: Path) -> dict[str, Any] | None:
    """The root group's metadata document, or None when the path holds no Zarr root."""
    try:
        return json.loads((path / META).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise NotALakeError(f"{path}: unreadable {META} ({exc}); this is not a DMD2 Visualizer lake") from exc


def check_lake(path: Path) -> dict[str, Any]:
    """Validate that `path` is a lake of a schema this code understands; return its root document."""
    if not path.exists():
        raise NotALakeError(f"{path}: no lake here; create one with `python -m ingest npz ... --lake {path}`")
    doc = read_root_document(path)
    version = None if doc is None else doc.get("attributes", {}).get(SCHEMA_ATTR)
    if doc is None or doc.get("node_type") != "group" or version is None:
        raise NotALakeError(f"{path}: exists but is not a DMD2 Visualizer lake (no {META} with {SCHEMA_ATTR}); choose an empty or new directory")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{path}: lake schema version {version} is newer than this tool's ({SCHEMA_VERSION}); upgrade dmd2-visualizer"
        )
    return doc


def committed_nodes(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Metadata of every committed node, keyed by path relative to the root.

    Child groups appear with an empty ``consolidated_metadata`` field in the root
    document; on disk they carry none (only the root is the commit record), so it is
    dropped here to compare like with like.
    """
    consolidated = doc.get("consolidated_metadata") or {}
    return {
        rel: {k: v for k, v in meta.items() if k != "consolidated_metadata"}
        for rel, meta in (consolidated.get("metadata") or {}).items()
    }


def create_lake(path: Path, attributes: dict[str, Any], tables: tuple[TableSpec, ...] = (SAMPLES,)) -> None:
    """Create a committed lake at `path` (missing or an empty directory) holding empty `tables`.

    Every lake has a `samples` group from its first moment, so plain readers
    (`xr.open_zarr(lake, group="samples")`) open any lake, even one whose first job was
    killed before its first commit: they see 0 rows with every column. The lake is built
    and committed in a hidden sibling folder and renamed into place, so `path` is
    either absent (or still empty) or a complete lake; a creator killed halfway leaves
    only its hidden folder, which the next creator removes.
    """
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise NotALakeError(f"{path}: exists but is not a DMD2 Visualizer lake; choose an empty or new directory")
    path = path.absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_staging(path)
    staging = path.with_name(f"{STAGING_PREFIX.format(name=path.name)}{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir()
    except OSError:
        # No room beside it (e.g. an empty directory given in a folder we may not write):
        # build in place, as atomic as zarr's own writes allow.
        _build_lake(path, attributes, tables)
        return
    try:
        _build_lake(staging, attributes, tables)
        try:
            # rename(2) replaces a missing path or an empty directory in one step.
            os.rename(staging, path)
        except OSError:
            if path.is_dir() and any(path.iterdir()):
                return  # another process created the lake first; its lake is as good as ours
            if not path.is_dir():
                raise
            _build_lake(path, attributes, tables)  # an empty mount point cannot be replaced
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _build_lake(target: Path, attributes: dict[str, Any], tables: tuple[TableSpec, ...]) -> None:
    """Write the root group and the empty `tables` at `target`, then commit them."""
    import zarr

    root = zarr.open_group(str(target), mode="w", zarr_format=3, attributes={SCHEMA_ATTR: SCHEMA_VERSION, **attributes})
    for spec in tables:
        create_table_arrays(root.require_group(spec.path), spec)
    commit(target)


STAGING_PREFIX = ".{name}.dmd2viz-creating-"


def _remove_abandoned_staging(path: Path) -> None:
    """Delete staging folders of `path` left by creators that no longer run (killed mid-creation)."""
    prefix = STAGING_PREFIX.format(name=path.name)
    for candidate in path.parent.glob(f"{glob.escape(prefix)}*"):
        pid = candidate.name[len(prefix) :]
        if pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(candidate, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def zarr_dtype(column: ColumnSpec) -> Any:
    """The zarr dtype of a column (variable-length UTF-8 for STRING)."""
    if column.dtype == STRING:
        from zarr.core.dtype import VariableLengthUTF8

        return VariableLengthUTF8()
    return np.dtype(column.dtype)


def create_table_arrays(group: Any, spec: TableSpec) -> None:
    """Create the arrays of `spec` that `group` lacks: 0 rows, the spec's dtypes, chunking and codecs.

    Columns flagged `coord` are named in the CF `coordinates` attribute of the others,
    so xarray labels the data variables with them, with 0 rows as with many.
    """
    if spec.attrs:
        group.attrs.update(spec.attrs)
    existing = set(group.array_keys())
    coords = " ".join(spec.coord_names)
    for column in spec.columns:
        if column.name in existing:
            continue
        attrs = dict(column.attrs)
        if not column.coord:
            attrs["coordinates"] = coords  # CF: lets xarray label data variables
        group.create_array(
            column.name,
            shape=(0, *column.inner_shape),
            chunks=column.chunks,
            dtype=zarr_dtype(column),
            compressors=[column.codec] if column.codec else "auto",
            fill_value=column.fill_value(),
            dimension_names=(spec.row_dim, *column.inner_dims),
            attributes=attrs,
        )
    for name, values in spec.fixed_coords.items():
        if name not in existing:
            group.create_array(name, data=np.asarray(values), dimension_names=(name,))


def commit(path: Path) -> None:
    """Make everything written so far visible to readers, atomically."""
    import zarr

    with warnings.catch_warnings():
        # zarr warns that consolidated metadata is not yet in the v3 spec; it is
        # what xarray reads by default, and our commit point.
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(path))


@contextmanager
def writer_lock(path: Path) -> Iterator[None]:
    """Hold the lake's exclusive writer lock (released by the OS even on kill -9)."""
    lock_path = path / LOCK_FILE
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise LakeLockedError(f"{path}: is being written by {holder}; wait for it to finish, then run again") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def live_nodes(path: Path) -> dict[str, dict[str, Any]]:
    """Metadata of every node on disk now (which may be ahead of the last commit)."""
    nodes: dict[str, dict[str, Any]] = {}
    for directory, subdirs, files in os.walk(path):
        rel = os.path.relpath(directory, path)
        if META in files and rel != ".":
            meta = json.loads((Path(directory) / META).read_text())
            nodes[rel.replace(os.sep, "/")] = meta
            if meta.get("node_type") == "array":
                subdirs[:] = []  # chunk directories hold no nodes
    return nodes


def remove_orphan_temp_files(path: Path) -> int:
    """Delete the `*.partial` temp files killed writers left (ours and zarr's atomic writes).

    Only a writer holding the lock may call this, before it writes anything: every temp
    file present then belongs to a dead process. Left in place they are invisible to
    readers but make the store's bytes differ from an uninterrupted run's. Returns how many.
    """
    removed = 0
    for directory, _, files in os.walk(path):
        for name in files:
            if name.endswith(".partial"):
                (Path(directory) / name).unlink(missing_ok=True)
                removed += 1
    return removed


def restore(path: Path, doc: dict[str, Any]) -> bool:
    """Roll every node back to the state recorded in root document `doc`. Returns True if anything changed."""
    committed = committed_nodes(doc)
    changed = False
    for rel in live_nodes(path):
        if rel not in committed:
            shutil.rmtree(path / rel, ignore_errors=True)
            changed = True
    for rel, meta in committed.items():
        node_dir = path / rel
        live_file = node_dir / META
        live = json.loads(live_file.read_text()) if live_file.exists() else None
        if live == meta:
            continue
        shrunk = live is not None and meta.get("node_type") == "array" and live.get("node_type") == "array"
        if shrunk:
            _delete_chunks_outside(node_dir, meta)
        node_dir.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(live_file, meta)
        if shrunk:
            _rewrite_boundary_chunk(path, node_dir, meta)
        changed = True
    if read_root_document(path) != doc:
        _write_json_atomic(path / META, doc)
        changed = True
    return changed


def _delete_chunks_outside(node_dir: Path, meta: dict[str, Any]) -> None:
    """Remove chunk files that lie outside the committed shape of an array."""
    shape = meta["shape"]
    chunk_shape = meta["chunk_grid"]["configuration"]["chunk_shape"]
    n_chunks = [math.ceil(s / c) if s else 0 for s, c in zip(shape, chunk_shape)]

    def prune(directory: Path, axis: int) -> None:
        if axis >= len(n_chunks) or not directory.is_dir():
            return
        for entry in directory.iterdir():
            if entry.name.endswith(".partial"):
                entry.unlink(missing_ok=True)
                continue
            if not entry.name.isdigit():
                continue
            if int(entry.name) >= n_chunks[axis]:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            elif entry.is_dir():
                prune(entry, axis + 1)

    prune(node_dir / "c", 0)


def _rewrite_boundary_chunk(lake: Path, node_dir: Path, meta: dict[str, Any]) -> None:
    """Re-encode the last, partly filled chunk row so it holds committed rows and fill values only.

    An aborted append leaves rows beyond the committed shape inside the boundary chunk.
    Readers never see them, but the chunk's bytes would differ from an uninterrupted
    run's. The clean chunk is encoded in a scratch array with the same metadata and
    moved in by atomic rename, so a kill during the rewrite cannot lose committed rows.
    """
    import zarr

    rows, chunk_rows = meta["shape"][0], meta["chunk_grid"]["configuration"]["chunk_shape"][0]
    start = (rows // chunk_rows) * chunk_rows
    if rows == start:
        return
    index = start // chunk_rows
    values = zarr.open_array(str(node_dir), mode="r")[start:rows]
    scratch = lake / f".dmd2viz-restore-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    try:
        _write_json_atomic(scratch / META, {**meta, "shape": [rows - start, *meta["shape"][1:]]})
        zarr.open_array(str(scratch), mode="r+")[:] = values
        for chunk in (scratch / "c" / "0").rglob("*") if (scratch / "c" / "0").is_dir() else [scratch / "c" / "0"]:
            if chunk.is_file():
                target = node_dir / "c" / str(index) / chunk.relative_to(scratch / "c" / "0")
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(chunk, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _write_json_atomic(target: Path, document: dict[str, Any]) -> None:
    tmp = target.with_name(target.name + f".{os.getpid()}.partial")
    tmp.write_text(json.dumps(document, indent=2))
    os.replace(tmp, target)
