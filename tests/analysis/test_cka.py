"""Debiased linear CKA: known answers, the Gram-matrix definition, and the same numbers read a block of rows at a time."""
from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from scipy.stats import ortho_group

from analysis.cka import cka_matrix, linear_cka


def hsic_from_grams(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741  (the papers' names)
    """Song et al.'s unbiased HSIC written on the n x n Gram matrices, as in Kornblith et al.'s code."""
    n = k.shape[0]
    k, l = k.copy(), l.copy()  # noqa: E741
    np.fill_diagonal(k, 0)
    np.fill_diagonal(l, 0)
    ones = np.ones(n)
    return (np.trace(k @ l) + (ones @ k @ ones) * (ones @ l @ ones) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * (ones @ k @ l @ ones)) / (n * (n - 3))


def cka_from_grams(x: np.ndarray, y: np.ndarray) -> float:
    k, l = x @ x.T, y @ y.T  # noqa: E741
    return hsic_from_grams(k, l) / np.sqrt(hsic_from_grams(k, k) * hsic_from_grams(l, l))


@pytest.fixture(scope="module")
def related():
    """Two representations of 60 samples that share a 4-d signal (plus their own noise and an offset)."""
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(60, 4))
    x = signal @ rng.normal(size=(4, 12)) + 0.5 * rng.normal(size=(60, 12)) + 3.0
    y = np.tanh(signal @ rng.normal(size=(4, 7))) + 0.3 * rng.normal(size=(60, 7))
    return x, y


def test_equals_the_gram_matrix_definition(related):
    x, y = related
    value = linear_cka(x, y)
    assert value == pytest.approx(cka_from_grams(x, y), rel=1e-10)
    assert 0.3 < value < 1


def test_identical_representations_give_one_and_orthogonal_maps_scaling_and_shifts_change_nothing(related):
    x, y = related
    assert linear_cka(x, x) == pytest.approx(1.0, rel=1e-12)
    rotation = ortho_group.rvs(12, random_state=1)
    assert linear_cka(3.5 * x @ rotation, y) == pytest.approx(linear_cka(x, y), rel=1e-9)
    assert linear_cka(x - x.mean(axis=0) + 100.0, y) == pytest.approx(linear_cka(x, y), rel=1e-9)  # no centring pass needed


def test_independent_random_features_are_near_zero_where_the_biased_estimator_is_not():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(200, 50)), rng.normal(size=(200, 50))
    assert abs(linear_cka(x, y)) < 0.02
    xc, yc = x - x.mean(0), y - y.mean(0)
    biased = np.linalg.norm(xc.T @ yc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))
    assert biased > 0.15  # what the debiasing removes at n = 200, p = 50


def test_any_row_blocks_and_dask_arrays_give_the_in_memory_numbers_and_the_matrix_its_pairs(related):
    x, y = related
    whole = linear_cka(x, y, block_rows=len(x))
    assert linear_cka(x, y, block_rows=7) == pytest.approx(whole, rel=1e-12)  # uneven blocks, another shift
    lazy_x, lazy_y = da.from_array(x, chunks=(16, -1)), da.from_array(y, chunks=(16, -1))
    assert linear_cka(lazy_x, lazy_y, block_rows=16) == pytest.approx(whole, rel=1e-12)
    first, second = [lazy_x, lazy_x[:, :5]], [lazy_y, lazy_x, lazy_y[:, 2:]]
    table = cka_matrix(first, second, block_rows=16)
    assert table.shape == (2, 3)
    for i, a in enumerate(first):
        for j, b in enumerate(second):
            assert table[i, j] == pytest.approx(cka_from_grams(np.asarray(a), np.asarray(b)), rel=1e-9), (i, j)
    assert table[0, 1] == pytest.approx(1.0)


def test_refusals():
    x = np.zeros((10, 3))
    with pytest.raises(ValueError, match="same samples"):
        linear_cka(x, np.zeros((9, 3)))
    with pytest.raises(ValueError, match="at least 4 samples"):
        linear_cka(x[:3], x[:3])
    with pytest.raises(ValueError, match="same samples"):
        cka_matrix([x], [np.zeros((9, 2))])
