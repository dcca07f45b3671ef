"""kill -9 during `ingest npz`, then rerun: the lake ends identical to an uninterrupted run."""
from __future__ import annotations

import json
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


def live_rows(lake) -> int:
    """Rows written to the samples table so far, committed or not (the live array metadata)."""
    try:
        return json.loads((lake / "samples" / "sample_id" / "zarr.json").read_text())["shape"][0]
    except (FileNotFoundError, ValueError, KeyError):
        return 0


def test_killed_before_first_commit_reads_as_empty_and_rerun_is_identical(npz_factory, tmp_path):
    path, _, _ = npz_factory("train_data_batch_1.npz", 1500, seed=1)
    args = ["ingest", "npz", str(path), "--no-progress", "--batch-size", "100"]
    reference = tmp_path / "reference"
    run_cli(*args, "--lake", str(reference), check=True)

    # A commit interval longer than the job: rows get written, but nothing is committed
    # until the end, so the kill lands before the first commit of a brand-new lake.
    lake = tmp_path / "lake"
    process = subprocess.Popen([sys.executable, "-m", *args, "--commit-interval", "3600", "--lake", str(lake)], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while process.poll() is None and live_rows(lake) < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.poll() is None, "the job finished before it could be killed; make the input larger"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert live_rows(lake) >= 200 and committed_rows(lake) == 0

    # A plain reader opens the samples group: 0 rows, every variable, dtype and chunking.
    empty = xr.open_zarr(lake, group="samples")
    ref = xr.open_zarr(reference, group="samples")
    assert empty.sizes["sample"] == 0
    assert set(empty.variables) == set(ref.variables) and set(empty.coords) == set(ref.coords)
    for name, variable in ref.variables.items():
        assert empty[name].dtype == variable.dtype, name
        assert empty[name].dims == variable.dims, name
        assert empty[name].encoding.get("chunks") == variable.encoding.get("chunks"), name
    assert empty.image.shape == (0, 64, 64, 3)
    assert [p.name for p in lake.parent.iterdir() if p.name.startswith(".")] == []  # no staging folder left

    run_cli(*args, "--lake", str(lake), check=True)
    got = xr.open_zarr(lake, group="samples")
    for name in ["image", *ref.coords]:
        np.testing.assert_array_equal(got[name].values, ref[name].values, err_msg=name)
    assert tree_digest(lake / "samples") == tree_digest(reference / "samples")
    # The killed run never committed, so it left no provenance record (rollback removed it).
    assert [r["status"] for r in open_lake(lake).provenance()] == ["complete"]
