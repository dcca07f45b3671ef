"""The Explore page: the scatter of the embedding, the overview with box zoom, and the view exports."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from explorer import charts, common, explore_gl, export, prompts, queries, scatter_gl, views
from explorer.common import ZOOM_NONCE
from explorer.colouring import point_colours
from explorer.frames import EmbeddingFrame
from explorer.session import LakeSession
from explorer.details import details_panel
from explorer.jobs_panel import jobs_section
from explorer.sets_panel import sets_section
from explorer.state import ViewState, Window, brush_window
from explorer.thumbs import ThumbnailServer

SCATTER_KEY = "scatter-main"  # one key for the chart's life: a new key would make the browser rebuild it
PICK_SEEN = "scatter_pick_seen"  # charts.PickSeen: what the last rerun saw of the click selection
SPEC_SEEN = "scatter_spec_seen"  # the spec the browser's view was built from


def apply_chart_events(view: ViewState, session: LakeSession, frame: EmbeddingFrame) -> ViewState:
    """Clicks on the scatter and brushes on the overview arrive as widget state at the start of a rerun.

    The WebGL scatter sends a click as a one-run trigger naming the point. The Vega scatter's
    selection toggles, so a click is the one id by which it changed since the last rerun;
    reruns for other reasons leave it unchanged and click nothing.
    """
    view = explore_gl.gl_zoom(session, view, st.session_state)
    view = explore_gl.gl_lasso(frame, session, view, st.session_state)
    clicked_gl = explore_gl.gl_click(frame, session, view, st.session_state)
    if clicked_gl is not None:
        view = view.with_click(clicked_gl, st.session_state.get("w_click_mode", "neighbours"))
    if SCATTER_KEY not in st.session_state:
        # No scatter last run (first run, another page): the next one is a new view in the
        # browser with an empty selection, whatever the old one held.
        st.session_state[PICK_SEEN] = charts.PickSeen()
        st.session_state.pop(SPEC_SEEN, None)
    current = picked_ids(_selection(st.session_state.get(SCATTER_KEY), charts.PICK), "sample_id")
    clicked, st.session_state[PICK_SEEN] = st.session_state.get(PICK_SEEN, charts.PickSeen()).update(current)
    if clicked:
        view = view.with_click(clicked, st.session_state.get("w_click_mode", "neighbours"))
    zoom_state = st.session_state.get(f"overview-{st.session_state[ZOOM_NONCE]}")
    window = brush_window(_selection(zoom_state, charts.ZOOM))
    if window is not None:
        view = replace(view, window=window)
        st.session_state[ZOOM_NONCE] += 1
    return view


def picked_ids(selection: Any, field: str) -> tuple[str, ...]:
    """The `field` values of every tuple a point selection holds, in order."""
    if not selection:
        return ()
    items = [selection] if isinstance(selection, dict) else list(selection)
    # A click on a density cell selects a tuple without the field (or with null): no point.
    return tuple(str(item[field]) for item in items if isinstance(item, dict) and item.get(field) is not None)


def _spec_shown(spec_id: int) -> None:
    """A new spec makes the browser build a new view whose selection starts empty."""
    if st.session_state.get(SPEC_SEEN) != spec_id:
        st.session_state[SPEC_SEEN] = spec_id
        st.session_state[PICK_SEEN] = st.session_state.get(PICK_SEEN, charts.PickSeen()).rebuilt()


def _selection(state: Any, name: str) -> Any:
    try:
        return state["selection"][name]
    except (KeyError, TypeError):
        return None


def _reset_zoom() -> None:
    st.session_state[common.VIEW] = replace(st.session_state[common.VIEW], window=None)
    st.session_state[ZOOM_NONCE] += 1


HIGHLIGHT_KEY = "w_highlight"  # classes the user picked to colour (others grey)


def _table(session: LakeSession, frame: EmbeddingFrame, xy: np.ndarray, rows: np.ndarray, colour_column: tuple[str, Any]) -> pd.DataFrame:
    """The columns a drawn point needs, compact: float32 coordinates, dictionary-coded labels (and, in a lake with
    text-to-image samples, the prompt for the hover, dictionary-coded too)."""
    table = pd.DataFrame(
        {
            "x": xy[rows, 0].astype(np.float32),
            "y": xy[rows, 1].astype(np.float32),
            "sample_id": pd.array(np.asarray(frame.sample_id[rows], dtype=object), dtype="string"),
            "class": export.class_labels(frame.class_id[rows], session.classes),
            "source": pd.Categorical.from_codes(frame.source_code[rows], categories=list(frame.sources)),
            "thumb": frame.sample_row[rows].astype(np.int32),  # the thumbnail URL is built in the browser
        }
    )
    if prompts.has_t2i(session):
        table["prompt"] = prompts.hover_prompts(session, frame, frame.info.ref, rows)
    field, values = colour_column
    table[field] = values(rows)
    return table


def marks_frame(session: LakeSession, frame: EmbeddingFrame, xy: np.ndarray, roles: dict[int, str], colour_column: tuple[str, Any]) -> pd.DataFrame:
    """The highlighted rows (k-NN, manual, selected), in drawing order: the selected point last, on top."""
    order = sorted(roles, key=lambda r: (charts.ROLES.index(roles[r]), r))
    table = _table(session, frame, xy, np.array(order, dtype=np.int64), colour_column)
    table["role"] = [roles[r] for r in order]
    return table


def _roles(frame: EmbeddingFrame, view: ViewState, neighbour_rows: np.ndarray) -> dict[int, str]:
    roles: dict[int, str] = {int(r): "knn" for r in neighbour_rows}
    for r in frame.rows_of(list(view.manual)):
        if r >= 0:
            roles[int(r)] = "manual"
    if view.selected:
        r = int(frame.rows_of([view.selected])[0])
        if r >= 0:
            roles[r] = "selected"
    return roles


VIEW_CACHE = "explore_drawn"  # (key, DrawnView) of the last view this browser session drew


@dataclass(frozen=True)
class DrawnView:
    """Everything the Explore page draws that depends on the view but not on the selection."""

    extent: Window
    in_window: np.ndarray  # filtered points inside the zoom window
    total: int
    rows: np.ndarray  # drawn rows (a stratified sample when there are too many)
    colour: charts.ColorSpec
    column: tuple[str, Any]  # the colour field and the function giving it for any rows
    points: pd.DataFrame
    cells: pd.DataFrame | None  # density under a sample
    overview: pd.DataFrame
    placed: pd.DataFrame | None = None  # placed samples in view (diamonds), None when the embedding has none
    lineage: pd.DataFrame | None = None  # x, y -> x2, y2: a placed sample to one of its parents

    @property
    def sampled(self) -> bool:
        return self.cells is not None


def _drawn_view(session: LakeSession, frame: EmbeddingFrame, view: ViewState, xy: np.ndarray, mask: np.ndarray) -> DrawnView:
    """The drawn view, rebuilt only when the view changes: a click reuses the last one (one per
    browser session, so memory stays bounded), and its points stay the very same bytes."""
    key = (id(session), view.embedding, view.rotation, view.window, view.classes, view.sources, view.splits, view.prompt, view.max_points,
           view.color_by, view.palette, tuple(st.session_state.get(HIGHLIGHT_KEY, ())))  # fmt: skip
    cached = st.session_state.get(VIEW_CACHE)
    if cached is not None and cached[0] == key:
        return cached[1]
    extent = session.memo(("extent", view.embedding, view.rotation), lambda: views.data_extent(xy))
    in_window = mask & views.window_mask(xy, view.window)
    fitted_in_window = in_window
    if frame.n_placed:  # placed samples are drawn as their own layer, every one of them, never sampled away
        fitted_in_window = in_window.copy()
        fitted_in_window[frame.n_fitted :] = False
    rows = common.stratified_rows(session, frame, view.embedding, fitted_in_window, view.max_points)
    colour, colour_column = point_colours(session, frame, view, rows, tuple(st.session_state.get(HIGHLIGHT_KEY, ())))
    column = (colour.field, colour_column)
    sampled = len(rows) < int(fitted_in_window.sum())
    cells = charts.cells_frame(views.density_grid(xy, in_window, view.window or extent, bins=90).cells()) if sampled else None
    overview = charts.cells_frame(views.density_grid(xy, mask, extent, bins=72).cells())
    placed, lineage = _placed_frames(session, frame, view, xy, in_window, column) if frame.n_placed else (None, None)
    drawn = DrawnView(extent, in_window, int(mask.sum()), rows, colour, column, _table(session, frame, xy, rows, column), cells, overview,
                      placed, lineage)  # fmt: skip
    st.session_state[VIEW_CACHE] = (key, drawn)
    return drawn


MAX_PLACED_DRAWN = 5000  # placed samples come 64 at most per job; beyond this many, the newest are drawn


def _placed_frames(
    session: LakeSession, frame: EmbeddingFrame, view: ViewState, xy: np.ndarray, in_window: np.ndarray, column: tuple[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The placed samples in view (diamonds, with their placement in the hover) and the lines to their parents."""
    rows = frame.n_fitted + np.flatnonzero(in_window[frame.n_fitted :])
    rows = rows[-MAX_PLACED_DRAWN:]
    lineage = session.placed_lineage(view.embedding)
    table = _table(session, frame, xy, rows, column)
    index = rows - frame.n_fitted
    table["placement"] = [lineage.placement(int(i)) for i in index]
    links = np.isin(lineage.child_rows, rows)
    child, parent = lineage.child_rows[links], lineage.parent_rows[links]
    lines = pd.DataFrame(
        {"x": xy[child, 0], "y": xy[child, 1], "x2": xy[parent, 0], "y2": xy[parent, 1]}, dtype=np.float32
    )
    return table, lines


