"""Standardisation + PCA of an activation table, out of core with Dask.

Method (why not `da.linalg.svd_compressed`): the tables are tall and narrow (up to
millions of rows, at most a few thousand channels), so the exact route is cheap. One
pass of Dask reductions accumulates, in float64, the count, the sum and the
cross-product matrix of the rows (shifted by a fixed reference row-mean for numerical
stability); the channels x channels covariance follows exactly, is turned into the
correlation matrix (standardisation) and is diagonalised with `np.linalg.eigh`. This
is exact (not a randomised sketch), deterministic, reads every chunk once, and the
reduction tree is fixed by the chunking, so the threaded scheduler and a
dask.distributed cluster produce the same numbers. Rows holding NaN (not probed) are
left out of every statistic.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PCAModel:
    """A fitted standardise-then-project transform (arrays only; stored in the lake)."""

    mean: np.ndarray  # (feature,) float64
    scale: np.ndarray  # (feature,) float64, population std; 1 where a channel is constant
    components: np.ndarray  # (component, feature) float64, unit rows
    explained_variance: np.ndarray  # (component,)
    explained_variance_ratio: np.ndarray  # (component,)
    n_samples: int

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Scores (n, component) float32 of activation rows (n, feature)."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim == 1:
            values = values[None, :]
        if values.shape[1] != self.mean.shape[0]:
            raise ValueError(f"activations have {values.shape[1]} channels; the PCA was fitted on {self.mean.shape[0]}")
        return (((values - self.mean) / self.scale) @ self.components.T).astype(np.float32)


@dataclass(frozen=True)
class Moments:
    """First and second moments of the valid rows of a table (float64)."""

    count: int
    mean: np.ndarray
    covariance: np.ndarray  # unbiased (ddof=1)
    valid: np.ndarray  # (rows,) bool: True where the row holds no NaN
    block_counts: np.ndarray  # valid rows per Dask block


def _valid_rows(block: np.ndarray) -> np.ndarray:
    return ~np.isnan(block).any(axis=1)


def _block_moments(block: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Sum and cross-product of one block's valid rows, shifted: shape (1, 1 + d, d).

    One task per block does both, in place, so a block's float64 copy lives only inside it.
    """
    valid = _valid_rows(block)
    x = block.astype(np.float64)
    x -= shift
    x[~valid] = 0.0
    out = np.empty((1, 1 + x.shape[1], x.shape[1]))
    out[0, 0] = x.sum(axis=0)
    out[0, 1:] = x.T @ x
    return out


def _reference_shift(values: Any) -> np.ndarray:
    """Mean of the valid rows of the first block that has any (zeros if none): the stability shift."""
    for i in range(values.numblocks[0]):
        block = np.asarray(values.blocks[i].compute(), dtype=np.float64)
        valid = _valid_rows(block)
        if valid.any():
            return block[valid].mean(axis=0)
    return np.zeros(values.shape[1], dtype=np.float64)


def compute_moments(values: Any, progress: bool = False) -> Moments:
    """Count, mean and covariance of the NaN-free rows of a (rows, feature) dask array, in one pass."""
    from .scheduler import compute_with_progress

    shift = _reference_shift(values)
    d = values.shape[1]
    valid = values.map_blocks(_valid_rows, drop_axis=1, dtype=bool)
    per_block = values.map_blocks(
        _block_moments, shift, new_axis=2, chunks=((1,) * values.numblocks[0], (1 + d,), (d,)), dtype=np.float64
    )
    # A fixed-shape tree sum over the blocks: the same additions in the same order on any scheduler.
    totals, valid = compute_with_progress([per_block.sum(axis=0), valid], "PCA statistics", show=progress)
    offsets = np.concatenate([[0], np.cumsum(values.chunks[0])])
    block_counts = np.array([np.count_nonzero(valid[a:b]) for a, b in zip(offsets[:-1], offsets[1:])], dtype=np.int64)
    count = int(block_counts.sum())
    if count == 0:
        return Moments(0, shift, np.full((d, d), np.nan), valid, block_counts)
    total, cross = totals[0], totals[1:]
    delta = total / count
    centered_cross = cross - count * np.outer(delta, delta)
    covariance = centered_cross / max(count - 1, 1)
    return Moments(count, shift + delta, covariance, valid, block_counts)


def fit_from_moments(moments: Moments, n_components: int) -> PCAModel:
    """Standardise and diagonalise: the PCA of the correlation structure.

    Scale is the population standard deviation (as sklearn's StandardScaler); explained
    variance uses ddof=1 (as sklearn's PCA), so the result matches
    ``PCA().fit(StandardScaler().fit_transform(X))``. Each component's sign is fixed so
    that its largest-magnitude loading is positive.
    """
    n, d = moments.count, moments.mean.shape[0]
    variance = np.clip(np.diag(moments.covariance), 0.0, None) * (n - 1) / n
    scale = np.sqrt(variance)
    # Constant channels (e.g. dead ReLUs) would divide by zero; like sklearn, leave them unscaled.
    scale[scale < 1e-12 * max(1.0, float(scale.max(initial=0.0)))] = 1.0
    correlation = moments.covariance / np.outer(scale, scale)
    correlation = (correlation + correlation.T) / 2
    from threadpoolctl import threadpool_limits

    # One BLAS thread: eigh makes thousands of small BLAS calls, each a thread barrier; on a
    # busy or small machine the barriers cost far more than the work (measured: 6.5 s with
    # 2 threads on a loaded 2-core box vs 0.2 s with one, for 768 channels).
    with threadpool_limits(limits=1, user_api="blas"):
        eigenvalues, eigenvectors = np.linalg.eigh(correlation)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues = np.clip(eigenvalues[order], 0.0, None)
    eigenvectors = eigenvectors[:, order]
    k = int(min(n_components, d, n))
    components = eigenvectors[:, :k].T.copy()
    pivots = np.argmax(np.abs(components), axis=1)
    signs = np.sign(components[np.arange(k), pivots])
    signs[signs == 0] = 1.0
    components *= signs[:, None]
    total_variance = float(eigenvalues.sum())
    explained = eigenvalues[:k]
    ratio = explained / total_variance if total_variance > 0 else np.zeros_like(explained)
    return PCAModel(
        mean=moments.mean,
        scale=scale,
        components=components,
        explained_variance=explained,
        explained_variance_ratio=ratio,
        n_samples=n,
    )


def _score_block(block: np.ndarray, mean: np.ndarray, scale: np.ndarray, components: np.ndarray) -> np.ndarray:
    x = block[_valid_rows(block)].astype(np.float64)
    x -= mean
    x /= scale
    return (x @ components.T).astype(np.float32)


def score_blocks(values: Any, model: PCAModel, block_counts: np.ndarray) -> Any:
    """Lazy scores of the valid rows, one Dask block per input block (sizes from `block_counts`)."""
    return values.map_blocks(
        _score_block,
        model.mean,
        model.scale,
        model.components,
        chunks=(tuple(int(c) for c in block_counts), (model.n_components,)),
        dtype=np.float32,
    )
