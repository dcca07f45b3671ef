"""The Explore page: the scatter of the embedding, the overview with box zoom, and the view exports."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from explorer import charts, common, export, queries, views
from explorer.common import NONCE, ZOOM_NONCE
from explorer.data import EmbeddingFrame, LakeSession
from explorer.details import details_panel
from explorer.state import ViewState, brush_window, clicked_value
from explorer.thumbs import ThumbnailServer


def apply_chart_events(view: ViewState) -> ViewState:
    """Clicks on the scatter and brushes on the overview arrive as widget state at the start of a rerun."""
    pick_state = st.session_state.get(f"scatter-{st.session_state[NONCE]}")
    clicked = clicked_value(_selection(pick_state, charts.PICK), "sample_id")
    if clicked:
        view = view.with_click(str(clicked), st.session_state.get("w_click_mode", "neighbours"))
        st.session_state[NONCE] += 1
    zoom_state = st.session_state.get(f"overview-{st.session_state[ZOOM_NONCE]}")
    window = brush_window(_selection(zoom_state, charts.ZOOM))
    if window is not None:
        view = replace(view, window=window)
        st.session_state[ZOOM_NONCE] += 1
    return view


def _selection(state: Any, name: str) -> Any:
    try:
        return state["selection"][name]
    except (KeyError, TypeError):
        return None


def _reset_zoom() -> None:
    st.session_state[common.VIEW] = replace(st.session_state[common.VIEW], window=None)
    st.session_state[ZOOM_NONCE] += 1


def _colour(session: LakeSession, frame: EmbeddingFrame, view: ViewState, rows: np.ndarray, visible_classes: int) -> tuple[charts.ColorSpec, dict[str, Any]]:
    """The colour spec and the per-point colour column(s) for the drawn rows."""
    if view.color_by == "class":
        domain = tuple(session.classes.label(c) for c in common.present_classes(session, view.embedding))
        return charts.ColorSpec("class", "class", True, view.palette, domain=domain, legend=visible_classes <= 24), {}
    if view.color_by == "source":
        return charts.ColorSpec("source", "source", True, view.palette, domain=frame.sources), {}
    if view.color_by == "split":
        return charts.ColorSpec("split", "split", True, view.palette, domain=frame.splits), {"split": None}
    values = session.column_values(view.embedding, view.color_by)
    title = view.color_by.partition(".")[2]
    if values.dtype.kind in "iufb":
        return charts.ColorSpec("value", title, False, view.palette), {"value": values[rows].astype(np.float64)}
    drawn = np.asarray(values[rows], dtype=object)
    categories = tuple(sorted(set(drawn.tolist())))
    return charts.ColorSpec("value", title, True, view.palette, domain=categories, legend=len(categories) <= 24), {"value": drawn}


def _roles(frame: EmbeddingFrame, view: ViewState, neighbour_rows: np.ndarray) -> dict[int, str]:
    roles: dict[int, str] = {int(r): "knn" for r in neighbour_rows}
    for r in frame.rows_of(view.manual):
        if r >= 0:
            roles[int(r)] = "manual"
    if view.selected:
        r = int(frame.rows_of([view.selected])[0])
        if r >= 0:
            roles[r] = "selected"
    return roles


def _scatter_points(session: LakeSession, frame: EmbeddingFrame, view: ViewState, xy: np.ndarray, rows: np.ndarray, roles: dict[int, str], visible_classes: int) -> tuple[Any, charts.ColorSpec]:
    extra = np.array(sorted(set(roles) - set(rows.tolist())), dtype=np.int64)
    rows = np.concatenate([rows, extra])
    table = export.points_frame(frame, rows, session.classes)
    table = table.drop(columns=[c for c in ("z",) if c in table])
    table["x"], table["y"] = xy[rows, 0], xy[rows, 1]
    table.insert(0, "row", rows)
    table["thumb"] = frame.sample_row[rows]
    table["role"] = pd.Series(rows).map(roles).fillna("point").to_numpy() if roles else "point"
    table["role_rank"] = table["role"].map({role: i for i, role in enumerate(charts.ROLES)}).astype(np.int8)
    spec, columns = _colour(session, frame, view, rows, visible_classes)
    for name, values in columns.items():
        if values is not None:
            table[name] = values
    return table, spec


def explore_page(session: LakeSession, thumbs: ThumbnailServer, frame: EmbeddingFrame, view: ViewState, xy: np.ndarray, mask: np.ndarray) -> None:
    extent = session.memo(("extent", view.embedding, view.rotation), lambda: views.data_extent(xy))
    shown_extent = view.window or extent
    in_window = mask & views.window_mask(xy, view.window)
    total, visible = int(mask.sum()), int(in_window.sum())
    rows = common.stratified_rows(session, frame, view.embedding, in_window, view.max_points)
    sampled = len(rows) < visible

    selected_row = int(frame.rows_of([view.selected])[0]) if view.selected else -1
    neighbours = _neighbours(session, frame, view, selected_row)
    roles = _roles(frame, view, neighbours.rows if neighbours is not None else np.zeros(0, np.int64))
    visible_classes = len(np.unique(frame.class_id[rows])) if len(rows) else 0
    points, colour = _scatter_points(session, frame, view, xy, rows, roles, visible_classes)

    left, right = st.columns([3, 2], gap="medium")
    with left:
        status = f"{visible:,} of {total:,} filtered points in view"
        status += f" · drawing a stratified sample of {len(rows):,} over a density map" if sampled else f" · drawing all {len(rows):,}"
        st.caption(status)
        datasets = {"points": points}
        if sampled:
            datasets["cells"] = charts.cells_frame(views.density_grid(xy, in_window, shown_extent, bins=90).cells())
        spec = charts.scatter_spec(colour, shown_extent, thumbs.base_url, sampled, charts.renderer_for(len(points)))
        st.vega_lite_chart(
            spec=charts.with_datasets(spec, **datasets),
            on_select="rerun",
            selection_mode=[charts.PICK],
            key=f"scatter-{st.session_state[NONCE]}",
            width="stretch",
        )
        overview = charts.cells_frame(views.density_grid(xy, mask, extent, bins=72).cells())
        with st.expander("Overview and zoom: drag a box on the density map", expanded=view.window is not None or sampled):
            st.vega_lite_chart(
                spec=charts.with_datasets(charts.overview_spec(extent, view.window, charts.renderer_for(len(overview))), cells=overview),
                on_select="rerun",
                selection_mode=[charts.ZOOM],
                key=f"overview-{st.session_state[ZOOM_NONCE]}",
                width="stretch",
            )
            st.button("Reset zoom", on_click=_reset_zoom, disabled=view.window is None)
        _view_downloads(session, frame, in_window)
    with right:
        details_panel(session, frame, view, selected_row, neighbours)


def _neighbours(session: LakeSession, frame: EmbeddingFrame, view: ViewState, row: int) -> queries.Neighbours | None:
    if row < 0:
        return None
    if view.neighbour_space == "projection":
        return queries.projection_neighbours(frame, row, view.k)
    # Memoised: a brute-force query over PCA scores must not rerun on every rerun.
    return session.memo(("neighbours", view.embedding, row, view.k), lambda: queries.activation_neighbours(session, view.embedding, row, view.k))


def _view_downloads(session: LakeSession, frame: EmbeddingFrame, mask: np.ndarray) -> None:
    rows = np.flatnonzero(mask)
    cols = st.columns(2)
    cols[0].download_button(
        f"Export view as CSV ({len(rows):,} rows)",
        data=lambda: export.to_csv(export.points_frame(frame, rows, session.classes)),
        file_name="view.csv",
        mime="text/csv",
        on_click="ignore",
        key="export_view_csv",
    )
    cols[1].download_button(
        "Export view as Parquet",
        data=lambda: export.to_parquet(export.points_frame(frame, rows, session.classes)),
        file_name="view.parquet",
        mime="application/vnd.apache.parquet",
        on_click="ignore",
        key="export_view_parquet",
    )
