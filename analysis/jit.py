"""umap-learn's and pynndescent's compiled kernels, kept on disk so a process compiles them once per machine.

Both libraries compile their numba kernels on first call in every process, and most are
declared without ``cache=True``: an ``analysis run`` on the demo's 736 rows spent 10 of its
20 seconds compiling, every time, and the k-NN step's NN-descent path another 30. Turning
numba's own on-disk cache on for those kernels before their first call makes every later
process load the machine code instead (measured: the same run in 9.6 s).

Numba keys each cached kernel on its source file (path and modification time) and argument
types and stores it where numba's rules say (the package's ``__pycache__``, or
``NUMBA_CACHE_DIR``); what is loaded is what was compiled, so results do not change.
"""
from __future__ import annotations

import functools
import sys

__all__ = ["cache_compiled_kernels"]

PACKAGES = ("umap", "pynndescent")
# Kernels numba refuses to cache (they reference dynamic globals); asking would only add a
# warning per process. Their callees are still cached.
UNCACHEABLE = frozenset({"pynndescent.pynndescent_.nn_descent", "pynndescent.pynndescent_.nn_descent_internal"})


@functools.cache  # once per process: importing umap loads every module with kernels, so later calls find nothing new
def cache_compiled_kernels() -> None:
    """Import umap-learn (which imports pynndescent) and turn numba's disk cache on for their kernels.

    Call it before the first use of either library in a process; later calls return at once.
    """
    import umap  # noqa: F401  (imports every umap and pynndescent module that holds kernels)
    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] not in PACKAGES:
            continue
        for kernel in list(vars(module).values()):
            if (isinstance(kernel, CPUDispatcher) and isinstance(getattr(kernel, "_cache", None), NullCache)
                    and f"{kernel.py_func.__module__}.{kernel.py_func.__qualname__}" not in UNCACHEABLE):
                kernel.enable_caching()
