"""Dask PCA: matches sklearn, excludes unprobed rows, stores a usable transform, same on a cluster."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from analysis import AnalysisError, load_pca_model, project, run_pca
from analysis.inputs import open_activations
from analysis.keys import AnalysisKey
from analysis.pca import compute_moments, fit_from_moments
from analysis.store import as_lake

KEY = "enc.8x8_block2@sigma2"
GROUP = f"analysis/pca/{KEY}"
QUIET = {"log": lambda _: None, "progress": False}


def _sklearn_reference(values: np.ndarray, n_components: int) -> tuple[np.ndarray, object]:
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    valid = ~np.isnan(values).any(axis=1)
    x = values[valid].astype(np.float64)
    z = StandardScaler().fit_transform(x)
    pca = PCA(n_components=n_components, svd_solver="full").fit(z)
    return valid, pca


def _aligned_signs(ours: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """theirs with each component's sign flipped to agree with ours."""
    signs = np.sign(np.sum(ours * theirs, axis=-1, keepdims=True))
    return theirs * signs


def test_pca_matches_sklearn_and_excludes_unprobed_rows(lake: Path, table) -> None:
    outcome = run_pca(lake, "bottleneck", 2, pca_dim=6, block_rows=64, **QUIET)
    assert outcome.group == GROUP and not outcome.reused

    values = table.values[:, 1, :]
    valid, reference = _sklearn_reference(values, 6)
    ds = xr.open_zarr(lake, group=GROUP)  # plain xarray, nothing from this project
    assert ds.sizes["sample"] == int(valid.sum()) < len(values)
    assert list(ds["sample_id"].values) == list(table.sample_ids[valid])
    assert list(ds["source"].values) == list(table.source[valid])
    assert ds["scores"].dims == ("sample", "component") and ds["components"].dims == ("component", "feature")

    components = ds["components"].values
    np.testing.assert_allclose(components, _aligned_signs(components, reference.components_), atol=1e-6)
    np.testing.assert_allclose(ds["explained_variance"].values, reference.explained_variance_, rtol=1e-6)
    np.testing.assert_allclose(ds["explained_variance_ratio"].values, reference.explained_variance_ratio_, rtol=1e-6)
    expected_scores = reference.transform(
        (values[valid] - values[valid].mean(axis=0, dtype=np.float64)) / values[valid].std(axis=0, dtype=np.float64)
    )
    signs = np.sign(np.sum(components * reference.components_, axis=1))
    np.testing.assert_allclose(ds["scores"].values, expected_scores * signs, atol=2e-4)

    attrs = ds.attrs
    assert attrs["excluded_rows"] == int((~valid).sum()) and attrs["parameters"] == {"pca_dim": 6}
    assert attrs["layer"] == "enc.8x8_block2" and attrs["sigma"] == 2.0 and attrs["run_id"]
    # The provenance record of the run is in the lake too.
    runs = [r for r in as_lake(lake).provenance() if r["job"] == "analysis pca"]
    assert runs and runs[-1]["status"] == "complete" and runs[-1]["rows_added"] == {GROUP: int(valid.sum())}


def test_split_and_sample_rows_join_the_samples_table(lake: Path, table) -> None:
    run_pca(lake, "bottleneck", 2, pca_dim=4, **QUIET)
    ds = xr.open_zarr(lake, group=GROUP)
    ids = ds["sample_id"].values
    rows = ds["sample_row"].values
    samples = xr.open_zarr(lake, group="samples")
    sample_ids = samples["sample_id"].values
    present = rows >= 0
    assert (sample_ids[rows[present]] == ids[present]).all()
    # The last 3 activation rows have no samples row (tolerated): split '' and row -1.
    absent = set(table.sample_ids[-3:])
    assert {i for i, r in zip(ids, rows) if r < 0} == absent & set(ids)
    assert set(ds["split"].values[present]) == {"val", "generated"} and set(ds["split"].values[~present]) == {""}


def test_blocking_does_not_change_the_result(lake: Path) -> None:
    lake_view = as_lake(lake)
    key = AnalysisKey("enc.8x8_block2", 2.0)
    small = fit_from_moments(compute_moments(open_activations(lake_view, key, block_rows=37).values), 5)
    large = fit_from_moments(compute_moments(open_activations(lake_view, key, block_rows=4096).values), 5)
    np.testing.assert_allclose(small.components, large.components, atol=1e-9)
    np.testing.assert_allclose(small.mean, large.mean, rtol=1e-12)
    np.testing.assert_allclose(small.explained_variance, large.explained_variance, rtol=1e-9)


def test_project_places_new_activations_like_the_stored_scores(lake: Path, table) -> None:
    run_pca(lake, "bottleneck", 2, pca_dim=5, **QUIET)
    ds = xr.open_zarr(lake, group=GROUP)
    values = table.values[:, 1, :]
    valid = ~np.isnan(values).any(axis=1)
    projected = project(lake, KEY, values[valid][:20])
    np.testing.assert_allclose(projected, ds["scores"].values[:20], atol=1e-5)
    model = load_pca_model(lake, KEY)
    assert model.n_components == 5 and model.mean.shape == (values.shape[1],)
    with pytest.raises(ValueError, match="channels"):
        model.transform(values[:2, :3])


