"""Real vs generated on lakes: per-sample memorisation checks, per-class and overall metrics."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from analysis import AnalysisError, CompareConfig, run_compare, run_knn
from analysis.metrics import frechet_distance_of, prdc
from tests.analysis.conftest import SyntheticTable, build_lake, synthetic_table

KEY = "enc.8x8_block2@sigma2"
QUIET = {"log": lambda _: None, "progress": False}


def _brute_force_expectations(scores: np.ndarray, is_real: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy.spatial.distance import cdist

    d = cdist(scores, scores)
    np.fill_diagonal(d, np.inf)
    nearest = np.argsort(d, axis=1)[:, :k]
    fraction = is_real[nearest].mean(axis=1)
    nearest_real = d[:, is_real].min(axis=1)
    return fraction, nearest_real


def test_compare_stores_per_sample_per_class_and_overall_metrics(lake: Path) -> None:
    config = CompareConfig(k=5, pca_dim=10)
    run_compare(lake, "bottleneck", 2, config, **QUIET)
    ds = xr.open_zarr(lake, group=f"analysis/compare/{KEY}").load()
    pca = xr.open_zarr(lake, group=f"analysis/pca/{KEY}")
    scores = pca["scores"].values.astype(np.float64)
    is_real = pca["source"].values == "real"
    assert list(ds["sample_id"].values) == list(pca["sample_id"].values)

    fraction, nearest_real = _brute_force_expectations(scores, is_real, 5)
    np.testing.assert_allclose(ds["real_fraction"].values, fraction, atol=1e-6)
    np.testing.assert_allclose(ds["nearest_real_distance"].values, nearest_real, rtol=1e-4, atol=1e-4)

    expected = prdc(scores[is_real], scores[~is_real], 5)
    attrs = ds.attrs
    for name in ("precision", "recall", "density", "coverage"):
        assert attrs[name] == pytest.approx(getattr(expected, name), abs=1e-9), name
    assert attrs["frechet_distance"] == pytest.approx(frechet_distance_of(scores[is_real], scores[~is_real]), rel=1e-9)
    assert attrs["n_real"] == int(is_real.sum()) and attrs["parameters"]["k"] == 5 and "PCA scores" in attrs["space"]

    classes = pca["class_id"].values
    assert ds["class"].values.tolist() == [0, 1, 2, 3]
    assert ds["class_label"].values[1] == "1: goldfish"
    for i, c in enumerate(ds["class"].values):
        in_class = classes == c
        assert ds["n_real"].values[i] == int((in_class & is_real).sum())
        assert ds["class_frechet_distance"].values[i] == pytest.approx(
            frechet_distance_of(scores[in_class & is_real], scores[in_class & ~is_real]), rel=1e-9
        )
        assert ds["class_precision"].values[i] == pytest.approx(prdc(scores[in_class & is_real], scores[in_class & ~is_real], 5).precision)
    # The generated samples are shifted, so they are not as well mixed as real among real.
    real_fraction = ds["real_fraction"].values
    assert real_fraction[is_real].mean() > real_fraction[~is_real].mean()


def _copied_table(offset: float) -> SyntheticTable:
    """Generated samples that are copies of real ones (plus `offset` on every channel)."""
    base = synthetic_table(n_real=150, n_generated=150, n_classes=3, nan_rows=0, sigmas=(2.0,))
    values = base.values.copy()
    values[150:] = values[:150] + offset
    return SyntheticTable(values, base.sample_ids, base.source, base.class_id, base.split, base.sigmas)


def test_memorised_copies_are_found(tmp_path: Path) -> None:
    lake = build_lake(tmp_path / "copies", _copied_table(0.0), samples=False)
    run_knn(lake, "bottleneck", 2, k=10, pca_dim=8, **QUIET)  # compare reuses this stored graph
    outcome = run_compare(lake, "bottleneck", 2, CompareConfig(k=5, pca_dim=8), **QUIET)
    ds = xr.open_zarr(lake, group=f"analysis/compare/{KEY}").load()
    generated = ds["source"].values == "generated"
    assert np.allclose(ds["nearest_real_distance"].values[generated], 0.0, atol=1e-5)
    assert (outcome.summary["precision"], outcome.summary["recall"], outcome.summary["coverage"]) == (1.0, 1.0, 1.0)
    assert outcome.summary["frechet_distance"] == pytest.approx(0.0, abs=1e-6)
    assert ds.attrs["neighbour_lists"].startswith("stored analysis/knn")


def test_far_apart_generated_samples_score_zero(tmp_path: Path) -> None:
    lake = build_lake(tmp_path / "far", _copied_table(1000.0), samples=False)
    outcome = run_compare(lake, "bottleneck", 2, CompareConfig(k=5, pca_dim=8), **QUIET)
    summary = outcome.summary
    assert (summary["precision"], summary["recall"], summary["density"], summary["coverage"]) == (0.0, 0.0, 0.0, 0.0)
    ds = xr.open_zarr(lake, group=f"analysis/compare/{KEY}")
    generated = ds["source"].values == "generated"
    assert (ds["real_fraction"].values[generated] == 0).all() and (ds["real_fraction"].values[~generated] == 1).all()


def test_compare_needs_both_sources(tmp_path: Path) -> None:
    only_real = synthetic_table(n_real=60, n_generated=0, nan_rows=0)
    lake = build_lake(tmp_path / "real", only_real, samples=False)
    with pytest.raises(AnalysisError, match="only real samples; compare needs both"):
        run_compare(lake, "bottleneck", 2, **QUIET)
