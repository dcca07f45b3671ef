import numpy as np

from explorer import views


def _points(n=20000, seed=0):
    rng = np.random.default_rng(seed)
    xy = rng.normal(size=(n, 2)).astype(np.float32)
    class_id = rng.integers(0, 50, n).astype(np.int16)
    class_id[:30] = 999  # a tiny class
    source = rng.integers(0, 2, n).astype(np.int32)
    u = rng.random(n)
    return xy, class_id, source, u


def test_filter_mask_combines_class_source_and_split():
    class_id = np.array([1, 1, 2, 3, -1], dtype=np.int16)
    source = np.array([0, 1, 0, 1, 0], dtype=np.int32)
    split = np.array([0, 1, 1, 0, 0], dtype=np.int32)
    args = (class_id, source, ("generated", "real"), split, ("train", "val"))
    assert views.filter_mask(*args).all()
    assert views.filter_mask(*args, classes=(1, 3)).tolist() == [True, True, False, True, False]
    assert views.filter_mask(*args, classes=(1,), keep_sources=("real",)).tolist() == [False, True, False, False, False]
    assert views.filter_mask(*args, keep_splits=("val",)).tolist() == [False, True, True, False, False]
    assert not views.filter_mask(*args, keep_sources=("nonexistent",)).any()


def test_stratified_sample_caps_is_deterministic_and_keeps_small_classes():
    xy, class_id, source, u = _points()
    strata = views.strata_codes(class_id, source, 2)
    mask = np.ones(len(xy), bool)
    rows = views.stratified_sample(mask, strata, u, 2000)
    assert 1600 <= len(rows) <= 2400
    assert np.array_equal(rows, views.stratified_sample(mask, strata, u, 2000))
    assert (class_id[rows] == 999).sum() >= 5  # 30 points of 20000 would get ~3 by proportion alone
    # every class is represented in proportion to its size (within sampling noise)
    share = np.bincount(class_id[rows], minlength=50)[:50] / len(rows)
    expected = np.bincount(class_id, minlength=50)[:50] / len(xy)
    assert np.abs(share - expected).max() < 0.02


def test_stratified_sample_returns_everything_under_the_cap_and_nests_when_zooming():
    xy, class_id, source, u = _points()
    strata = views.strata_codes(class_id, source, 2)
    small = views.window_mask(xy, (-0.1, 0.1, -0.1, 0.1))
    assert np.array_equal(views.stratified_sample(small, strata, u, 10_000), np.flatnonzero(small))
    wide = views.window_mask(xy, (-1, 1, -1, 1))
    everything = views.stratified_sample(np.ones(len(xy), bool), strata, u, 3000)
    zoomed = views.stratified_sample(wide, strata, u, 3000)
    inside = everything[wide[everything]]
    assert set(inside.tolist()) <= set(zoomed.tolist())  # zooming in only adds points


def test_density_grid_matches_numpy_histogram2d():
    xy, *_ = _points(5000)
    extent = views.data_extent(xy)
    mask = xy[:, 0] > -0.5
    grid = views.density_grid(xy, mask, extent, bins=40)
    expected, _, _ = np.histogram2d(xy[mask, 1], xy[mask, 0], bins=40, range=[extent[2:], extent[:2]])
    assert np.array_equal(grid.counts, expected.astype(int))
    x0, x1, y0, y1, count = grid.cells()
    assert count.sum() == mask.sum() and (count > 0).all() and (x1 > x0).all() and (y1 > y0).all()


def test_density_difference_is_positive_where_generated_points_crowd():
    rng = np.random.default_rng(1)
    real = rng.normal(-2, 0.3, size=(2000, 2))
    gen = rng.normal(2, 0.3, size=(2000, 2))
    xy = np.concatenate([real, gen]).astype(np.float32)
    is_gen = np.arange(4000) >= 2000
    grid = views.density_difference(xy, np.ones(4000, bool), is_gen, ~is_gen, (-4, 4, -4, 4), bins=16, smooth=0.5)
    assert grid.counts[12, 12] > 0 > grid.counts[3, 3]
    assert abs(grid.counts.sum()) < 1e-9  # both densities sum to 1
    assert len(views.difference_cells(grid)[0]) < 16 * 16


def test_rotation_preserves_distances_and_identity_shows_x_y():
    rng = np.random.default_rng(2)
    coords = rng.normal(size=(100, 3)).astype(np.float32)
    flat = views.plotted_xy(coords, (0.0, 0.0))
    assert np.allclose(flat, coords[:, :2] - coords[:, :2].mean(axis=0), atol=1e-5)
    r = views.rotation_matrix(40, -25)
    assert np.allclose(r @ r.T, np.eye(3))
    turned = views.plotted_xy(coords, (90.0, 0.0))
    assert np.allclose(turned[:, 0], coords[:, 2] - coords[:, 2].mean(), atol=1e-5)


def test_nearest_in_plane_matches_a_full_sort():
    rng = np.random.default_rng(3)
    xy = rng.normal(size=(500, 2)).astype(np.float32)
    rows, d = views.nearest_in_plane(xy, 7, 5)
    full = np.sqrt(((xy - xy[7]) ** 2).sum(axis=1))
    full[7] = np.inf
    assert rows.tolist() == np.argsort(full)[:5].tolist()
    assert np.allclose(d, np.sort(full)[:5], atol=1e-6)
    assert 7 not in rows
