"""Where Dask graphs run: local threads (default), a local process pool, or a dask.distributed cluster.

The graphs are the same in every case and every reduction has a fixed shape, so the
results are identical whichever scheduler runs them.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .errors import AnalysisError

LOCAL_SCHEDULERS = ("threads", "processes", "synchronous")


@contextmanager
def dask_scheduler(spec: str | None = None) -> Iterator[str]:
    """Run the Dask computations inside this block on `spec`.

    None or "threads": local thread pool. "processes": a local process pool (useful for
    UMAP's transform, whose layout optimisation holds the GIL). "synchronous": one
    thread, for debugging. Anything else is a dask.distributed scheduler address
    (``tcp://host:8786``); the workers must see the lake at the same path.
    Yields a one-line description of where the work runs.
    """
    import dask

    spec = spec or "threads"
    if spec == "processes":
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=os.cpu_count(), mp_context=multiprocessing.get_context("spawn")) as pool:
            with dask.config.set(scheduler="processes", pool=pool):
                yield f"local process pool ({os.cpu_count()} processes)"
        return
    if spec in LOCAL_SCHEDULERS:
        from threadpoolctl import threadpool_limits

        # Dask already runs one task per core; BLAS threads inside each task would
        # oversubscribe the cores (dask.distributed workers do the same by default).
        limits = 1 if spec == "threads" else None
        with dask.config.set(scheduler=spec), threadpool_limits(limits=limits, user_api="blas"):
            yield f"local {spec}"
        return
    try:
        from distributed import Client

        # Connect timeout: dask's distributed.comm.timeouts.connect (30 s unless configured).
        client = Client(spec, timeout=dask.config.get("distributed.comm.timeouts.connect"), set_as_default=True)
    except (OSError, TimeoutError, ValueError) as exc:
        raise AnalysisError(f"--scheduler {spec}: cannot connect to a dask scheduler there ({exc})") from None
    try:
        workers = len(client.scheduler_info().get("workers", {}))
        yield f"dask.distributed cluster {spec} ({workers} workers)"
    finally:
        client.close()


def active_client() -> Any:
    """The dask.distributed client in use, if any."""
    try:
        from distributed import get_client

        return get_client()
    except (ImportError, ValueError):
        return None


def compute_with_progress(items: Sequence[Any], desc: str, unit: str = "item", show: bool = True) -> list[Any]:
    """Compute dask collections / delayed objects together; results in order, with a tqdm bar.

    Locally the bar counts finished tasks of the whole graph; on a cluster, finished items.
    """
    import dask
    from tqdm.auto import tqdm

    items = list(items)
    if not items:
        return []
    client = active_client()
    if client is not None:
        from distributed import as_completed

        futures = client.compute(items)
        with tqdm(total=len(items), desc=desc, unit=unit, disable=not show, leave=False) as bar:
            for _ in as_completed(futures):
                bar.update(1)
        return list(client.gather(futures))
    from dask.callbacks import Callback

    # Tasks before graph optimisation (fusion runs some together), so the bar is an upper bound.
    total = len(set().union(*(item.__dask_graph__().keys() for item in items))) if show else 0
    with tqdm(total=total, desc=desc, unit="task", disable=not show, leave=False) as bar:

        def posttask(key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
            bar.update(1)

        with Callback(posttask=posttask):
            results = list(dask.compute(*items))
        bar.update(max(0, total - bar.n))
        return results