def explore_page(
    session: LakeSession,
    thumbs: ThumbnailServer,
    frame: EmbeddingFrame,
    view: ViewState,
    xy: np.ndarray,
    mask: np.ndarray,
    jobs: bool = False,
    renderer: str = "webgl",
) -> None:
    """The scatter, the overview and the details panel; with `jobs`, the edit-job buttons and jobs area under the details.

    `renderer`: "webgl" draws every point on the GPU (Vega when the browser cannot), "vega" a sample with Vega-Lite.
    """
    selected_row = int(frame.rows_of([view.selected])[0]) if view.selected else -1
    neighbours = _neighbours(session, frame, view, selected_row)
    roles = _roles(frame, view, neighbours.rows if neighbours is not None else np.zeros(0, np.int64))

    left, right = st.columns([3, 2], gap="medium")
    with left:
        caption = st.empty()
        if view.color_by == "class":
            present = common.present_classes(session, view.embedding)
            # Another embedding or a smaller palette: keep only what the box can still hold.
            st.session_state[HIGHLIGHT_KEY] = [c for c in st.session_state.get(HIGHLIGHT_KEY, []) if c in present][: charts.palette_size(view.palette)]
            st.multiselect(
                "Colour these classes (the rest grey; empty: the most frequent in view)",
                present,
                format_func=session.classes.label,
                key=HIGHLIGHT_KEY,
                max_selections=charts.palette_size(view.palette),
                placeholder="type to find a class",
            )
        gl_problem = scatter_gl.webgl_missing(st.session_state) if renderer == "webgl" else None
        on_gpu = renderer == "webgl" and gl_problem is None
        if on_gpu:
            # Box zoom and its reset are the scatter's own buttons; no overview chart rides every rerun.
            in_window = _gl_scatter(session, thumbs, frame, view, xy, mask, roles, caption)
        else:
            if gl_problem:
                st.caption(f"Drawing with Vega instead of WebGL ({gl_problem}): a sample of the points.")
            in_window = _vega_scatter(session, thumbs, frame, view, xy, mask, roles, caption)
        _view_downloads(session, frame, in_window)
        sets_section(session, frame, view, xy, mask, lasso=on_gpu)
    with right:
        details_panel(session, frame, view, selected_row, neighbours)
        if jobs:
            jobs_section(session, frame, view, selected_row)


