"""Frechet distance and precision/recall/density/coverage on distributions with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from analysis.metrics import first_real_distance, frechet_distance, frechet_distance_of, prdc, real_fraction


def test_frechet_distance_closed_form_for_isotropic_gaussians() -> None:
    d = 6
    mu = np.array([1.0, -2.0, 0.5, 0.0, 0.0, 3.0])
    s = 1.7
    expected = mu @ mu + d * (1 - s) ** 2
    assert frechet_distance(np.zeros(d), np.eye(d), mu, s**2 * np.eye(d)) == pytest.approx(expected, rel=1e-12)
    assert frechet_distance(mu, np.eye(d), mu, np.eye(d)) == pytest.approx(0.0, abs=1e-12)

    rng = np.random.default_rng(0)
    a = rng.normal(size=(40000, d))
    b = mu + s * rng.normal(size=(40000, d))
    assert frechet_distance_of(a, b) == pytest.approx(expected, rel=0.02)


def test_frechet_distance_agrees_with_scipy_sqrtm_for_general_covariances() -> None:
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    cov1, cov2 = a @ a.T + 0.1 * np.eye(5), b @ b.T
    m1, m2 = rng.normal(size=5), rng.normal(size=5)
    reference = float(np.sum((m1 - m2) ** 2) + np.trace(cov1 + cov2 - 2 * np.real(sqrtm(cov1 @ cov2))))
    assert frechet_distance(m1, cov1, m2, cov2) == pytest.approx(reference, rel=1e-8)
    # Singular covariances (fewer samples than dimensions) stay finite and non-negative.
    singular = np.outer(m1, m1)
    assert np.isfinite(frechet_distance(m1, singular, m2, cov2)) and frechet_distance(m1, singular, m1, singular) < 1e-6


def test_prdc_identical_sets() -> None:
    x = np.random.default_rng(2).normal(size=(300, 8))
    result = prdc(x, x.copy(), k=5)
    # Each real ball (radius = distance to its 5th neighbour, strict '<') holds the point itself and
    # its 4 nearer neighbours: exactly k points, so density is exactly 1.
    assert (result.precision, result.recall, result.coverage) == (1.0, 1.0, 1.0)
    assert result.density == pytest.approx(1.0, abs=1e-12)


def test_prdc_disjoint_far_apart_sets() -> None:
    rng = np.random.default_rng(3)
    result = prdc(rng.normal(size=(200, 4)), 1000.0 + rng.normal(size=(200, 4)), k=5)
    assert (result.precision, result.recall, result.density, result.coverage) == (0.0, 0.0, 0.0, 0.0)


def test_prdc_two_samples_of_one_distribution_and_a_collapsed_generator() -> None:
    rng = np.random.default_rng(4)
    real, generated = rng.normal(size=(2000, 4)), rng.normal(size=(2000, 4))
    same = prdc(real, generated, k=5)
    assert same.precision > 0.9 and same.recall > 0.9 and same.coverage > 0.9
    assert same.density == pytest.approx(1.0, abs=0.1)
    # Mode collapse: generated samples only near one point -> precise but no recall/coverage.
    collapsed = prdc(real, 0.05 * rng.normal(size=(2000, 4)), k=5)
    assert collapsed.precision > 0.95 and collapsed.recall < 0.1 and collapsed.coverage < 0.1
    with pytest.raises(ValueError, match="more than 5 rows"):
        prdc(real[:5], generated, k=5)


def test_per_sample_neighbour_statistics() -> None:
    is_real = np.array([True, False, True, False])
    rows = np.array([[1, 3], [3, 0], [0, 1], [1, 3]])
    distances = np.array([[0.5, 0.7], [0.2, 0.9], [0.1, 0.3], [0.4, 0.6]], dtype=np.float32)
    assert real_fraction(rows, is_real).tolist() == [0.0, 0.5, 0.5, 0.0]
    nearest = first_real_distance(rows, distances, is_real)
    assert np.isnan(nearest[0]) and nearest[1] == pytest.approx(0.9) and nearest[2] == pytest.approx(0.1) and np.isnan(nearest[3])
