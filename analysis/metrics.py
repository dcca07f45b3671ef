"""Distances between the real and generated activation distributions (pure functions).

- Frechet distance between Gaussians fitted to the two sets (the FID formula), in a
  stable eigen-based form: Tr((S1^1/2 S2 S1^1/2)^1/2) from the eigenvalues of a
  symmetric PSD matrix, so it is real and never NaN for singular covariances.
- Precision, recall, density and coverage with k-NN balls (Naeem et al. 2020,
  "Reliable Fidelity and Diversity Metrics for Generative Models"), with their strict
  inequalities, computed in bounded memory in row blocks with scipy's `cdist`. cdist
  computes each pair's distance on its own (no |x|^2 - 2xy + |y|^2 expansion), so a
  point's distance to a ball's centre is the same number whichever call computes it;
  that keeps the strict inequalities exact on ties (identical sets give density 1).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def gaussian_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance of the rows of x (float64)."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    if len(x) < 2:
        return mean, np.zeros((x.shape[1], x.shape[1]))
    return mean, np.atleast_2d(np.cov(x, rowvar=False))


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mean1: np.ndarray, cov1: np.ndarray, mean2: np.ndarray, cov2: np.ndarray) -> float:
    """||m1 - m2||^2 + Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), the Frechet distance of two Gaussians."""
    root1 = _psd_sqrt(np.asarray(cov1, dtype=np.float64))
    middle = root1 @ np.asarray(cov2, dtype=np.float64) @ root1
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())
    diff = np.asarray(mean1, dtype=np.float64) - np.asarray(mean2, dtype=np.float64)
    value = float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_sqrt)
    return max(value, 0.0)


def frechet_distance_of(real: np.ndarray, generated: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two sets of rows."""
    return frechet_distance(*gaussian_stats(real), *gaussian_stats(generated))


BLOCK_BYTES = 64 << 20


def pairwise_blocks(a: np.ndarray, b: np.ndarray):
    """Yield (start, distances of rows a[start:start+m] to every row of b), ~64 MB at a time."""
    from scipy.spatial.distance import cdist

    rows = max(1, BLOCK_BYTES // (8 * max(1, len(b))))
    for start in range(0, len(a), rows):
        yield start, cdist(a[start : start + rows], b, "euclidean")


def kth_neighbor_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row to its k-th nearest other row (the radius of its k-NN ball)."""
    radii = np.empty(len(x))
    for start, block in pairwise_blocks(x, x):
        # Column 0 of the sorted row is the point itself (distance 0).
        radii[start : start + len(block)] = np.partition(block, k, axis=1)[:, k]
    return radii


@dataclass(frozen=True)
class PRDC:
    precision: float
    recall: float
    density: float
    coverage: float


def prdc(real: np.ndarray, generated: np.ndarray, k: int = 5) -> PRDC:
    """Precision, recall, density and coverage of `generated` against `real` (Naeem et al. 2020).

    precision: share of generated points inside some real point's k-NN ball;
    recall: share of real points inside some generated point's k-NN ball;
    density: mean number of real balls holding a generated point, divided by k;
    coverage: share of real balls holding at least one generated point.
    Needs more than k rows in each set.
    """
    real = np.asarray(real, dtype=np.float64)
    generated = np.asarray(generated, dtype=np.float64)
    if len(real) <= k or len(generated) <= k:
        raise ValueError(f"PRDC with k={k} needs more than {k} rows in each set (real {len(real)}, generated {len(generated)})")
    real_radii = kth_neighbor_radii(real, k)
    generated_radii = kth_neighbor_radii(generated, k)

    inside_counts = np.empty(len(generated), dtype=np.int64)  # real balls holding each generated point
    for start, block in pairwise_blocks(generated, real):
        inside_counts[start : start + len(block)] = (block < real_radii[None, :]).sum(axis=1)

    recalled = np.empty(len(real), dtype=bool)
    nearest_generated = np.empty(len(real))
    for start, block in pairwise_blocks(real, generated):
        recalled[start : start + len(block)] = (block < generated_radii[None, :]).any(axis=1)
        nearest_generated[start : start + len(block)] = block.min(axis=1)

    return PRDC(
        precision=float((inside_counts > 0).mean()),
        recall=float(recalled.mean()),
        density=float(inside_counts.sum() / (k * len(generated))),
        coverage=float((nearest_generated < real_radii).mean()),
    )


def real_fraction(neighbor_rows: np.ndarray, is_real: np.ndarray) -> np.ndarray:
    """Per row: the share of its listed neighbours that are real samples."""
    return is_real[neighbor_rows].mean(axis=1).astype(np.float32)


def first_real_distance(neighbor_rows: np.ndarray, distances: np.ndarray, is_real: np.ndarray) -> np.ndarray:
    """Per row: distance to the first real neighbour in its list (NaN when the list has none)."""
    real = is_real[neighbor_rows]
    first = np.argmax(real, axis=1)
    out = distances[np.arange(len(distances)), first].astype(np.float32)
    out[~real.any(axis=1)] = np.nan
    return out


METRIC_NAMES = ("frechet_distance", "precision", "recall", "density", "coverage")


def compare_sets(real: np.ndarray, generated: np.ndarray, k: int) -> dict[str, float]:
    """Frechet distance and PRDC of two sets of rows (NaN where a set is too small)."""
    out = {name: float("nan") for name in METRIC_NAMES}
    if len(real) >= 2 and len(generated) >= 2:
        out["frechet_distance"] = frechet_distance_of(real, generated)
    if len(real) > k and len(generated) > k:
        out.update(asdict(prdc(real, generated, k)))
    return out