def _vega_scatter(
    session: LakeSession, thumbs: ThumbnailServer, frame: EmbeddingFrame, view: ViewState, xy: np.ndarray, mask: np.ndarray,
    roles: dict[int, str], caption: Any,
) -> np.ndarray:
    """The Vega-Lite scatter (a stratified sample over a density map when there are many points), its overview; the points in view."""
    drawn = _drawn_view(session, frame, view, xy, mask)
    visible, rows = int(drawn.in_window.sum()), drawn.rows
    status = f"{visible:,} of {drawn.total:,} filtered points in view"
    status += f" · drawing a stratified sample of {len(rows):,} over a density map" if drawn.sampled else f" · drawing all {len(rows):,}"
    if drawn.placed is not None:
        status += f" · {len(drawn.placed):,} placed samples (diamonds, lines to their parents)"
    caption.caption(status)
    # The drawn points depend on the view, never on the selection: a click leaves this
    # dataset byte-identical and the browser keeps it (Streamlit compares dataset bytes).
    datasets = {"points": drawn.points, "marks": marks_frame(session, frame, xy, roles, drawn.column)}
    if drawn.cells is not None:
        datasets["cells"] = drawn.cells
    if drawn.placed is not None and drawn.lineage is not None:
        datasets["placed"], datasets["lineage"] = drawn.placed, drawn.lineage
    spec_args = (drawn.colour, view.window or drawn.extent, thumbs.base_url, drawn.sampled, charts.renderer_for(len(rows)))
    has_placed, has_prompt = drawn.placed is not None, "prompt" in drawn.points
    _spec_shown(hash((*spec_args, has_placed, has_prompt)))
    st.vega_lite_chart(
        spec=charts.with_datasets(charts.scatter_spec(*spec_args, placed=has_placed, prompt=has_prompt), **datasets),
        on_select="rerun",
        selection_mode=[charts.PICK],
        key=SCATTER_KEY,
        width="stretch",
    )
    with st.expander("Overview and zoom: drag a box on the density map", expanded=view.window is not None or drawn.sampled):
        st.vega_lite_chart(
            spec=charts.with_datasets(charts.overview_spec(drawn.extent, view.window, charts.renderer_for(len(drawn.overview))), cells=drawn.overview),
            on_select="rerun",
            selection_mode=[charts.ZOOM],
            key=f"overview-{st.session_state[ZOOM_NONCE]}",
            width="stretch",
        )
        st.button("Reset zoom", on_click=_reset_zoom, disabled=view.window is None)
    return drawn.in_window


