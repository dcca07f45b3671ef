"""What to draw: filtering, 3D projection, zoom windows, stratified sampling and binning.

Pure numpy over the per-sample vectors of an `EmbeddingFrame`; every function here runs
in milliseconds at 1.28M points, so the app can recompute on each rerun and cache only
the expensive loads.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .state import Window


def filter_mask(
    class_id: np.ndarray,
    source_code: np.ndarray,
    sources: tuple[str, ...],
    split_code: np.ndarray,
    splits: tuple[str, ...],
    classes: tuple[int, ...] = (),
    keep_sources: tuple[str, ...] = (),
    keep_splits: tuple[str, ...] = (),
) -> np.ndarray:
    """Boolean mask of the points passing the class, source and split filters (empty filter = all)."""
    mask = np.ones(len(class_id), dtype=bool)
    if classes:
        lut = np.zeros(1001, dtype=bool)  # index class_id + 1, so unknown (-1) maps to 0
        lut[np.asarray(classes, dtype=np.int64) + 1] = True
        mask &= lut[class_id.astype(np.int64) + 1]
    if keep_sources:
        mask &= _code_lut(sources, keep_sources)[source_code]
    if keep_splits:
        mask &= _code_lut(splits, keep_splits)[split_code]
    return mask


def _code_lut(categories: tuple[str, ...], keep: tuple[str, ...]) -> np.ndarray:
    return np.array([c in keep for c in categories] or [False], dtype=bool)


def rotation_matrix(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Orthographic camera: turn by `azimuth` about the y axis, then tilt by `elevation` about x."""
    a, e = np.radians(azimuth_deg), np.radians(elevation_deg)
    turn = np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])
    tilt = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(e), -np.sin(e)], [0.0, np.sin(e), np.cos(e)]])
    return tilt @ turn


def plotted_xy(coords: np.ndarray, rotation: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """The 2D coordinates shown on screen: the embedding itself, or a rotated view of a 3D one."""
    if coords.shape[1] == 2:
        return coords
    centre = np.nanmean(coords, axis=0, dtype=np.float64)
    rotated = (coords - centre.astype(np.float32)) @ rotation_matrix(*rotation)[:2].T.astype(np.float32)
    return rotated.astype(np.float32, copy=False)


def data_extent(xy: np.ndarray, margin: float = 0.02) -> Window:
    """Bounding box of all points with a small margin (stable under filtering, so views don't jump)."""
    if len(xy) == 0:
        return (0.0, 1.0, 0.0, 1.0)
    lo = np.nanmin(xy, axis=0).astype(np.float64)
    hi = np.nanmax(xy, axis=0).astype(np.float64)
    span = np.maximum(hi - lo, 1e-9)
    lo, hi = lo - margin * span, hi + margin * span
    return (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))


def window_mask(xy: np.ndarray, window: Window | None) -> np.ndarray:
    """Points inside the zoom window (all points when there is none)."""
    if window is None:
        return np.ones(len(xy), dtype=bool)
    x0, x1, y0, y1 = window
    x, y = xy[:, 0], xy[:, 1]
    return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)


def strata_codes(class_id: np.ndarray, source_code: np.ndarray, n_sources: int) -> np.ndarray:
    """One stratum per (class, source) pair."""
    return (class_id.astype(np.int64) + 1) * max(n_sources, 1) + source_code


def stratified_sample(mask: np.ndarray, strata: np.ndarray, u: np.ndarray, cap: int) -> np.ndarray:
    """Rows to draw: all masked rows when at most `cap`, else a deterministic stratified sample of ~cap.

    Each stratum keeps the points whose fixed per-sample uniform `u` (from a hash of its
    row, `data.row_uniform`) is below the stratum's rate. Rates are proportional to stratum size, with a
    floor so that small classes stay visible. Because `u` is fixed per sample, zooming in
    (a smaller window, higher rates) only ever adds points: the view is stable.
    """
    rows = np.flatnonzero(mask)
    if len(rows) <= cap:
        return rows
    s = strata[rows]
    counts = np.bincount(s)
    present = counts > 0
    floor = cap / (4.0 * max(int(present.sum()), 1))
    quota = np.maximum(cap * counts / len(rows), np.minimum(counts, floor))
    quota *= cap / max(quota.sum(), 1.0)
    rate = np.divide(quota, counts, out=np.zeros(len(counts)), where=present)
    return rows[u[rows] < rate[s]]


