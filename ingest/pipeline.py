"""The shape every ingest job shares: prepare the target, write batches, commit each one.

Jobs produce `SampleBatch`es in a deterministic order; `SampleSink` skips ids the
lake already has (resume), appends the rest and commits after every batch, so a
killed job loses at most one batch of work and never duplicates a row.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from lake import SAMPLES, LakeWriter, imagenet_classes

T = TypeVar("T")


@dataclass
class SampleBatch:
    """Rows for the samples table; wnid and class name are derived from class_id."""

    images: np.ndarray  # (N, 64, 64, 3) uint8
    sample_ids: list[str]
    class_ids: np.ndarray
    origins: list[str]
    source: str
    split: str
    seed: int = -1
    model_id: str = ""

    def __len__(self) -> int:
        return len(self.sample_ids)

    def columns(self) -> dict[str, Any]:
        table = imagenet_classes()
        n = len(self)
        class_ids = np.asarray(self.class_ids, dtype=np.int16)
        return {
            "image": self.images,
            "sample_id": self.sample_ids,
            "source": [self.source] * n,
            "split": [self.split] * n,
            "class_id": class_ids,
            "wnid": [table.wnids[c] for c in class_ids],
            "class_name": [table.names[c] for c in class_ids],
            "origin": self.origins,
            "seed": np.full(n, self.seed, dtype=np.int64),
            "model_id": [self.model_id] * n,
        }


class SampleSink:
    """Appends batches to the samples table of an open writer and commits them.

    With `commit_interval` > 0, a commit happens once that many seconds have passed
    since the last one (and always when the writer closes): each commit rewrites the
    lake's root document, which costs tens of milliseconds on the writing thread. A
    killed job redoes at most that interval's work on rerun; nothing is lost.
    """

    def __init__(self, writer: LakeWriter, commit_interval: float = 0.0):
        self.writer = writer
        self.table = writer.table(SAMPLES)
        self.existing: set[str] = set(self.table.keys())
        self.commit_interval = commit_interval
        self._last_commit = time.monotonic()

    def write(self, batch: SampleBatch) -> int:
        """Append the batch and commit if due. Returns rows added."""
        if len(batch) == 0:
            return 0
        self.table.append(batch.columns())
        self.existing.update(batch.sample_ids)
        if time.monotonic() - self._last_commit >= self.commit_interval:
            self.writer.commit()
            self._last_commit = time.monotonic()
        return len(batch)


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Produce `items` in a background thread, `depth` ahead, so reading overlaps writing.

    Decompression (zlib) and decoding (Pillow) release the GIL, as does the writer's
    compression, so the two stages really run side by side. Exceptions in the
    producer are re-raised in the consumer.
    """
    buffer: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                buffer.put(("item", item))
            buffer.put(("done", None))
        except BaseException as exc:  # handed to the consumer thread
            buffer.put(("error", exc))

    thread = threading.Thread(target=produce, name="ingest-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = buffer.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        while thread.is_alive():
            try:
                buffer.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def progress_bar(total: int, description: str, disable: bool = False) -> Any:
    """A tqdm bar in images, with rate (img/s) and ETA."""
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="img", unit_scale=False, dynamic_ncols=True, disable=disable, smoothing=0.1)
