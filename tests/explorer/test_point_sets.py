"""Sets of points: their outlines in the URL, who is in them, what their summaries count."""
from __future__ import annotations

import numpy as np
import xarray as xr

from conftest import KEY, NAME_2D
from explorer import point_sets
from explorer.session import LakeSession
from explorer.state import MAX_SET_VERTICES, MAX_SETS, PointSet, ViewState, decode_query_params, encode_query_params, set_name

REF = f"{KEY}/{NAME_2D}"


def test_sets_round_trip_through_the_url_and_malformed_ones_are_left_out():
    view = ViewState(embedding=REF, sets=(PointSet("set 1", REF, ((0.0, 0.0), (1.5, 0.0), (1.0, 2.25))), PointSet("b-2", REF, ((1, 1), (2, 1), (2, 2)))))
    assert decode_query_params(encode_query_params(view)) == view
    good = encode_query_params(view)["sets"]
    for bad in ("x~e~0,0;1,1", "a<b>~e~0,0;1,0;1,1", "a~~0,0;1,0;1,1", "a~e~0,0;1,nan;1,1", "a~e~0,0;1;1,1"):
        assert decode_query_params({"sets": f"{bad}|{good}"}).sets == view.sets
    assert set_name("<script>set", "x") == "scriptset" and set_name("!!", "set 3") == "set 3"


def test_a_lasso_is_simplified_and_named_and_old_sets_make_room():
    angle = np.linspace(0, 2 * np.pi, 500, endpoint=False)
    circle = np.c_[np.cos(angle), np.sin(angle)] * (1 + 0.01 * np.sin(40 * angle))[:, None]
    view = ViewState(embedding=REF)
    for _ in range(MAX_SETS + 2):
        view = point_sets.add_set(view, circle, span=2.0)
    assert len(view.sets) == MAX_SETS and all(3 <= len(s.polygon) <= MAX_SET_VERTICES for s in view.sets)
    assert [s.name for s in view.sets] == [f"set {n}" for n in range(3, MAX_SETS + 3)]  # the oldest went first; names never repeat
    assert point_sets.remove_set(view, view.sets[0].name).sets == view.sets[1:]
    xy = np.random.default_rng(0).uniform(-1.5, 1.5, size=(4000, 2))
    kept = point_sets.points_in_polygon(xy, np.asarray(view.sets[-1].polygon), np.ones(4000, bool))
    radius = np.hypot(*xy.T)
    assert set(np.flatnonzero(radius < 0.95)) <= set(kept) and not set(kept) & set(np.flatnonzero(radius > 1.05))


def test_summaries_count_what_the_lake_holds(small_lake):
    session = LakeSession(small_lake.path)
    frame = session.frame(REF)
    table = xr.open_zarr(small_lake.path, group=f"analysis/embeddings/{REF}")
    coords = table["embedding"].values
    centre = np.median(coords, axis=0)
    polygon = np.array([centre + [-50, -50], centre + [50, -50], centre + [50, 0], centre + [-50, 0]])  # the lower half
    rows = point_sets.set_rows(frame.coords, np.ones(frame.size, bool), PointSet("low", REF, tuple(map(tuple, polygon))))
    assert np.array_equal(np.sort(rows), np.flatnonzero(coords[:, 1] < centre[1]))
    summary = point_sets.summarise(session, frame, REF, "low", rows, None)
    sources = np.asarray(table["source"].values, dtype=object).astype(str)[rows]
    assert summary.size == len(rows) and summary.real_fraction == np.mean(sources == "real")
    assert dict(summary.by_source) == {s: int((sources == s).sum()) for s in set(sources)}
    assert sum(n for _, n in summary.by_class) == len(rows) and summary.central_space == "PCA"
    assert set(summary.central_rows) <= set(rows) and len(summary.central_rows) == point_sets.CENTRAL
    assert summary.knn_inside is not None and 0 < summary.knn_inside <= 1
    everything = np.arange(frame.size)
    assert point_sets.knn_inside(session, REF, everything, everything) == 1.0  # every neighbour of every point is a point
    same = point_sets.frechet_between(session, REF, rows, rows)
    other = point_sets.frechet_between(session, REF, rows, np.setdiff1d(everything, rows))
    assert same is not None and other is not None and same < 1e-6 < other