@dataclass(frozen=True)
class DensityGrid:
    """Point counts on a regular grid over `extent`: counts[iy, ix]."""

    counts: np.ndarray
    extent: Window

    @property
    def shape(self) -> tuple[int, int]:
        rows, cols = self.counts.shape
        return rows, cols

    def cells(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Non-empty cells as (x0, x1, y0, y1, value) arrays."""
        return _cells(self.counts, self.extent, self.counts != 0)


def _cells(values: np.ndarray, extent: Window, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ny, nx = values.shape
    x0, x1, y0, y1 = extent
    iy, ix = np.nonzero(keep)
    dx, dy = (x1 - x0) / nx, (y1 - y0) / ny
    return (x0 + ix * dx, x0 + (ix + 1) * dx, y0 + iy * dy, y0 + (iy + 1) * dy, values[iy, ix])


def bin_index(xy: np.ndarray, extent: Window, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat grid cell of each point and whether it lies inside `extent`."""
    x0, x1, y0, y1 = extent
    fx = (xy[:, 0] - np.float32(x0)) * np.float32(bins / (x1 - x0))
    fy = (xy[:, 1] - np.float32(y0)) * np.float32(bins / (y1 - y0))
    inside = (fx >= 0) & (fx < bins) & (fy >= 0) & (fy < bins)
    ix = fx.astype(np.int64, copy=False)
    iy = fy.astype(np.int64, copy=False)
    return iy * bins + ix, inside


def density_grid(xy: np.ndarray, mask: np.ndarray, extent: Window, bins: int = 100) -> DensityGrid:
    """Counts of masked points per cell: `np.histogram2d` semantics via one `bincount` (~8x faster)."""
    flat, inside = bin_index(xy, extent, bins)
    keep = mask & inside
    counts = np.bincount(flat[keep], minlength=bins * bins).reshape(bins, bins)
    return DensityGrid(counts, extent)


def density_difference(
    xy: np.ndarray, mask: np.ndarray, generated: np.ndarray, real: np.ndarray, extent: Window, bins: int = 80, smooth: float = 1.0
) -> DensityGrid:
    """Generated-minus-real density (each normalised to sum 1, lightly smoothed), on a grid.

    Positive cells: regions generated images over-occupy; negative: real images the
    generator under-covers.
    """
    flat, inside = bin_index(xy, extent, bins)
    densities = []
    for part in (generated, real):
        keep = mask & inside & part
        counts = np.bincount(flat[keep], minlength=bins * bins).reshape(bins, bins).astype(np.float64)
        if smooth > 0:
            from scipy.ndimage import gaussian_filter

            counts = gaussian_filter(counts, smooth)
        total = counts.sum()
        densities.append(counts / total if total > 0 else counts)
    return DensityGrid(densities[0] - densities[1], extent)


def difference_cells(grid: DensityGrid, threshold: float = 0.02) -> tuple[np.ndarray, ...]:
    """Cells whose |difference| exceeds `threshold` of the largest one (the rest are blank)."""
    peak = float(np.abs(grid.counts).max()) if grid.counts.size else 0.0
    keep = np.abs(grid.counts) > threshold * peak if peak > 0 else np.zeros(grid.counts.shape, bool)
    return _cells(grid.counts, grid.extent, keep)


def nearest_in_plane(xy: np.ndarray, row: int, k: int, candidates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest points to `row` in the plotted coordinates (brute force), excluding itself."""
    rows = np.arange(len(xy)) if candidates is None else np.flatnonzero(candidates)
    rows = rows[rows != row]
    if len(rows) == 0 or k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    d = np.sqrt(((xy[rows].astype(np.float64) - xy[row].astype(np.float64)) ** 2).sum(axis=1))
    k = min(k, len(rows))
    top = np.argpartition(d, k - 1)[:k]
    top = top[np.lexsort((rows[top], d[top]))]
    return rows[top].astype(np.int64), d[top].astype(np.float32)
