"""explorer.alignment: the least-squares similarity transform between two maps of the same samples."""
from __future__ import annotations

import numpy as np
import pytest

from explorer.alignment import fit_alignment


def rotation(angle: float) -> np.ndarray:
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


@pytest.mark.parametrize("reflect", [False, True])
def test_a_known_rotation_scale_and_shift_is_recovered_exactly(reflect: bool) -> None:
    reference = np.random.default_rng(0).normal(size=(200, 2)) * [3, 1]
    turn = rotation(2.1) @ (np.diag([1, -1]) if reflect else np.eye(2))
    moving = 0.25 * reference @ turn + [40, -7]  # another run's map of the same samples
    alignment = fit_alignment(reference, moving)
    np.testing.assert_allclose(alignment.apply(moving), reference, atol=1e-9)
    assert alignment.scale == pytest.approx(4.0) and alignment.residual < 1e-9
    np.testing.assert_allclose(alignment.rotation, turn.T, atol=1e-9)  # the inverse of the turn
    assert np.linalg.det(alignment.rotation) == pytest.approx(-1.0 if reflect else 1.0)


def test_noise_shows_in_the_residual_and_the_fit_is_the_least_squares_one() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(size=(500, 2))
    moving = reference @ rotation(0.4) + rng.normal(scale=0.1, size=(500, 2))
    alignment = fit_alignment(reference, moving)
    assert 0.05 < alignment.residual < 0.2
    best = ((alignment.apply(moving) - reference) ** 2).sum()
    for angle in (-0.01, 0.01):  # any other rotation fits worse
        nudged = ((alignment.scale * (moving - alignment.moving_mean) @ alignment.rotation @ rotation(angle)
                   + alignment.reference_mean - reference) ** 2).sum()
        assert nudged > best


def test_too_few_or_mismatched_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 3 shared samples"):
        fit_alignment(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="the same samples in both maps"):
        fit_alignment(np.zeros((5, 2)), np.zeros((4, 2)))
