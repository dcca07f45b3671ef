"""`accelerate launch -m ingest generate` with two CPU processes ends with the lake a single process makes."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from lake import open_lake
from tests.conftest import REPO

# tiny, not micro: micro's shorter passes went with two aborted launches in five suite runs on a loaded
# machine (ranks now leave the process group before exiting; the config that never failed stays).
ARGS = ["--preset", "tiny", "--device", "cpu", "--no-progress", "--num-samples", "20", "--batch-size", "16",
        "--layers", "bottleneck", "--samples-per-class", "3"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def generate_single_and_launched(tmp_path, args: list[str]) -> tuple[Path, Path]:
    """`ingest generate` with `args` once in one process and once under a two-process `accelerate launch`.

    Low bits on CPU depend on the thread count, so both runs use one thread per process
    (what torchrun gives each of several processes). Returns (single, multi) lake paths.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    single, multi = tmp_path / "single", tmp_path / "multi"
    subprocess.run([sys.executable, "-m", "ingest", "generate", "--lake", str(single), *args],
                   cwd=REPO, env=env, check=True, capture_output=True, timeout=120)
    # accelerate's --cpu mode needs MPI for several processes; its torchrun-based launcher
    # (--multi_gpu) plus --device cpu gives gloo processes on any machine.
    launched = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
         "--main_process_port", str(free_port()), "-m", "ingest", "generate", "--lake", str(multi), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert launched.returncode == 0, launched.stderr[-3000:]
    return single, multi


def test_two_processes_write_the_same_lake_as_one(tmp_path):
    single, multi = generate_single_and_launched(tmp_path, ARGS)

    [record] = open_lake(multi).provenance()
    assert record["parameters"]["processes"] == 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for group in ["samples", "generation/enc.8x8_block2"]:
            a, b = xr.open_zarr(multi, group=group), xr.open_zarr(single, group=group)
            assert a.sizes["sample"] == 20
            for name in [*b.data_vars, *b.coords]:
                np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=f"{group}/{name}")
