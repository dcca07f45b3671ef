"""UMAP embeddings: deterministic, fit-on-sample + chunked transform, named, reused, with quality stored."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from analysis import UMAPParams, run_pca, run_umap
from analysis.sampling import balanced_subsample, group_labels

KEY = "enc.8x8_block2@sigma2"
QUIET = {"log": lambda _: None, "progress": False}


def _embedding(lake: Path, name: str) -> xr.Dataset:
    return xr.open_zarr(lake, group=f"analysis/embeddings/{KEY}/{name}").load()


def test_full_fit_is_deterministic_and_stored_with_labels_and_quality(lake: Path) -> None:
    params = UMAPParams(n_components=2, pca_dim=8)
    first = run_umap(lake, "bottleneck", 2, params, **QUIET)
    assert first.group.endswith("umap2d-n15-d0.1-euclidean-s42-pca8")
    ds1 = _embedding(lake, params.name)
    again = run_umap(lake, "bottleneck", 2, params, force=True, **QUIET)
    ds2 = _embedding(lake, params.name)
    assert not again.reused and ds2.attrs["run_id"] != ds1.attrs["run_id"]
    np.testing.assert_array_equal(ds1["embedding"].values, ds2["embedding"].values)

    pca = xr.open_zarr(lake, group=f"analysis/pca/{KEY}")
    assert list(ds1["axis"].values) == ["x", "y"] and ds1["embedding"].dims == ("sample", "axis")
    for name in ("sample_id", "source", "class_id", "split", "sample_row"):
        assert list(ds1[name].values) == list(pca[name].values), name
    assert np.isfinite(ds1["embedding"].values).all()
    attrs = ds1.attrs
    assert attrs["parameters"]["n_neighbors"] == 15 and attrs["parameters"]["seed"] == 42
    assert attrs["fit_mode"] == "all rows" and attrs["pca_run_id"] == pca.attrs["run_id"]
    # Four well separated class clusters: UMAP keeps local neighbourhoods.
    assert 0.85 < attrs["trustworthiness"] <= 1.0 and attrs["trustworthiness_sample"] == pca.sizes["sample"]


def test_a_different_seed_gives_a_different_embedding_under_its_own_name(lake: Path) -> None:
    run_umap(lake, "bottleneck", 2, UMAPParams(pca_dim=8), **QUIET)
    run_umap(lake, "bottleneck", 2, UMAPParams(pca_dim=8, seed=7, n_components=3), **QUIET)
    a = _embedding(lake, "umap2d-n15-d0.1-euclidean-s42-pca8")
    b = _embedding(lake, "umap3d-n15-d0.1-euclidean-s7-pca8")
    assert b.sizes["axis"] == 3 and list(b["axis"].values) == ["x", "y", "z"]
    assert not np.allclose(a["embedding"].values, b["embedding"].values[:, :2])
    reused = run_umap(lake, "bottleneck", 2, UMAPParams(pca_dim=8), **QUIET)
    assert reused.reused


def test_fit_on_a_balanced_sample_then_transform_in_chunks(lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import analysis.steps.umap as commands  # where the UMAP step reads TRANSFORM_ROWS

    monkeypatch.setattr(commands, "TRANSFORM_ROWS", 64)  # several transform tasks on the dask pool
    params = UMAPParams(pca_dim=8, fit_size=120)
    run_pca(lake, "bottleneck", 2, pca_dim=8, **QUIET)
    outcome = run_umap(lake, "bottleneck", 2, params, **QUIET)
    ds = _embedding(lake, params.name)
    assert outcome.summary["fit_mode"] == "balanced sample + transform" and ds.attrs["fit_rows"] == 120
    assert ds.attrs["name"] == "umap2d-n15-d0.1-euclidean-s42-pca8-fit120"
    coords = ds["embedding"].values
    assert np.isfinite(coords).all()

    # The fit sample is balanced over (source, class): 2 sources x 4 classes, 15 each.
    groups = group_labels(ds["source"].values, ds["class_id"].values)
    fit_rows = balanced_subsample(ds["sample_id"].values.astype(object), groups, 120, 42, salt="umap-fit")
    _, counts = np.unique(groups[fit_rows], return_counts=True)
    assert counts.tolist() == [15] * 8

    # Transformed points land near their class: the nearest fitted point mostly shares the class.
    rest = np.setdiff1d(np.arange(len(coords)), fit_rows)
    classes = ds["class_id"].values
    d = np.linalg.norm(coords[rest][:, None, :] - coords[fit_rows][None, :, :], axis=2)
    agreement = (classes[fit_rows][d.argmin(axis=1)] == classes[rest]).mean()
    assert agreement > 0.9

    monkeypatch.setattr(commands, "TRANSFORM_ROWS", 64)
    run_umap(lake, "bottleneck", 2, params, force=True, **QUIET)
    np.testing.assert_array_equal(_embedding(lake, params.name)["embedding"].values, coords)
