"""Linear CKA between layers of two models on the same inputs (Kornblith et al. 2019), debiased, out of core.

``CKA(X, Y) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` with linear kernels ``K = X X^T``,
``L = Y Y^T`` over the n shared samples (rows). The debiased estimator uses the unbiased
HSIC of Song et al. (2012), as Kornblith et al.'s code does with ``debiased=True``:

    HSIC_u(K, L) = [tr(K~ L~) + (1' K~ 1)(1' L~ 1) / ((n-1)(n-2)) - 2/(n-2) 1' K~ L~ 1] / (n (n-3))

where ``K~`` is K with its diagonal set to 0. Every term is a function of a few per-pair
sums over rows (the feature-space form), so the n x n Gram matrices are never formed and
one pass over row chunks (numpy, or Dask arrays with the same row chunks) is enough:
``G = X'Y``, the row sums ``s_x, s_y``, the squared row norms ``a, b``, and ``X'b, Y'a, a'b``:

    tr(K~ L~)   = |G|_F^2 - a'b
    1' K~ 1     = |s_x|^2 - sum(a)
    1' K~ L~ 1  = s_x' G s_y - s_x' X'b - s_y' Y'a + a'b

HSIC_u is unchanged when a constant is added to every row (the kernel changes by terms of
one sample each, which the estimator cancels), so the features need no centring pass; the
sums are taken after subtracting the mean of the first rows anyway, which keeps float64
from cancelling when the features sit far from 0 (activations with large means).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["PairSums", "cka_matrix", "hsic_unbiased", "linear_cka", "pair_sums"]

MIN_ROWS = 4  # the unbiased estimator divides by n - 3
SHIFT_ROWS = 1024  # rows whose mean is subtracted first (any constant shift leaves HSIC_u as it is)


@dataclass(frozen=True)
class PairSums:
    """The row sums HSIC_u(X X', Y Y') needs, for n rows of X (n x p) and Y (n x q)."""

    n: int
    gram_frobenius2: float  # |X'Y|_F^2
    s_x_g_s_y: float  # s_x' X'Y s_y
    s_x_xb: float  # s_x' X'b
    s_y_ya: float  # s_y' Y'a
    ab: float  # sum_i |x_i|^2 |y_i|^2
    s_x2: float  # |s_x|^2
    s_y2: float  # |s_y|^2
    a_sum: float
    b_sum: float


def pair_sums(x: Any, y: Any) -> Any:
    """The sums of `PairSums` as a tuple of (lazy, for Dask arrays) scalars, accumulated in float64."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    x, y = x - x[:SHIFT_ROWS].mean(axis=0), y - y[:SHIFT_ROWS].mean(axis=0)
    a, b = (x * x).sum(axis=1), (y * y).sum(axis=1)
    s_x, s_y = x.sum(axis=0), y.sum(axis=0)
    g = x.T @ y
    return (x.shape[0], (g * g).sum(), s_x @ g @ s_y, s_x @ (x.T @ b), s_y @ (y.T @ a), a @ b,
            s_x @ s_x, s_y @ s_y, a.sum(), b.sum())


def hsic_unbiased(s: PairSums) -> float:
    """Song et al.'s unbiased HSIC of the two linear kernels, from their row sums."""
    n = s.n
    if n < MIN_ROWS:
        raise ValueError(f"debiased CKA needs at least {MIN_ROWS} samples, got {n}")
    trace = s.gram_frobenius2 - s.ab
    ones_k, ones_l = s.s_x2 - s.a_sum, s.s_y2 - s.b_sum
    ones_kl = s.s_x_g_s_y - s.s_x_xb - s.s_y_ya + s.ab
    return (trace + ones_k * ones_l / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * ones_kl) / (n * (n - 3))


def _cka(xy: PairSums, xx: PairSums, yy: PairSums) -> float:
    denominator = np.sqrt(max(hsic_unbiased(xx), 0.0) * max(hsic_unbiased(yy), 0.0))
    return float(hsic_unbiased(xy) / denominator) if denominator > 0 else float("nan")


def _compute(*lazy: Any) -> list[PairSums]:
    """Evaluate `pair_sums` tuples: one Dask graph (each chunk read once for all of them) when any is lazy."""
    import dask

    return [PairSums(int(n), *(float(v) for v in rest)) for n, *rest in dask.compute(*lazy)]


def linear_cka(x: Any, y: Any) -> float:
    """Debiased linear CKA between the rows of `x` (n x p) and `y` (n x q): numpy or Dask arrays, same rows."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA compares the same samples: got {x.shape[0]} and {y.shape[0]} rows")
    xy, xx, yy = _compute(pair_sums(x, y), pair_sums(x, x), pair_sums(y, y))
    return _cka(xy, xx, yy)


def cka_matrix(first: Sequence[Any], second: Sequence[Any]) -> np.ndarray:
    """CKA of every layer in `first` against every layer in `second` (same samples, same row chunks), in one pass."""
    rows = {int(a.shape[0]) for a in (*first, *second)}
    if len(rows) != 1:
        raise ValueError(f"CKA compares the same samples: the layers have {sorted(rows)} rows")
    lazy = [pair_sums(a, b) for a in first for b in second]
    lazy += [pair_sums(a, a) for a in first] + [pair_sums(b, b) for b in second]
    sums = _compute(*lazy)
    m, k = len(first), len(second)
    own_first, own_second = sums[m * k : m * k + m], sums[m * k + m :]
    return np.array([[_cka(sums[i * k + j], own_first[i], own_second[j]) for j in range(k)] for i in range(m)])
