"""Aligning one 2-D map onto another: the similarity transform (rotation or reflection, one scale, a shift)
that best matches the samples both maps hold, in the least-squares sense (orthogonal Procrustes).

Two UMAP runs of the same samples (one per model) are each free up to rotation, reflection,
scale and position; aligned, a sample's place in one map can be looked for at the same place
in the other. Pure numpy and scipy (`scipy.linalg.orthogonal_procrustes`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Alignment:
    """``aligned = scale * (moving - moving_mean) @ rotation + reference_mean``, fitted on shared samples."""

    rotation: np.ndarray  # (d, d) orthogonal (a rotation or a reflection)
    scale: float
    moving_mean: np.ndarray  # (d,)
    reference_mean: np.ndarray  # (d,)
    residual: float  # root-mean-square distance between the aligned shared samples and the reference, in its units

    def apply(self, points: np.ndarray) -> np.ndarray:
        """`points` of the moving map in the reference map's coordinates (float64)."""
        return self.scale * (np.asarray(points, dtype=np.float64) - self.moving_mean) @ self.rotation + self.reference_mean


def fit_alignment(reference: np.ndarray, moving: np.ndarray) -> Alignment:
    """The similarity transform taking `moving` onto `reference` (rows: the same samples in both), least squares.

    Raises ValueError with fewer than 3 shared samples or mismatched shapes.
    """
    from scipy.linalg import orthogonal_procrustes

    a, b = np.asarray(reference, dtype=np.float64), np.asarray(moving, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"alignment needs the same samples in both maps, got shapes {a.shape} and {b.shape}")
    if len(a) < 3:
        raise ValueError(f"alignment needs at least 3 shared samples, got {len(a)}")
    a_mean, b_mean = a.mean(axis=0), b.mean(axis=0)
    a0, b0 = a - a_mean, b - b_mean
    rotation, singular_sum = orthogonal_procrustes(b0, a0)  # argmin ||b0 @ R - a0||, R orthogonal
    norm = float((b0 ** 2).sum())
    scale = float(singular_sum / norm) if norm else 1.0
    aligned = scale * b0 @ rotation + a_mean
    residual = float(np.sqrt(((aligned - a) ** 2).sum(axis=1).mean()))
    return Alignment(rotation, scale, b_mean, a_mean, residual)
