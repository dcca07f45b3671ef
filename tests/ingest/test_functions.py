"""The ingest jobs as plain Python functions: the same lake as the command line, typed arguments."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import xarray as xr

from ingest.errors import InputError
from ingest.npz import ingest_npz
from ingest.core.models import ModelSpec, load_model
from ingest.selection import Selection, parse_selection
from lake import open_lake
from tests.conftest import REPO, run_cli


def read(lake, group: str) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_zarr(lake, group=group).load()


def assert_same_groups(a, b, groups) -> None:
    for group in groups:
        x, y = read(a, group), read(b, group)
        assert x.sizes == y.sizes, group
        for name in [*x.data_vars, *x.coords]:
            np.testing.assert_array_equal(x[name].values, y[name].values, err_msg=f"{group}/{name}")


def test_ingest_npz_from_python_makes_the_lake_the_cli_makes(npz_factory, tmp_path):
    (tmp_path / "batches").mkdir()
    npz_factory("batches/train_data_batch_2.npz", 6, seed=2)
    npz_factory("batches/val_data.npz", 5, seed=3)
    folder = tmp_path / "batches"
    cli = run_cli("ingest", "npz", str(folder), "--lake", str(tmp_path / "cli"), "--limit", "8", "--split", "x",
                  "--batch-size", "3", "--no-progress")
    assert cli.returncode == 0, cli.stderr
    ingest_npz(tmp_path / "py", [folder], parse_selection(8, None, None), split="x", batch_size=4, progress=False)
    assert_same_groups(tmp_path / "cli", tmp_path / "py", ["samples"])
    assert open_lake(tmp_path / "py").num_samples == 8
    # Provenance records the same parameters whichever way the job was started.
    params = [open_lake(tmp_path / name).provenance()[-1]["parameters"] for name in ("cli", "py")]
    assert params[0] == params[1] == {"split": "x", "limit": 8, "classes": None, "per_class": None}


def test_a_selection_built_in_python_is_recorded_by_value(npz_factory, tmp_path):
    path, _, labels = npz_factory("train_data_batch_1.npz", 12, seed=4)
    first_class = int(open_lake_classes(path)[0])
    ingest_npz(tmp_path / "lake", [path], Selection(classes=frozenset({first_class})), progress=False)
    lake = open_lake(tmp_path / "lake")
    assert set(lake.column("samples", "class_id").tolist()) == {first_class}
    assert lake.provenance()[-1]["parameters"]["classes"] == [first_class]


def open_lake_classes(path):
    from ingest.npz import open_npz

    return open_npz(path).class_ids


def test_bad_arguments_raise_one_line_input_errors_before_the_lake_is_made(npz_factory, tmp_path):
    path, _, _ = npz_factory("train_data_batch_1.npz", 2)
    with pytest.raises(InputError, match="--batch-size must be a positive integer, got 0"):
        ingest_npz(tmp_path / "lake", [path], batch_size=0)
    with pytest.raises(InputError, match="--commit-interval must be >= 0, got -1"):
        ingest_npz(tmp_path / "lake", [path], commit_interval=-1)
    with pytest.raises(InputError, match="does not exist"):
        ingest_npz(tmp_path / "lake", [tmp_path / "missing.npz"])
    assert not (tmp_path / "lake").exists()
    with pytest.raises(InputError, match="^--preset: "):
        load_model(ModelSpec(preset="no-such-net", device="cpu"))


PYTHON_JOBS = """
import sys
from ingest.activations import probe_activations
from ingest.generate import generate
from ingest.core.models import ModelSpec
model = ModelSpec(preset="micro", device="cpu")
generate(sys.argv[1], model, 8, seed=3, layers=["bottleneck"], batch_size=8, progress=False)
probe_activations(sys.argv[1], model, ["bottleneck"], [2.0, 10.0], source="generated", progress=False)
"""


def test_generate_and_probe_from_python_match_the_cli(tmp_path):
    # Fresh processes on both sides: CPU results depend on the process's thread state.
    py = subprocess.run([sys.executable, "-c", textwrap.dedent(PYTHON_JOBS), str(tmp_path / "py")], cwd=REPO,
                        capture_output=True, text=True)
    assert py.returncode == 0, py.stderr
    common = ["--preset", "micro", "--device", "cpu", "--no-progress"]
    gen = run_cli("ingest", "generate", "--lake", str(tmp_path / "cli"), "--num-samples", "8", "--seed", "3",
                  "--layers", "bottleneck", "--batch-size", "8", *common)
    assert gen.returncode == 0, gen.stderr
    probe = run_cli("ingest", "activations", "--lake", str(tmp_path / "cli"), "--layers", "bottleneck",
                    "--sigmas", "2,10", "--source", "generated", *common)
    assert probe.returncode == 0, probe.stderr
    assert_same_groups(tmp_path / "cli", tmp_path / "py", ["samples", "generation/enc.8x8_block2", "activations/enc.8x8_block2"])
    lake = open_lake(tmp_path / "py")
    assert lake.activation_sigmas("enc.8x8_block2") == [2.0, 10.0]
    assert lake.activations("enc.8x8_block2", 10)["probed"].values.all()
    jobs = [(r["job"], r["parameters"].get("preset")) for r in lake.provenance()]
    assert jobs == [("ingest generate", "micro"), ("ingest activations", "micro")]