def test_rerun_reuses_unless_forced_and_force_replaces(lake: Path) -> None:
    first = run_pca(lake, "bottleneck", 2, pca_dim=4, **QUIET)
    again = run_pca(lake, "bottleneck", 2, pca_dim=4, **QUIET)
    assert again.reused and not first.reused
    run_id = xr.open_zarr(lake, group=GROUP).attrs["run_id"]
    forced = run_pca(lake, "bottleneck", 2, pca_dim=3, force=True, **QUIET)
    ds = xr.open_zarr(lake, group=GROUP)
    assert not forced.reused and ds.sizes["component"] == 3 and ds.attrs["run_id"] != run_id
    # Nothing of the staging or the replaced group is left behind.
    assert sorted(p.name for p in (lake / "analysis" / "pca").iterdir()) == [KEY, "zarr.json"]
    assert not (lake / ".dmd2viz-trash").exists()


def test_filling_in_unprobed_cells_makes_the_pca_recompute(lake: Path, table) -> None:
    from lake import LakeWriter, Provenance

    run_pca(lake, "bottleneck", 2, pca_dim=4, **QUIET)
    assert run_pca(lake, "bottleneck", 2, pca_dim=4, **QUIET).reused
    missing = int(np.flatnonzero(np.isnan(table.values[:, 1, :]).any(axis=1))[0])
    with LakeWriter.open(lake, Provenance(job="test probe"), create=False) as writer:  # what ingest does
        group = writer.group("activations/enc.8x8_block2")
        group["mean"][missing, 1] = np.ones(table.values.shape[2], dtype=np.float32)
        group["probed"][missing, 1] = True
    again = run_pca(lake, "bottleneck", 2, pca_dim=4, **QUIET)
    assert not again.reused and again.summary["excluded_rows"] == int(np.isnan(table.values[:, 1, :]).any(axis=1).sum()) - 1


def test_a_failed_run_leaves_the_lake_unchanged(lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_pca(lake, "bottleneck", 2, pca_dim=4, **QUIET)
    before = json.loads((lake / "zarr.json").read_text())
    scores_before = xr.open_zarr(lake, group=GROUP)["scores"].values

    from lake import StagedGroup

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(StagedGroup, "write_array", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        run_pca(lake, "bottleneck", 2, pca_dim=4, force=True, **QUIET)
    after = json.loads((lake / "zarr.json").read_text())
    assert after == before
    np.testing.assert_array_equal(xr.open_zarr(lake, group=GROUP)["scores"].values, scores_before)
    assert not any("staging" in p.name for p in (lake / "analysis" / "pca").iterdir())


def test_unknown_layer_or_sigma_names_what_the_lake_has(lake: Path) -> None:
    with pytest.raises(AnalysisError, match=r"no activations for layer 'mid'.*enc\.8x8_block2"):
        run_pca(lake, "mid", 2, **QUIET)
    with pytest.raises(AnalysisError, match=r"no sigma 7; it has: 0\.5, 2"):
        run_pca(lake, "enc.8x8_block2", 7, **QUIET)


def test_omitted_layer_and_sigma_pick_the_first_and_say_so(lake: Path) -> None:
    notes: list[str] = []
    outcome = run_pca(lake, pca_dim=3, log=notes.append, progress=False)
    assert outcome.key == "enc.8x8_block2@sigma0.5"
    assert any("--layer not given; using enc.8x8_block2" in n for n in notes)
    assert any("--sigma not given; using 0.5" in n for n in notes)


def test_distributed_cluster_gives_identical_results(lake: Path, tmp_path: Path) -> None:
    from distributed import LocalCluster

    run_pca(lake, "bottleneck", 2, pca_dim=6, block_rows=64, **QUIET)
    threaded = xr.open_zarr(lake, group=GROUP).load()
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster:
        outcome = run_pca(lake, "bottleneck", 2, pca_dim=6, block_rows=64, scheduler=cluster.scheduler_address, force=True, **QUIET)
    distributed = xr.open_zarr(lake, group=GROUP).load()
    assert not outcome.reused and "dask.distributed" in distributed.attrs["scheduler"]
    assert distributed.attrs["run_id"] != threaded.attrs["run_id"]
    for name in ("scores", "components", "mean", "scale", "explained_variance"):
        np.testing.assert_array_equal(distributed[name].values, threaded[name].values, err_msg=name)
    assert list(distributed["sample_id"].values) == list(threaded["sample_id"].values)


def test_bad_scheduler_address_is_a_one_line_error(lake: Path) -> None:
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}), pytest.raises(AnalysisError, match="--scheduler tcp://127.0.0.1:1"):
        run_pca(lake, "bottleneck", 2, scheduler="tcp://127.0.0.1:1", **QUIET)
