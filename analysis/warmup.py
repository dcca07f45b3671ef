"""Compile the numba kernels every analysis runs, once per environment (`make setup` runs this).

umap-learn and pynndescent compile their kernels on first use; `analysis.jit` keeps the
machine code in numba's disk cache, so only the first process pays. Without this step that
first process is a user's first ``analysis run`` (measured on the demo lake: 46 s cold
against 13 s with the cache), or, in the test suite, every process that starts before the
cache is written. This runs the same code paths on small synthetic data: a small-data UMAP
fit, a fit that keeps an NN-descent index and places further rows through it, and an
NN-descent k-NN graph. What is cached is keyed on the argument types, not the data, so the
results of real analyses do not depend on it.

    python -m analysis.warmup
"""
from __future__ import annotations

import sys
import time


def warm_kernels() -> float:
    """Run every cached kernel once on synthetic data; returns the seconds it took."""
    import numpy as np

    from .embedding import fit_umap, prepare_for_transform, transform_rows
    from .neighbors import build_knn_graph
    from .params import UMAP_DEFAULTS

    start = time.perf_counter()
    scores = np.random.default_rng(0).normal(size=(600, 8)).astype(np.float32)
    fit_umap(scores[:200], UMAP_DEFAULTS)  # below 4096 rows: exact neighbours, no index
    model = fit_umap(scores, UMAP_DEFAULTS, will_transform=True)  # an NN-descent index kept for placing rows
    prepare_for_transform(model)
    transform_rows(model, scores[:50], np.ones(50, dtype=bool))
    build_knn_graph(scores, 10, exact=False)
    return time.perf_counter() - start


def main() -> int:
    seconds = warm_kernels()
    print(f"analysis: numba kernels compiled and cached in {seconds:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
