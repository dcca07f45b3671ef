"""`python -m ingest npz`: ImageNet64 (downsampled ImageNet) NPZ batches into the lake.

Format: `train_data_batch_1.npz` ... `train_data_batch_10.npz`, `val_data.npz`, each a
zip of `data.npy` (N, 12288) uint8 and `labels.npy` (N,) in 1..1000 (plus `mean`). Rows
are channel-planar: 4096 red values, then green, then blue, each row-major. Labels are
1-indexed in the downsampled-ImageNet order and are converted to the standard order
through the WordNet id. `data.npy` is streamed from the zip member, so memory stays at
a few batches whatever the file size.
"""
from __future__ import annotations

import argparse
import os
import re
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .options import add_commit_flag, add_lake_flag, add_run_flags, add_selection_flags, non_negative, positive
from .selection import Selection, parse_selection

ROW_BYTES = 64 * 64 * 3


@dataclass(frozen=True)
class NpzInput:
    """A validated NPZ file: its labels (converted to standard class ids) and where row 0 starts."""

    path: Path
    rows: int
    class_ids: np.ndarray
    data_offset: int
    split: str

    def sample_id(self, row: int) -> str:
        from lake.layout import npz_sample_id

        return npz_sample_id(self.path.stem, row)

    def origin(self, row: int) -> str:
        return f"{self.path.name}#row={row}"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from lake.cli import command

    parser = command(
        subparsers,
        "npz",
        run,
        help="ingest ImageNet64 NPZ batches (train_data_batch_N.npz, val_data.npz)",
        description="Stream ImageNet64 NPZ files into the lake's samples table, pixel-exact, resumable and crash-safe. "
        "Files are taken in numeric order of their names (batch_2 before batch_10), whether named one by one or "
        "through their folder; rerunning adds only what is missing.",
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="ImageNet64 NPZ files, or folders whose *.npz files (directly inside) are all taken; files and folders "
        "may be mixed. Every file is taken once, however often it is named, and all of them go in numeric order "
        "of their names, so `DIR` and `DIR/*.npz` make the same lake",
    )
    add_lake_flag(parser)
    parser.add_argument("--split", default=None,
                        help="split label to record (default: 'val' for val_data*.npz, 'train' for train_data_batch_*.npz)")
    add_selection_flags(parser)
    add_run_flags(parser, default_batch=2048)
    add_commit_flag(parser)


def natural_key(path: Path) -> list[object]:
    """Sort key that orders train_data_batch_2 before train_data_batch_10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def expand_paths(arguments: list[str]) -> list[Path]:
    """The NPZ files the command line names: folders expand to the `*.npz` files directly inside them.

    Every file counts once (by its resolved path), however often it is named: its
    sample ids come from its name, so a second pass would add nothing anyway. The result
    is in numeric order of file names (`natural_key`), the order files named one by one
    always had, so the lake does not depend on how the files were spelled. Two
    *different* files with the same name would get the same sample ids, so that is an
    error, as is a missing path or a folder without NPZ files.
    """
    files: dict[Path, Path] = {}  # resolved -> as named first
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found = [p for p in path.iterdir() if p.suffix.lower() == ".npz" and p.is_file()]
            if not found:
                raise InputError(f"{path}: is a folder with no .npz files")
        elif path.is_file():
            found = [path]
        elif path.exists() or path.is_symlink():
            raise InputError(f"{path}: is neither a file nor a folder" if path.exists() else f"{path}: does not exist (a broken link)")
        else:
            raise InputError(f"{path}: does not exist")
        for file in found:
            files.setdefault(file.resolve(), file)
    by_name: dict[str, Path] = {}
    for file in files.values():
        other = by_name.setdefault(file.name, file)
        if other is not file:
            raise InputError(
                f"{other} and {file}: two different files named {file.name}; their sample ids "
                f"(in64/{file.stem}/<row>) would collide, so ingest them into different lakes or rename one"
            )
    return sorted(files.values(), key=natural_key)


def default_split(path: Path) -> str:
    name = path.name.lower()
    if name.startswith("val"):
        return "val"
    if name.startswith("train"):
        return "train"
    return "unknown"


def open_npz(path: Path, split: str | None = None) -> NpzInput:
    """Validate an NPZ file without decompressing its images; raise InputError naming the problem."""
    from lake.classes import imagenet_classes

    if not path.is_file():
        raise InputError(f"{path}: does not exist" if not path.exists() else f"{path}: is not a file")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            for member in ("data.npy", "labels.npy"):
                if member not in names:
                    raise InputError(f"{path}: missing '{member[:-4]}' array (has {sorted(n[:-4] for n in names)})")
            with archive.open("labels.npy") as fh:
                labels = np.lib.format.read_array(fh, allow_pickle=False)
            with archive.open("data.npy") as fh:
                shape, fortran, dtype, offset = _read_npy_header(fh)
    except zipfile.BadZipFile as exc:
        raise InputError(f"{path}: not a valid NPZ/zip file ({exc}); it may be truncated or corrupt") from None
    except (ValueError, OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: unreadable NPZ ({exc})") from None
    if dtype != np.uint8 or len(shape) != 2 or fortran:
        raise InputError(f"{path}: 'data' must be a C-order uint8 (N, {ROW_BYTES}) array, got {dtype} {shape}")
    if shape[1] != ROW_BYTES:
        raise InputError(f"{path}: wrong row length {shape[1]} in 'data' (expected {ROW_BYTES} = 3x64x64 channel-planar)")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"{path}: 'labels' must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    if len(labels) != shape[0]:
        raise InputError(f"{path}: {shape[0]} images but {len(labels)} labels")
    try:
        class_ids = imagenet_classes().class_ids_from_imagenet64(labels)
    except ValueError as exc:
        row = int(np.flatnonzero((labels < 1) | (labels > 1000))[0])
        raise InputError(f"{path}: {exc} at row {row} (ImageNet64 labels are 1..1000)") from None
    return NpzInput(path=path, rows=int(shape[0]), class_ids=class_ids, data_offset=offset, split=split or default_split(path))


def _read_npy_header(fh) -> tuple[tuple[int, ...], bool, np.dtype, int]:  # noqa: ANN001 - zip member
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    return shape, fortran, dtype, fh.tell()


def planar_to_hwc(rows: np.ndarray) -> np.ndarray:
    """(N, 12288) channel-planar rows to (N, 64, 64, 3) HWC images.

    One strided copy per channel plane: ~5x faster than a 4-D transpose copy, whose
    innermost loop walks single bytes with a 4096-byte stride.
    """
    planes = rows.reshape(len(rows), 3, 64 * 64)
    images = np.empty((len(rows), 64 * 64, 3), dtype=np.uint8)
    for channel in range(3):
        images[:, :, channel] = planes[:, channel]
    return images.reshape(len(rows), 64, 64, 3)


def read_images(npz: NpzInput, wanted: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (rows, images) batches for the sorted row indices `wanted`.

    The member is read front to back in windows of at most `batch_size` rows (runs of
    unwanted rows are skipped by seeking), so memory stays at about two batches even
    for sparse selections such as --per-class.
    """
    if len(wanted) == 0:
        return
    picked_rows: list[np.ndarray] = []
    picked_images: list[np.ndarray] = []
    try:
        with zipfile.ZipFile(npz.path) as archive, archive.open("data.npy") as fh:
            fh.seek(npz.data_offset)
            position = i = 0
            while i < len(wanted):
                start = int(wanted[i])
                if start > position:
                    fh.seek((start - position) * ROW_BYTES, 1)
                j = int(np.searchsorted(wanted, start + batch_size))
                span = int(wanted[j - 1]) + 1 - start
                block = fh.read(span * ROW_BYTES)
                if len(block) != span * ROW_BYTES:
                    raise InputError(f"{npz.path}: truncated 'data' (ends before row {start + len(block) // ROW_BYTES})")
                position = start + span
                rows = wanted[i:j]
                data = np.frombuffer(block, dtype=np.uint8).reshape(span, ROW_BYTES)
                picked_rows.append(rows)
                picked_images.append(planar_to_hwc(data[rows - start]))
                i = j
                if sum(len(r) for r in picked_rows) >= batch_size or i == len(wanted):
                    yield np.concatenate(picked_rows), np.concatenate(picked_images)
                    picked_rows, picked_images = [], []
            if position == npz.rows:
                fh.read()  # reach the end of the member so zipfile verifies its CRC
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise InputError(f"{npz.path}: corrupt data ({exc})") from None


