"""`python -m ingest jpeg`: an ILSVRC-layout image folder (ROOT/<wnid>/*.JPEG) into the lake.

Each image is centre-cropped to a square, converted to RGB (ImageNet holds grayscale
and CMYK files) and resized to 64x64 with a box filter, as ImageNet64 was built.
Decoding runs in a thread pool (Pillow releases the GIL while decoding and resizing).
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .core.images import centre_square_thumbnail
from .errors import InputError
from .options import add_commit_flag, add_lake_flag, add_run_flags, add_selection_flags, non_negative, positive
from .selection import Selection, parse_selection

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}


@dataclass(frozen=True)
class ImageFile:
    """One input image: its path relative to the root and its standard class id."""

    relative: str
    class_id: int

    @property
    def sample_id(self) -> str:
        from lake.layout import jpeg_sample_id

        return jpeg_sample_id(self.relative)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from lake.cli import command

    parser = command(
        subparsers,
        "jpeg",
        run,
        help="ingest an ILSVRC-layout folder ROOT/<wnid>/*.JPEG (also .jpg, .png)",
        description="Centre-crop, box-resize to 64x64 and store every image of ROOT/<wnid>/ in the lake, "
        "classed by its folder's WordNet id. Resumable and crash-safe; rerunning adds only what is missing.",
    )
    parser.add_argument("root", metavar="ROOT", help="folder holding one sub-folder per class, named by wnid")
    add_lake_flag(parser)
    parser.add_argument("--split", default="train", help="split label to record (default: train)")
    add_selection_flags(parser)
    add_run_flags(parser, default_batch=512)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="decoding threads (default: number of CPUs)")
    add_commit_flag(parser)


def scan(root: Path) -> list[ImageFile]:
    """Every image under ROOT/<wnid>/, sorted by path; an unknown wnid folder is an error."""
    from lake.classes import imagenet_classes

    if not root.is_dir():
        raise InputError(f"{root}: not a directory")
    by_wnid = imagenet_classes().class_id_by_wnid
    files: list[ImageFile] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name not in by_wnid:
            raise InputError(f"{folder}: folder name is not an ImageNet-1k wnid (expected e.g. n01443537)")
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                files.append(ImageFile(relative=path.relative_to(root).as_posix(), class_id=by_wnid[folder.name]))
    if not files:
        raise InputError(f"{root}: no images found in ROOT/<wnid>/*.JPEG layout")
    return files


def to_imagenet64(path: Path) -> np.ndarray:
    """Decode one file and return its 64x64x3 uint8 RGB thumbnail (centre crop, box filter)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: cannot decode image ({exc})") from None
    return centre_square_thumbnail(rgb)


def plan(files: list[ImageFile], selection: Selection, existing: set[str]) -> list[ImageFile]:
    keep = selection.mask(np.array([f.class_id for f in files], dtype=np.int64))
    return [f for f, k in zip(files, keep) if k and f.sample_id not in existing]


def run(args: argparse.Namespace) -> None:
    """`python -m ingest jpeg`: the flags as `ingest_jpeg`'s typed arguments."""
    ingest_jpeg(args.lake, args.root, parse_selection(args.limit, args.classes, args.per_class), split=args.split,
                batch_size=args.batch_size, workers=args.workers, commit_interval=args.commit_interval,
                progress=not args.no_progress)


def ingest_jpeg(lake: str | os.PathLike[str], root: str | os.PathLike[str], selection: Selection = Selection(), *,
                split: str = "train", batch_size: int = 512, workers: int | None = None, commit_interval: float = 1.0,
                progress: bool = True) -> None:
    """Store every image of an ILSVRC-layout folder ROOT/<wnid>/ in the samples table of `lake` (created if missing).

    `workers` decoding threads (default: the CPUs); `batch_size` and `commit_interval`
    change speed and memory, never the result. Resumable: ids already in the lake are skipped.
    """
    from lake import LakeWriter, Provenance

    from .pipeline import SampleBatch, SampleSink, prefetch, progress_bar

    workers = workers if workers is not None else os.cpu_count() or 2
    positive(batch_size, "--batch-size")
    non_negative(commit_interval, "--commit-interval")
    positive(workers, "--workers")
    root = Path(root)
    files = scan(root)
    provenance = Provenance(
        job="ingest jpeg",
        parameters={"root": str(root.resolve()), "files": len(files), "split": split, **selection.describe()},
    )
    with LakeWriter.open(lake, provenance) as writer, ThreadPoolExecutor(workers) as pool:
        sink = SampleSink(writer, commit_interval=commit_interval)
        todo = plan(files, selection, sink.existing)

        def batches() -> Iterator[SampleBatch]:
            for start in range(0, len(todo), batch_size):
                chunk = todo[start : start + batch_size]
                images = list(pool.map(to_imagenet64, (root / f.relative for f in chunk)))
                yield SampleBatch(
                    images=np.stack(images),
                    sample_ids=[f.sample_id for f in chunk],
                    class_ids=np.array([f.class_id for f in chunk]),
                    origins=[f.relative for f in chunk],
                    source="real",
                    split=split,
                )

        with progress_bar(len(todo), "ingest jpeg", disable=not progress) as bar:
            for batch in prefetch(batches()):
                bar.update(sink.write(batch))
