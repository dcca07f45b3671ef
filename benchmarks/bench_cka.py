"""Benchmark of debiased linear CKA (`analysis.cka.cka_matrix`) out of core; one JSON document on stdout.

Writes two synthetic "models" to a Zarr store in a temporary folder: `--layers-a` and
`--layers-b` layers (default 5 and 4: 20 layer pairs) of `--rows` samples (default 100,000)
x `--channels` channels (default 768), float32, in row chunks of `--chunk` rows. Every layer
mixes one shared 32-d signal with its own noise, so the CKA values are neither 0 nor 1.

Each variant runs in its own process (its peak resident memory is its own):

- ``out_of_core``: `cka_matrix` on the Zarr arrays themselves, read a block of rows at a time
  (each layer's block once for all its pairs; only the per-pair sums are kept);
- ``in_memory``: the same function on numpy arrays read whole into memory first (reading
  included), the baseline.

``ratio`` = out-of-core seconds / in-memory seconds, ``memory_ratio`` = peak MB likewise, and
``max_abs_difference`` between the two tables (they must agree to float64 rounding).
Timings are wall clock on a machine that may be shared: noisy.

    python benchmarks/bench_cka.py > cka.json
    python benchmarks/bench_cka.py --rows 20000 --channels 256   # quick
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def write_layers(store: Path, args: argparse.Namespace) -> None:
    """The synthetic layers, chunk by chunk (keyed by layer and chunk: the same numbers every run)."""
    import zarr

    root = zarr.open_group(store, mode="w")
    names = [f"a{i}" for i in range(args.layers_a)] + [f"b{j}" for j in range(args.layers_b)]
    mixes = {name: np.random.default_rng([7, i]).normal(size=(32, args.channels)).astype(np.float32) for i, name in enumerate(names)}
    arrays = {name: root.create_array(name, shape=(args.rows, args.channels), chunks=(args.chunk, args.channels), dtype="float32")
              for name in names}
    for start in range(0, args.rows, args.chunk):
        stop = min(args.rows, start + args.chunk)
        signal = np.random.default_rng([1, start]).normal(size=(stop - start, 32)).astype(np.float32)
        for i, name in enumerate(names):
            noise = np.random.default_rng([2, i, start]).normal(size=(stop - start, args.channels)).astype(np.float32)
            arrays[name][start:stop] = np.tanh(signal @ mixes[name]) * (1 + i % 3) + noise


def run_variant(store: Path, variant: str, args: argparse.Namespace) -> dict:
    """Time one variant in this process; its table goes to `store`/../<variant>.npy."""
    import zarr

    from analysis.cka import cka_matrix

    root = zarr.open_group(store, mode="r")
    start = time.perf_counter()
    if variant == "out_of_core":
        load = [root[name] for name in sorted(root.array_keys())]
    else:
        load = [np.asarray(root[name][:]) for name in sorted(root.array_keys())]
    first, second = load[: args.layers_a], load[args.layers_a :]
    table = cka_matrix(first, second)
    seconds = time.perf_counter() - start
    np.save(store.parent / f"{variant}.npy", table)
    return {"seconds": round(seconds, 3), "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="samples per layer (default 100000)")
    parser.add_argument("--channels", type=int, default=768, help="channels per layer (default 768)")
    parser.add_argument("--layers-a", type=int, default=5, help="layers of the first model (default 5)")
    parser.add_argument("--layers-b", type=int, default=4, help="layers of the second model (default 4)")
    parser.add_argument("--chunk", type=int, default=10_000, help="rows per Zarr chunk (default 10000)")
    parser.add_argument("--variant", choices=["out_of_core", "in_memory"], help=argparse.SUPPRESS)  # the child run
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.store, args.variant, args)))
        return
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "layers.zarr"
        write_layers(store, args)
        forwarded = [f"--rows={args.rows}", f"--channels={args.channels}", f"--layers-a={args.layers_a}",
                     f"--layers-b={args.layers_b}", f"--chunk={args.chunk}", f"--store={store}"]
        results = {}
        for variant in ("out_of_core", "in_memory"):
            out = subprocess.run([sys.executable, __file__, f"--variant={variant}", *forwarded], check=True, capture_output=True, text=True)
            results[variant] = json.loads(out.stdout)
        difference = float(np.abs(np.load(Path(folder) / "out_of_core.npy") - np.load(Path(folder) / "in_memory.npy")).max())
        table = np.load(Path(folder) / "out_of_core.npy")
    print(json.dumps({
        "benchmark": "cka", "rows": args.rows, "channels": args.channels, "pairs": args.layers_a * args.layers_b,
        "data_mb": round(args.rows * args.channels * 4 * (args.layers_a + args.layers_b) / 2**20, 1),
        **results,
        "ratio": round(results["out_of_core"]["seconds"] / results["in_memory"]["seconds"], 3),
        "memory_ratio": round(results["out_of_core"]["peak_mb"] / results["in_memory"]["peak_mb"], 3),
        "max_abs_difference": difference, "cka_range": [round(float(table.min()), 4), round(float(table.max()), 4)],
        "machine": {"python": platform.python_version(), "cpus": len(__import__("os").sched_getaffinity(0))},
    }, indent=2))


if __name__ == "__main__":
    main()
