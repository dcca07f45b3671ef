"""Linear CKA between layers of two models on the same inputs (Kornblith et al. 2019), debiased, out of core.

``CKA(X, Y) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` with linear kernels ``K = X X^T``,
``L = Y Y^T`` over the n shared samples (rows). The debiased estimator uses the unbiased
HSIC of Song et al. (2012), as Kornblith et al.'s code does with ``debiased=True``:

    HSIC_u(K, L) = [tr(K~ L~) + (1' K~ 1)(1' L~ 1) / ((n-1)(n-2)) - 2/(n-2) 1' K~ L~ 1] / (n (n-3))

where ``K~`` is K with its diagonal set to 0. Every term is a function of a few per-pair
sums over rows (the feature-space form), so the n x n Gram matrices are never formed and
one pass over the rows is enough:
``G = X'Y``, the row sums ``s_x, s_y``, the squared row norms ``a, b``, and ``X'b, Y'a, a'b``:

    tr(K~ L~)   = |G|_F^2 - a'b
    1' K~ 1     = |s_x|^2 - sum(a)
    1' K~ L~ 1  = s_x' G s_y - s_x' X'b - s_y' Y'a + a'b

HSIC_u is unchanged when a constant is added to every row (the kernel changes by terms of
one sample each, which the estimator cancels), so the features need no centring pass; the
sums are taken after subtracting the mean of the first block of rows anyway, which keeps
float64 from cancelling when the features sit far from 0 (activations with large means).

The rows are read a block at a time (`block_rows`; numpy, Zarr or Dask arrays alike), each
layer's block once for all the pairs it is in, and only the per-pair sums are kept: memory
is one block of every layer plus a p x q matrix per pair, whatever the number of rows.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["PairSums", "cka_matrix", "hsic_unbiased", "linear_cka"]

MIN_ROWS = 4  # the unbiased estimator divides by n - 3
BLOCK_ROWS = 10_000  # rows read at a time: 10,000 x 768 float64 is 61 MB per layer


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


class _PairAccumulator:
    """The running sums of one layer pair over row blocks (float64)."""

    def __init__(self, p: int, q: int) -> None:
        self.n, self.ab, self.a_sum, self.b_sum = 0, 0.0, 0.0, 0.0
        self.g, self.s_x, self.s_y = np.zeros((p, q)), np.zeros(p), np.zeros(q)
        self.xb, self.ya = np.zeros(p), np.zeros(q)

    def add(self, x: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
        self.n += len(x)
        self.g += x.T @ y
        self.s_x += x.sum(axis=0)
        self.s_y += y.sum(axis=0)
        self.xb += x.T @ b
        self.ya += y.T @ a
        self.ab += float(a @ b)
        self.a_sum += float(a.sum())
        self.b_sum += float(b.sum())

    def sums(self) -> PairSums:
        return PairSums(self.n, float((self.g * self.g).sum()), float(self.s_x @ self.g @ self.s_y), float(self.s_x @ self.xb),
                        float(self.s_y @ self.ya), self.ab, float(self.s_x @ self.s_x), float(self.s_y @ self.s_y), self.a_sum, self.b_sum)


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


def linear_cka(x: Any, y: Any, block_rows: int = BLOCK_ROWS) -> float:
    """Debiased linear CKA between the rows of `x` (n x p) and `y` (n x q): numpy, Zarr or Dask arrays, same rows."""
    return float(cka_matrix([x], [y], block_rows)[0, 0])


def cka_matrix(first: Sequence[Any], second: Sequence[Any], block_rows: int = BLOCK_ROWS) -> np.ndarray:
    """CKA of every layer in `first` against every layer in `second` (the same samples), in one pass over the rows."""
    rows = {int(a.shape[0]) for a in (*first, *second)}
    if len(rows) != 1:
        raise ValueError(f"CKA compares the same samples: the layers have {sorted(rows)} rows")
    [n] = rows
    layers = [*first, *second]
    m = len(first)
    # Every pair of the table, then each layer with itself (the denominators).
    pairs = [(i, m + j) for i in range(m) for j in range(len(second))] + [(i, i) for i in range(len(layers))]
    accumulators = {pair: _PairAccumulator(layers[pair[0]].shape[1], layers[pair[1]].shape[1]) for pair in pairs}
    shifts = [_block(layer, 0, min(n, block_rows)).mean(axis=0) for layer in layers]
    for start in range(0, n, block_rows):
        blocks = [_block(layer, start, min(n, start + block_rows)) - shift for layer, shift in zip(layers, shifts)]
        norms = [(block * block).sum(axis=1) for block in blocks]
        for (i, j), accumulator in accumulators.items():
            accumulator.add(blocks[i], blocks[j], norms[i], norms[j])
    sums = {pair: accumulator.sums() for pair, accumulator in accumulators.items()}
    return np.array([[_cka(sums[(i, m + j)], sums[(i, i)], sums[(m + j, m + j)]) for j in range(len(second))] for i in range(m)])


def _block(layer: Any, start: int, stop: int) -> np.ndarray:
    """Rows start..stop of a numpy, Zarr or Dask array, as float64 in memory."""
    return np.asarray(layer[start:stop], dtype=np.float64)
