"""analysis.runner: one runner for every step; a pipeline is a list of steps."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from analysis import RunConfig
from analysis.runner import Computed, run_step, run_steps
from analysis.steps import CompareStep, KnnConfig, KnnStep, PcaStep, UmapStep
from lake import open_lake
from lake.layout import knn_spec

from tests.analysis.conftest import build_lake, synthetic_table

QUIET = {"log": lambda _: None, "progress": False}


def test_run_config_is_the_list_of_steps_run_does() -> None:
    steps = RunConfig(pca_dim=8, k=4, compare_k=3, seed=7).steps()
    assert [type(s) for s in steps] == [PcaStep, UmapStep, UmapStep, KnnStep, CompareStep]
    assert [s.params.n_components for s in steps if isinstance(s, UmapStep)] == [2, 3]
    assert steps[3].config == KnnConfig(k=4, seed=7, pca_dim=8)
    assert steps[4].config.k == 3 and steps[4].config.seed == 7


def test_a_list_of_steps_runs_in_order_reuses_and_forces_once(lake: Path) -> None:
    steps = [PcaStep(pca_dim=6), KnnStep(KnnConfig(k=3, pca_dim=6))]
    lines: list[str] = []
    first = run_steps(steps, lake, "bottleneck", 2, log=lines.append, progress=False)
    assert [(o.analysis, o.reused) for o in first] == [("pca", False), ("knn", False)]
    assert first[1].group == "analysis/knn/enc.8x8_block2@sigma2"
    again = run_steps(steps, lake, "bottleneck", 2, **QUIET)
    assert [o.reused for o in again] == [True, True]
    # --force recomputes the PCA, which makes the graph stale: it is recomputed (not forced twice).
    forced = run_steps(steps, lake, "bottleneck", 2, force=True, **QUIET)
    assert [o.reused for o in forced] == [False, False]
    knn = open_lake(lake).result_attrs("knn", "enc.8x8_block2@sigma2")
    assert knn["pca_run_id"] == open_lake(lake).result_attrs("pca", "enc.8x8_block2@sigma2")["run_id"]
    assert any(line.startswith("layer bottleneck = enc.8x8_block2") for line in lines)


def test_a_step_is_skipped_with_a_note_when_it_does_not_apply(tmp_path: Path) -> None:
    table = synthetic_table(n_real=60, n_generated=0, nan_rows=0)
    lake = build_lake(tmp_path / "lake", table)
    lines: list[str] = []
    outcomes = run_steps([PcaStep(pca_dim=4), CompareStep()], lake, "bottleneck", 2, log=lines.append, progress=False)
    assert [o.analysis for o in outcomes] == ["pca"]
    assert "skipping compare: enc.8x8_block2@sigma2 holds only real samples" in lines


class _SelfNeighbours(KnnStep):
    """A step written outside analysis/steps: every row's neighbour is itself, at distance 0."""

    def compute(self, ctx):  # noqa: ANN001, ANN201 - the Step interface
        ids = open_lake(ctx.lake.path).column(ctx.key.pca_group, "sample_id")
        n = len(ids)

        def write(staged, attrs):  # noqa: ANN001, ANN202
            from analysis.results import read_labels, write_rows

            rows = np.arange(n)[:, None]
            write_rows(staged.table(knn_spec(ctx.key, 1, attrs)), read_labels(ctx.lake, ctx.key.pca_group),
                       {"neighbor_id": ids[rows], "neighbor_row": rows, "distance": np.zeros((n, 1), np.float32)})
            if self.config.seed == 13:
                raise RuntimeError("disk full")

        return Computed(attrs={"n_rows": n, "pca_run_id": "x"}, write=write, message=lambda attrs: f"wrote {n}")


def test_the_runner_writes_stamps_and_publishes_any_step(lake: Path) -> None:
    outcome = run_step(_SelfNeighbours(KnnConfig(k=1, pca_dim=4)), lake, "bottleneck", 2, **QUIET)
    assert not outcome.reused and outcome.summary["n_rows"] == open_lake(lake).shape(outcome.group, "sample_id")[0]
    ds = xr.open_zarr(lake, group=outcome.group)
    attrs = ds.attrs
    # Every result carries what it is, from which table, with what, and by which run.
    assert attrs["analysis"] == "knn" and attrs["key"] == "enc.8x8_block2@sigma2"
    assert attrs["source_group"] == "activations/enc.8x8_block2" and attrs["parameters"]["pca_dim"] == 4
    run = [r for r in open_lake(lake).provenance() if r["run_id"] == attrs["run_id"]]
    assert run and run[0]["job"] == "analysis knn" and run[0]["status"] == "complete"
    assert run[0]["rows_added"] == {outcome.group: len(ds["sample_id"])}
    np.testing.assert_array_equal(ds["neighbor_row"].values[:, 0], np.arange(len(ds["sample_id"])))


def test_a_step_failing_while_it_writes_leaves_the_lake_as_it_was(lake: Path) -> None:
    run_step(PcaStep(pca_dim=4), lake, "bottleneck", 2, **QUIET)
    before = json.loads((lake / "zarr.json").read_text())
    with pytest.raises(RuntimeError, match="disk full"):
        run_step(_SelfNeighbours(KnnConfig(k=1, pca_dim=4, seed=13)), lake, "bottleneck", 2, **QUIET)
    assert json.loads((lake / "zarr.json").read_text()) == before
    assert not (lake / "analysis" / "knn").exists() or not any((lake / "analysis" / "knn").iterdir())


def test_each_step_names_its_result_group_through_the_layout() -> None:
    from lake import AnalysisKey

    key = AnalysisKey("l", 0.5)
    groups = [step.group(key) for step in (PcaStep(), UmapStep(), KnnStep(), CompareStep())]
    assert groups == ["analysis/pca/l@sigma0.5", "analysis/embeddings/l@sigma0.5/umap2d-n15-d0.1-euclidean-s42",
                      "analysis/knn/l@sigma0.5", "analysis/compare/l@sigma0.5"]