def plan(inputs: list[NpzInput], selection: Selection, existing: set[str]) -> list[tuple[NpzInput, np.ndarray]]:
    """For each file, the sorted rows still to ingest (selected, and not already in the lake)."""
    keep = selection.mask(np.concatenate([npz.class_ids for npz in inputs]) if inputs else np.zeros(0, np.int64))
    result, offset = [], 0
    for npz in inputs:
        rows = np.flatnonzero(keep[offset : offset + npz.rows])
        offset += npz.rows
        rows = np.array([r for r in rows if npz.sample_id(int(r)) not in existing], dtype=np.int64)
        result.append((npz, rows))
    return result


def run(args: argparse.Namespace) -> None:
    """`python -m ingest npz`: the flags as `ingest_npz`'s typed arguments."""
    ingest_npz(args.lake, args.paths, parse_selection(args.limit, args.classes, args.per_class), split=args.split,
               batch_size=args.batch_size, commit_interval=args.commit_interval, progress=not args.no_progress)


def ingest_npz(lake: str | os.PathLike[str], paths: Sequence[str | os.PathLike[str]], selection: Selection = Selection(), *,
               split: str | None = None, batch_size: int = 2048, commit_interval: float = 1.0, progress: bool = True) -> None:
    """Stream ImageNet64 NPZ files (or folders of them) into the samples table of `lake` (created if missing).

    `split` overrides the split read off each file name; `batch_size` and
    `commit_interval` change speed and memory, never the result. Resumable: ids already
    in the lake are skipped. Bad input raises InputError (one line) before the lake is touched.
    """
    from lake import LakeWriter, Provenance, describe_file

    from .pipeline import SampleBatch, SampleSink, prefetch, progress_bar

    positive(batch_size, "--batch-size")
    non_negative(commit_interval, "--commit-interval")
    files = expand_paths([os.fspath(p) for p in paths])
    inputs = [open_npz(p, split) for p in files]  # validate everything before touching the lake
    provenance = Provenance(
        job="ingest npz",
        inputs=[describe_file(p, hash_bytes=1 << 24) for p in files],
        parameters={"split": split, **selection.describe()},
    )
    with LakeWriter.open(lake, provenance) as writer:
        sink = SampleSink(writer, commit_interval=commit_interval)
        todo = plan(inputs, selection, sink.existing)
        total = sum(len(rows) for _, rows in todo)

        def batches() -> Iterator[SampleBatch]:
            for npz, rows in todo:
                for batch_rows, images in read_images(npz, rows, batch_size):
                    yield SampleBatch(
                        images=images,
                        sample_ids=[npz.sample_id(int(r)) for r in batch_rows],
                        class_ids=npz.class_ids[batch_rows],
                        origins=[npz.origin(int(r)) for r in batch_rows],
                        source="real",
                        split=npz.split,
                    )

        with progress_bar(total, "ingest npz", disable=not progress) as bar:
            for batch in prefetch(batches()):
                bar.update(sink.write(batch))
