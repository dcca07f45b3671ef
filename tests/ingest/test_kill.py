"""kill -9 during `ingest npz`, then rerun: the lake ends identical to an uninterrupted run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import xarray as xr

from lake import open_lake
from lake.errors import LakeError
from tests.conftest import REPO, run_cli, tree_digest


def committed_rows(lake) -> int:
    try:
        return open_lake(lake).num_samples
    except (LakeError, FileNotFoundError, ValueError):
        return 0


def check_no_partial_rows(lake) -> None:
    """What a reader sees mid-job: aligned columns, no unfilled ids, real images."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(lake, group="samples")
    ids = ds.sample_id.values
    assert len(ids) == ds.sizes["sample"] and "" not in set(ids.tolist())
    assert len(set(ids.tolist())) == len(ids)
    if len(ids):
        assert ds.image[-1].values.std() > 0  # the last visible row holds a real image, not fill


def test_kill_minus_9_then_rerun_is_identical(npz_factory, tmp_path):
    first, _, _ = npz_factory("train_data_batch_1.npz", 1500, seed=1)
    second, _, _ = npz_factory("train_data_batch_2.npz", 1500, seed=2)
    args = ["ingest", "npz", str(first), str(second), "--no-progress", "--batch-size", "100", "--commit-interval", "0"]

    reference = tmp_path / "reference"
    run_cli(*args, "--lake", str(reference), check=True)

    lake = tmp_path / "lake"
    kills = 0
    for _ in range(3):  # kill it at several points, not just once
        process = subprocess.Popen([sys.executable, "-m", *args, "--lake", str(lake)], cwd=REPO,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        floor = committed_rows(lake) + 200
        deadline = time.monotonic() + 60
        while process.poll() is None and committed_rows(lake) < floor and time.monotonic() < deadline:
            time.sleep(0.01)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            kills += 1
        process.wait()
        check_no_partial_rows(lake)
    assert kills >= 1, "the job finished before it could be killed; make the input larger"
    assert 0 < committed_rows(lake) < 3000

    run_cli(*args, "--lake", str(lake), check=True)
    ref, got = xr.open_zarr(reference, group="samples"), xr.open_zarr(lake, group="samples")
    for name in ["image", *ref.coords]:
        np.testing.assert_array_equal(got[name].values, ref[name].values, err_msg=name)
    # Same bytes on disk too, chunk for chunk.
    assert tree_digest(lake / "samples") == tree_digest(reference / "samples")
