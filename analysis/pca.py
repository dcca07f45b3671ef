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


def _shifted(block: np.ndarray, shift: np.ndarray) -> np.ndarray:
    valid = _valid_rows(block)
    return np.where(valid[:, None], block.astype(np.float64) - shift, 0.0)


def _block_count(block: np.ndarray) -> np.ndarray:
    return np.array([np.count_nonzero(_valid_rows(block))], dtype=np.int64)


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
    import dask.array as da

    from .scheduler import compute_with_progress

    shift = _reference_shift(values)
    valid = values.map_blocks(_valid_rows, drop_axis=1, dtype=bool)
    shifted = values.map_blocks(_shifted, shift, dtype=np.float64)
    block_counts = values.map_blocks(_block_count, drop_axis=1, chunks=((1,) * values.numblocks[0],), dtype=np.int64)
    # Each block's cross product is its own task, then a fixed-shape tree sum.
    cross = da.einsum("ni,nj->ij", shifted, shifted, dtype=np.float64)
    total = shifted.sum(axis=0, dtype=np.float64)
    count_blocks, total, cross, valid = compute_with_progress([block_counts, total, cross, valid], "PCA statistics", show=progress)
    count = int(count_blocks.sum())
    if count == 0:
        return Moments(0, shift, np.full((values.shape[1],) * 2, np.nan), valid, count_blocks)
    delta = total / count
    centered_cross = cross - count * np.outer(delta, delta)
    covariance = centered_cross / max(count - 1, 1)
    return Moments(count, shift + delta, covariance, valid, count_blocks)


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
    valid = _valid_rows(block)
    rows = block[valid].astype(np.float64)
    return (((rows - mean) / scale) @ components.T).astype(np.float32)


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
