"""The Noise levels map: the joint embedding's points coloured by class, with the paths over them, and its clicks.

The points depend on the view, never on the selection, so a click reuses them; the window
spans every coordinate of the layer, so it stays put. A click selects as on Explore.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from explorer import animation, charts, common, export
from explorer.noise_paths import Trajectory, arrows_frame, paths_frame
from explorer.page_explore import picked_ids
from explorer.session import LakeSession
from explorer.state import ViewState
from explorer.tables import JointEmbedding, ScheduleSteps

NOISE_KEY = "noise-map"  # the map's widget key (one for its life, like the Explore scatter)
PICK_SEEN = "noise_pick_seen"
SPEC_SEEN = "noise_spec_seen"
POINTS_CACHE = "noise_points"  # (view key, points frame) of the last map this browser session drew
MAP_WIDTH, MAP_HEIGHT = 760, 560  # fixed, so arrow heads can be turned in screen space (one scale for x and y)


def class_colours(joint: JointEmbedding, rows: np.ndarray, session: LakeSession, palette: str) -> tuple[charts.ColorSpec, np.ndarray]:
    """Colours by class as on the Explore page: each class of the layer a palette colour when they fit,
    else the most frequent among the drawn points (the rest grey, "other"). Returns the
    legend's colour spec and each drawn point's index into its domain."""
    limit = charts.palette_size(palette)
    everywhere = [int(c) for c in np.flatnonzero(np.bincount(joint.class_id.astype(np.int64) + 1, minlength=1))]
    labels = {c: common.class_label(session, c - 1) for c in everywhere}
    if len(everywhere) <= limit:
        top, has_other = tuple(labels[c] for c in everywhere), False
    else:
        present, counts = np.unique(joint.class_id[rows].astype(np.int64) + 1, return_counts=True)
        top = charts.top_categories({labels[int(c)]: int(k) for c, k in zip(present, counts)}, limit)
        has_other = len(present) > len(top)
    spec = charts.legend_colour_spec("class", palette, top, has_other)
    lookup = {name: i for i, name in enumerate(top)}
    code_of = np.array([lookup.get(labels.get(c, ""), len(top)) for c in range(1001)], dtype=np.uint8)
    return spec, code_of[joint.class_id[rows].astype(np.int64) + 1]



# --- the map -----------------------------------------------------------------------------------
@lru_cache(maxsize=32)
def map_spec(colour: charts.ColorSpec, extent: tuple[float, float, float, float], renderer: str) -> dict[str, Any]:
    """The joint embedding's points (`points`) with the paths (`paths`, `arrows`) over them.

    Paths are coloured by their own `colour` field (no scale), so they never add legend
    entries; only the selected path's vertices are labelled with their sigma.
    """
    import altair as alt

    x0, x1, y0, y1 = extent
    x = alt.X("x:Q", title=None, scale=alt.Scale(domain=[x0, x1], nice=False, zero=False))
    y = alt.Y("y:Q", title=None, scale=alt.Scale(domain=[y0, y1], nice=False, zero=False))
    pick = alt.selection_point(name=charts.PICK, fields=["sample_id"], on="click", clear=False, toggle="true")
    tooltip = [alt.Tooltip("class:N"), alt.Tooltip("source:N"), alt.Tooltip("sigma:Q", title="sigma"), alt.Tooltip("sample_id:N", title="sample id")]
    points = (
        alt.Chart(alt.Data(name="points"))
        .mark_circle(clip=True, size=22, opacity=0.6, aria=renderer == "svg")
        .encode(
            x=x,
            y=y,
            color=alt.Color("colour:N", title=colour.title, scale=colour.scale(), legend=alt.Legend(symbolLimit=24, labelLimit=220)),
            tooltip=tooltip,
        )
        .add_params(pick)
    )
    fixed = alt.Color("colour:N", scale=None)
    lines = alt.Chart(alt.Data(name="paths")).mark_line(clip=True).encode(
        x=x, y=y, detail="path:N", order="order:Q", color=fixed, strokeWidth=alt.StrokeWidth("width:Q", scale=None)
    )
    vertices = alt.Chart(alt.Data(name="paths")).mark_circle(clip=True, size=60, opacity=1, stroke="white", strokeWidth=1).encode(
        x=x, y=y, color=fixed, tooltip=[alt.Tooltip("label:N", title="sigma"), alt.Tooltip("sample_id:N", title="sample id")]
    )
    arrows = alt.Chart(alt.Data(name="arrows")).mark_point(shape="triangle-up", filled=True, size=140, opacity=1, clip=True).encode(
        x=x, y=y, color=fixed, angle=alt.Angle("angle:Q", scale=None)
    )
    labels = (
        alt.Chart(alt.Data(name="paths"))
        .transform_filter("datum.role === 'selected'")
        .mark_text(dy=-13, fontSize=13, fontWeight="bold", color="#0b1f66")
        .encode(x=x, y=y, text="label:N")
    )
    chart = (
        alt.layer(points, lines, arrows, vertices, labels)
        # `pad`: width and height are the plot's own (axes and legend outside them), so one
        # data unit is as long across as up and the arrow heads' angles hold on screen.
        .properties(width=MAP_WIDTH, height=MAP_HEIGHT, autosize=alt.AutoSizeParams(type="pad"), usermeta={"embedOptions": {"renderer": renderer}})
        .configure_view(strokeWidth=0)
    )
    return chart.to_dict(validate=False)


def apply_clicks(view: ViewState) -> ViewState:
    """A click on this map (a toggle of its point selection) selects, as on the Explore page."""
    if NOISE_KEY not in st.session_state:
        st.session_state[PICK_SEEN] = charts.PickSeen()
        st.session_state.pop(SPEC_SEEN, None)
    state = st.session_state.get(NOISE_KEY)
    try:
        selection = state["selection"][charts.PICK]  # type: ignore[index]
    except (KeyError, TypeError):
        selection = None
    clicked, st.session_state[PICK_SEEN] = st.session_state.get(PICK_SEEN, charts.PickSeen()).update(picked_ids(selection, "sample_id"))
    if clicked:
        view = view.with_click(clicked, st.session_state.get("w_click_mode", "neighbours"))
        st.session_state[common.VIEW] = view
    return view


def _spec_shown(spec_id: int) -> None:
    if st.session_state.get(SPEC_SEEN) != spec_id:
        st.session_state[SPEC_SEEN] = spec_id
        st.session_state[PICK_SEEN] = st.session_state.get(PICK_SEEN, charts.PickSeen()).rebuilt()



def _points_frame(session: LakeSession, joint: JointEmbedding, rows: np.ndarray, columns: list[int], colour: charts.ColorSpec,
                  codes: np.ndarray) -> pd.DataFrame:
    """The map's points: the drawn rows at each of the sigma `columns` (not-computed ones left out)."""
    domain = list(colour.domain or ())
    parts = []
    for c in columns:
        xy = joint.coords[rows, c]
        ok = np.isfinite(xy).all(axis=1)
        parts.append(pd.DataFrame({
            "x": xy[ok, 0], "y": xy[ok, 1],
            "sample_id": pd.array(np.asarray(joint.sample_id[rows[ok]], dtype=object), dtype="string"),
            "class": export.class_labels(joint.class_id[rows[ok]], session.classes),
            "source": pd.Categorical.from_codes(joint.source_code[rows[ok]], categories=list(joint.sources)),
            "sigma": np.float32(joint.sigmas[c]),
            "colour": pd.Categorical.from_codes(codes[ok], categories=domain),
        }))  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def _extent(joint: JointEmbedding, schedules: dict[str, ScheduleSteps]) -> tuple[float, float, float, float]:
    """The map's window: every coordinate of the layer (all sigmas, all steps), so it stays put
    whatever the selection, the filters or the sigma shown (paths always fit)."""
    flat = [joint.coords.reshape(-1, 2), *(steps.coords.reshape(-1, 2) for steps in schedules.values())]
    return animation.fit_extent(np.concatenate(flat), MAP_WIDTH, MAP_HEIGHT)


