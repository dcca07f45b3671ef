"""`analysis sets`: two models' generated samples compared in one key's PCA space, on constructed data with
known answers (a set against its own copy; a shift in one class only), with its refusals."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from analysis import list_analyses, run_pca
from analysis.cli import main
from analysis.commands import SetsConfig, run_sets
from analysis.errors import AnalysisError
from lake import LakeWriter, ModelRecord, Provenance, register_model
from tests.analysis.conftest import write_activations
from tests.conftest import tree_digest

SIGMAS = np.asarray([2.0], dtype=np.float32)
STUDENT = ModelRecord(name="student", kind="imagenet64", preset="tiny", weights="random", model_id="tiny-random-seed0", seed=0)
N = 80  # per generated set; classes alternate 0, 1
CONFIG = SetsConfig(k=3, pca_dim=8)


def quiet(message: str) -> None:
    """Keeps the runner's lines out of the test output."""


@pytest.fixture(scope="module")
def lake_with_sets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One table: 40 real rows, the student's one-step samples, and its 4-step samples: in class 0 exactly the
    one-step samples' activations, in class 1 the same shifted far away."""
    lake = tmp_path_factory.mktemp("sets") / "lake"
    with LakeWriter.open(lake, Provenance(job="register")) as writer:
        register_model(writer, STUDENT)
    rng = np.random.default_rng(0)
    one_step = rng.normal(size=(N, 8))
    steps = one_step.copy()
    steps[1::2] += 40.0  # class 1 (odd indices) moved
    real = rng.normal(size=(40, 8))
    ids = [*(f"in64/val_data/{i}" for i in range(40)), *(f"gen/tiny-random-seed0/s0/{i}" for i in range(N)),
           *(f"gen/tiny-random-seed0~sigmas80-2/s0/{i}" for i in range(N))]
    classes = np.concatenate([np.arange(40) % 2, np.arange(N) % 2, np.arange(N) % 2]).astype(np.int16)
    source = np.array(["real"] * 40 + ["generated"] * (2 * N), dtype=object)
    values = np.concatenate([real, one_step, steps])[:, None, :]
    write_activations(lake, "enc.8x8_block2", values, np.asarray(ids, dtype=object), source, classes, SIGMAS)
    run_pca(lake, "enc.8x8_block2", 2.0, pca_dim=8, log=quiet, progress=False)
    return lake


def test_a_set_against_its_copy_is_zero_and_a_moved_class_stands_out(lake_with_sets: Path, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(lake_with_sets, lake)
    outcome = run_sets(lake, "student", "student~sigmas80-2", "bottleneck", 2.0, CONFIG, log=quiet, progress=False)
    assert outcome.group == "analysis/sets/enc.8x8_block2@sigma2/student__vs__student~sigmas80-2"
    table = xr.open_zarr(lake, group=outcome.group)
    assert table.class_id.values.tolist() == [0, 1] and table.n_first.values.tolist() == table.n_second.values.tolist() == [40, 40]
    # Class 0: the same activations in both sets: Frechet distance 0 and every k-NN ball covered.
    assert table.frechet_distance.values[0] == pytest.approx(0.0, abs=1e-6)
    assert table.precision.values[0] == table.recall.values[0] == table.coverage.values[0] == 1.0
    # Class 1: moved by 40 in every one of 8 dimensions (standardised before PCA): far apart, no ball reached.
    assert table.frechet_distance.values[1] > 10
    assert table.precision.values[1] == table.recall.values[1] == table.coverage.values[1] == 0.0
    assert table.attrs["n_first"] == table.attrs["n_second"] == N
    assert table.attrs["first_model_id"] == "tiny-random-seed0"
    assert table.attrs["second_model_id"] == "tiny-random-seed0~sigmas80-2"
    assert 0.4 < table.attrs["precision"] < 0.6  # overall: one class of two matches

    assert run_sets(lake, "student", "student~sigmas80-2", "bottleneck", 2.0, CONFIG, log=quiet, progress=False).reused
    [record] = [r for r in list_analyses(lake)["analyses"] if r["kind"] == "sets"]
    assert record["stale"] is False and record["n_first"] == N


def test_the_command_prints_the_table_largest_distance_first(lake_with_sets: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(lake_with_sets, lake)
    assert main(["sets", "--lake", str(lake), "--layer", "bottleneck", "--sigma", "2", "--models", "student,student~sigmas80-2",
                 "--k", "3", "--pca-dim", "8", "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("enc.8x8_block2@sigma2: student~sigmas80-2 against student: 80 and 80 samples, k=3")
    assert lines[2].startswith("overall") and lines[3].startswith("1: goldfish") and lines[4].startswith("0: tench")


@pytest.mark.parametrize(("models", "says"), [
    ("teacher,student", "--models: 'teacher' is not a registered model of"),
    ("student,student~heun0", "--models: 'student~heun0': 'heun0': not a Heun schedule id"),
    ("student,student~heun8", "holds no samples of student~heun8 (tiny-random-seed0~heun8); probe them"),
    ("student,student", "--models: student and student are the same samples"),
])
def test_refusals_are_one_line_and_leave_the_lake_unchanged(lake_with_sets: Path, tmp_path: Path, models: str, says: str) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(lake_with_sets, lake)
    before = tree_digest(lake)
    first, second = models.split(",")
    with pytest.raises(AnalysisError, match=says.replace("(", r"\(").replace(")", r"\)").replace("~", "~")) as caught:
        run_sets(lake, first, second, "bottleneck", 2.0, CONFIG, log=quiet, progress=False)
    assert "\n" not in str(caught.value)
    assert tree_digest(lake) == before
