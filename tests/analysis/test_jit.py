"""umap-learn's kernels are compiled by the first process and loaded from numba's disk cache by the next."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from tests.conftest import REPO

# One kernel every UMAP fit runs (compiling all of them would take ~20 s), then what numba says about it.
FIT = """
import json, sys
import numpy as np
from analysis.jit import cache_compiled_kernels
cache_compiled_kernels()
from umap.umap_ import smooth_knn_dist
distances = np.sort(np.random.default_rng(0).uniform(size=(60, 5)).astype(np.float32), axis=1)
np.save(sys.argv[1], np.stack(smooth_knn_dist(distances, 5.0)))
stats = smooth_knn_dist.stats
print(json.dumps({"hits": sum(stats.cache_hits.values()), "misses": sum(stats.cache_misses.values())}))
"""


def run_in_a_fresh_process(out) -> dict:
    # numba's default cache place, as users get it: an empty NUMBA_CACHE_DIR would also make
    # the first process recompile the kernels umap-learn already caches itself (~12 s).
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    result = subprocess.run([sys.executable, "-c", FIT, str(out)], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.splitlines()[-1])


def test_a_later_process_loads_the_kernel_an_earlier_one_compiled_and_computes_the_same(tmp_path):
    first = run_in_a_fresh_process(tmp_path / "first.npy")
    assert first in ({"hits": 0, "misses": 1}, {"hits": 1, "misses": 0})  # compiled and saved, or saved by an earlier run
    second = run_in_a_fresh_process(tmp_path / "second.npy")
    assert second == {"hits": 1, "misses": 0}
    np.testing.assert_array_equal(np.load(tmp_path / "first.npy"), np.load(tmp_path / "second.npy"))


def test_making_a_umap_turns_the_cache_on():
    from numba.core.caching import NullCache
    from umap.layouts import _nb_optimize_layout_euclidean_single_epoch as one_epoch

    from analysis.embedding import make_umap
    from analysis.params import UMAPParams

    make_umap(UMAPParams(), n_rows=100)
    assert not isinstance(one_epoch._cache, NullCache)  # the kernel every fit runs per epoch