GL_VIEW_CACHE = "explore_gl_drawn"  # (key, GLView) of the last view this browser session drew on the GPU


@dataclass(frozen=True)
class GLView:
    """What the WebGL scatter's message holds that depends on the view but not on the selection."""

    in_window: np.ndarray
    total: int
    colour: dict[str, Any]


def _gl_scatter(
    session: LakeSession, thumbs: ThumbnailServer, frame: EmbeddingFrame, view: ViewState, xy: np.ndarray, mask: np.ndarray,
    roles: dict[int, str], caption: Any,
) -> np.ndarray:
    """Every filtered point on the GPU (`explorer.scatter_gl`); the points in view."""
    key = (id(session), view.embedding, view.rotation, view.window, view.classes, view.sources, view.splits, view.prompt,
           view.color_by, view.palette, tuple(st.session_state.get(HIGHLIGHT_KEY, ())))  # fmt: skip
    cached = st.session_state.get(GL_VIEW_CACHE)
    if cached is not None and cached[0] == key:
        drawn: GLView = cached[1]
    else:
        in_window = mask & views.window_mask(xy, view.window)
        colour, column = point_colours(session, frame, view, np.flatnonzero(in_window), tuple(st.session_state.get(HIGHLIGHT_KEY, ())))
        message = explore_gl.gl_colour_message(thumbs, colour, column, frame.size, session.memo, key[1:])
        drawn = GLView(in_window, int(mask.sum()), message)
        st.session_state[GL_VIEW_CACHE] = (key, drawn)
    visible = int(drawn.in_window.sum())
    status = f"{visible:,} of {drawn.total:,} filtered points in view · drawing all {drawn.total:,} on the GPU (WebGL)"
    if frame.n_placed:
        status += f" · {int(mask[frame.n_fitted:].sum()):,} placed samples (diamonds, lines to their parents)"
    caption.caption(status + " · wheel to zoom, drag to pan; 'Box zoom' keeps a zoom in the URL; Shift+drag or 'Lasso a set' makes a set")
    scatter_gl.draw(explore_gl.gl_message(session, thumbs, frame, view, xy, mask, drawn.colour, roles))
    return drawn.in_window


def _neighbours(session: LakeSession, frame: EmbeddingFrame, view: ViewState, row: int) -> queries.Neighbours | None:
    if row < 0:
        return None
    if frame.is_placed(row) and view.neighbour_space != "projection":
        return _placed_neighbours(session, frame, view, row)
    if view.neighbour_space == "projection":
        return queries.projection_neighbours(frame, row, view.k)
    # Memoised: a brute-force query over PCA scores must not rerun on every rerun.
    return session.memo(("neighbours", view.embedding, row, view.k), lambda: queries.activation_neighbours(session, view.embedding, row, view.k))


def _placed_neighbours(session: LakeSession, frame: EmbeddingFrame, view: ViewState, row: int) -> queries.Neighbours:
    """A placed sample is in no table of the fit: its neighbours are the ones placement stored, else the projection's."""
    stored = session.memo(("placed_neighbours", view.embedding, row), lambda: session.placed_neighbours(view.embedding, row))
    if stored is not None and len(stored[0]):
        return queries.Neighbours(stored[0][: view.k], stored[1][: view.k], "activation (the fitted samples it was placed by)")
    found = queries.projection_neighbours(frame, row, view.k)
    return replace(found, note="a placed sample has no stored neighbours here: showing neighbours in the projection")


def _view_downloads(session: LakeSession, frame: EmbeddingFrame, mask: np.ndarray) -> None:
    rows = np.flatnonzero(mask)
    extra = prompts.export_columns(session, frame, frame.info.ref)  # model and prompt columns, where the lake has prompts
    cols = st.columns(2)
    cols[0].download_button(
        f"Export view as CSV ({len(rows):,} rows)",
        data=lambda: export.to_csv(export.points_frame(frame, rows, session.classes, extra)),
        file_name="view.csv",
        mime="text/csv",
        on_click="ignore",
        key="export_view_csv",
    )
    cols[1].download_button(
        "Export view as Parquet",
        data=lambda: export.to_parquet(export.points_frame(frame, rows, session.classes, extra)),
        file_name="view.parquet",
        mime="application/vnd.apache.parquet",
        on_click="ignore",
        key="export_view_parquet",
    )
