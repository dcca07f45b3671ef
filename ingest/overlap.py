"""Overlapping lake writes with network compute, keeping the compute on the calling thread.

`ingest.pipeline.prefetch` moves the *producer* to a background thread, which suits
decoding files. For network compute it is the wrong way round: on CPU, torch's
OpenMP pool belongs to the thread that runs the ops, and computing in a second
thread leaves two pools spinning on the same cores (measured: 8x slower on 2 cores
after another thread had run torch ops). Under `accelerate launch` the collectives
must also stay on one thread whose failure ends the process. So here the caller's
thread computes and a single worker thread writes, one batch behind.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def write_behind(items: Iterable[T], write: Callable[[T], None]) -> None:
    """Call `write(item)` for each item in order, in one worker thread, while the next item is produced.

    At most one write is pending; an exception from `write` is raised here before the
    next item is handed over, and an exception from `items` waits for the pending write
    (so the caller's error handling sees a quiet lake).
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-write") as pool:
        pending: Future[None] | None = None
        for item in items:
            if pending is not None:
                pending.result()
            pending = pool.submit(write, item)
        if pending is not None:
            pending.result()