def draw_map(session: LakeSession, joint: JointEmbedding, schedules: dict[str, ScheduleSteps], rows: np.ndarray, columns: list[int],
         colour: charts.ColorSpec, codes: np.ndarray, paths: list[tuple[Trajectory, str, str]]) -> None:
    # The drawn points depend on the view, never on the selection: a click reuses them (the
    # same bytes, which the browser keeps) instead of rebuilding up to 50,000 rows.
    key = (id(session), joint.layer, tuple(columns), rows.tobytes(), colour)
    cached = st.session_state.get(POINTS_CACHE)
    if cached is None or cached[0] != key:
        cached = (key, _points_frame(session, joint, rows, columns, colour, codes))
        st.session_state[POINTS_CACHE] = cached
    points = cached[1]
    extent = session.memo(("joint_extent", joint.layer), lambda: _extent(joint, schedules))
    renderer = charts.renderer_for(len(points))
    spec = map_spec(colour, extent, renderer)
    _spec_shown(hash((colour, extent, renderer)))
    shown = f"{len(rows):,} samples" + (f" × {len(columns)} noise levels" if len(columns) > 1 else "")
    st.caption(f"{shown} ({len(points):,} points) of the {joint.layer} joint embedding · the path runs from high sigma to low · click a point to select it")
    st.vega_lite_chart(
        spec=charts.with_datasets(spec, points=points, paths=paths_frame(paths), arrows=arrows_frame(paths, extent, MAP_WIDTH, MAP_HEIGHT)),
        on_select="rerun",
        selection_mode=[charts.PICK],
        key=NOISE_KEY,
        width="content",  # the spec's own width: one data unit as long across as up, and arrow heads turned right
    )


