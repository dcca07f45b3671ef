"""The DMD2 Visualizer explorer: `streamlit run explorer/app.py --server.address 127.0.0.1 -- --lake LAKE`.

This file only wires Streamlit widgets to the plain modules of the package:
`data` (lazy lake reads), `views` (filter, sample, bin), `queries` (neighbours),
`state` (view state <-> URL), `charts` (Altair/pydeck specs), `export` (downloads) and
`thumbs` (the thumbnail server). It only ever reads the lake.
"""
from __future__ import annotations

import importlib
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

try:
    import explorer  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explorer import charts, export, queries, views
from explorer.config import ExplorerConfig, parse_args
from explorer.data import EmbeddingFrame, LakeDiagnosis, LakeSession, LakeState, diagnose_lake, lake_version
from explorer.state import (
    CATEGORICAL_PALETTES,
    CLICK_MODES,
    CONTINUOUS_PALETTES,
    MAX_K,
    MAX_POINTS_LIMIT,
    NEIGHBOUR_SPACES,
    PAGES,
    ViewState,
    brush_window,
    clicked_value,
    decode_query_params,
    encode_query_params,
)
from explorer.thumbs import ThumbnailServer, start_thumbnail_server

VIEW = "view"  # session-state key of the authoritative ViewState
NONCE = "chart_nonce"  # bumped after each processed click: the next chart starts with no selection
ZOOM_NONCE = "zoom_nonce"
# Samples table columns that duplicate the built-in colourings or are unique per sample.
_HIDDEN_COLUMNS = {"samples.class_id", "samples.source", "samples.split", "samples.wnid", "samples.class_name", "samples.origin"}
PAGE_LABELS = {"explore": "Explore", "compare": "Real vs generated", "3d": "3D view"}


# --- cached resources (one per process) -----------------------------------------------
@st.cache_resource(max_entries=2, show_spinner="Opening the lake…")
def _session(path: str, version: str) -> LakeSession | LakeDiagnosis:
    diagnosis = diagnose_lake(path)
    return LakeSession(path) if diagnosis.state is LakeState.READY else diagnosis


@st.cache_resource(show_spinner=False)
def _thumbs(path: str, host: str, port: int, public_host: str | None) -> ThumbnailServer:
    return start_thumbnail_server(path, host=host, port=port, public_host=public_host)


# --- pages -------------------------------------------------------------------------------
def friendly_page(diagnosis: LakeDiagnosis) -> None:
    st.title("DMD2 Visualizer")
    st.info(diagnosis.message)
    if diagnosis.command:
        st.markdown("Run this to fill it, then reload the page:")
        st.code(diagnosis.command, language="bash")


def main() -> None:
    st.set_page_config(page_title="DMD2 Visualizer explorer", layout="wide")
    config, problems = parse_args(sys.argv[1:])
    for problem in problems:
        st.warning(problem)
    try:
        run(config)
    except Exception as exc:  # the app never shows a traceback; one line says what went wrong
        st.error(f"The explorer could not show this view: {type(exc).__name__}: {exc}")


def run(config: ExplorerConfig) -> None:
    loaded = _session(str(config.lake), lake_version(config.lake))
    if isinstance(loaded, LakeDiagnosis):
        friendly_page(loaded)
        return
    session = loaded
    refs = [e.ref for e in session.embeddings]
    # The first chart needs Altair (~0.4 s to import): import it while the embedding loads,
    # which mostly waits on zarr's I/O thread.
    _preload("altair")

    if VIEW not in st.session_state:
        initial = decode_query_params(st.query_params.to_dict())
        st.session_state[VIEW] = replace(initial, embedding=initial.embedding if initial.embedding in refs else refs[0])
        _seed_widgets(st.session_state[VIEW])
    st.session_state.setdefault(NONCE, 0)
    st.session_state.setdefault(ZOOM_NONCE, 0)

    view: ViewState = st.session_state[VIEW]
    view = _sidebar(session, view, refs)
    frame = _frame(session, view.embedding)
    view = _apply_chart_events(view)
    st.session_state[VIEW] = view

    page = st.radio("Page", PAGES, format_func=PAGE_LABELS.get, horizontal=True, key="w_page", label_visibility="collapsed")
    if page == "3d" and frame.info.dims != 3:
        st.caption("The 3D view needs a 3D embedding; pick one in the sidebar.")
        page = "explore"
    view = replace(view, page=page)
    st.session_state[VIEW] = view

    xy = views.plotted_xy(frame.coords, view.rotation)
    mask = views.filter_mask(
        frame.class_id, frame.source_code, frame.sources, frame.split_code, frame.splits, view.classes, view.sources, view.splits
    )
    if page == "explore":
        explore_page(session, config, frame, view, xy, mask)
    elif page == "compare":
        compare_page(session, frame, view, xy, mask)
    else:
        cloud_page(session, frame, view, mask)
    _sync_url(st.session_state[VIEW])
    # After the page is drawn, so the background joins don't compete with the first page.
    session.warm(view.embedding)


@st.cache_resource(show_spinner=False)
def _preload(module: str) -> threading.Thread:
    return _started(threading.Thread(target=importlib.import_module, args=(module,), name=f"dmd2viz-import-{module}", daemon=True))


def _started(thread: threading.Thread) -> threading.Thread:
    thread.start()
    return thread


def _seed_widgets(view: ViewState) -> None:
    """Give widgets their first values from the URL (later reruns keep the user's choices)."""
    st.session_state["w_embedding"] = view.embedding
    st.session_state["w_color"] = view.color_by
    st.session_state["w_palette"] = view.palette
    st.session_state["w_classes"] = list(view.classes)
    st.session_state["w_sources"] = list(view.sources)
    st.session_state["w_splits"] = list(view.splits)
    st.session_state["w_k"] = view.k
    st.session_state["w_space"] = view.neighbour_space
    st.session_state["w_az"] = int(view.rotation[0])
    st.session_state["w_el"] = int(view.rotation[1])
    st.session_state["w_points"] = view.max_points
    st.session_state["w_page"] = view.page


def _frame(session: LakeSession, ref: str) -> EmbeddingFrame:
    with st.spinner("Loading the embedding…"):
        return session.frame(ref)


def _sidebar(session: LakeSession, view: ViewState, refs: list[str]) -> ViewState:
    sb = st.sidebar
    sb.header("DMD2 Visualizer")
    sb.caption(f"Lake `{session.path}` · {session.lake.num_samples:,} samples")
    if st.session_state.get("w_embedding") not in refs:
        st.session_state["w_embedding"] = refs[0]
    labels = {e.ref: e.label() for e in session.embeddings}
    ref = sb.selectbox("Embedding (layer · sigma · dims)", refs, format_func=labels.get, key="w_embedding")
    info = session.embedding(ref)
    frame = _frame(session, ref)

    colour_options = ["class", "source", "split"] + [c.ref for c in session.columns(ref) if c.ref not in _HIDDEN_COLUMNS]
    column_labels = {c.ref: c.label for c in session.columns(ref)}
    if st.session_state.get("w_color") not in colour_options:
        st.session_state["w_color"] = "class"
    color_by = sb.selectbox("Colour by", colour_options, format_func=lambda c: column_labels.get(c, c), key="w_color")
    nominal = _is_nominal(session, ref, color_by)
    palettes = [""] + list(CATEGORICAL_PALETTES if nominal else CONTINUOUS_PALETTES)
    if st.session_state.get("w_palette") not in palettes:
        st.session_state["w_palette"] = ""
    default_name = "okabe-ito, colour-blind safe" if nominal else "viridis, colour-blind safe"
    palette = sb.selectbox("Palette", palettes, format_func=lambda p: p or f"default ({default_name})", key="w_palette")

    sb.subheader("Filters")
    present = _present_classes(session, ref)
    sb.text_input(
        "Add classes matching (id, wnid or name)",
        key="w_class_search",
        placeholder="e.g. goldfish, n01443537, 1",
        on_change=_add_matching_classes,
        args=(session, present),
    )
    st.session_state["w_classes"] = [c for c in st.session_state.get("w_classes", []) if c in present]
    classes = sb.multiselect("Classes", present, format_func=session.classes.label, key="w_classes", placeholder="all classes")
    sources = sb.multiselect("Source", list(frame.sources), key="w_sources", placeholder="all sources")
    splits = sb.multiselect("Split", list(frame.splits), key="w_splits", placeholder="all splits")

    rotation = view.rotation
    if info.dims == 3:
        sb.subheader("3D rotation")
        rotation = (float(sb.slider("Azimuth", -180, 180, step=5, key="w_az")), float(sb.slider("Elevation", -90, 90, step=5, key="w_el")))

    sb.subheader("Selection")
    k = sb.number_input("Neighbours (k)", min_value=1, max_value=MAX_K, step=1, key="w_k")
    space = sb.radio(
        "Neighbours in",
        NEIGHBOUR_SPACES,
        format_func={"activation": "activation space", "projection": "the 2D/3D projection"}.get,
        key="w_space",
    )
    sb.radio(
        "Clicking a point",
        CLICK_MODES,
        format_func={"neighbours": "selects it, then toggles manual neighbours", "select": "always selects it"}.get,
        key="w_click_mode",
    )
    max_points = sb.number_input("Most points drawn", min_value=100, max_value=MAX_POINTS_LIMIT, step=5000, key="w_points")

    new = replace(
        view,
        embedding=ref,
        color_by=color_by,
        palette=palette,
        classes=tuple(sorted(int(c) for c in classes)),
        sources=tuple(sources),
        splits=tuple(splits),
        rotation=rotation,
        k=int(k),
        neighbour_space=space,
        max_points=int(max_points),
    )
    if new.embedding != view.embedding or new.rotation != view.rotation:
        new = replace(new, window=None)  # the old window is in other coordinates
    return new


def _add_matching_classes(session: LakeSession, present: list[int]) -> None:
    text = st.session_state.get("w_class_search", "")
    matches = [c for c in session.classes.search(text) if c in set(present)] if text.strip() else []
    chosen = list(dict.fromkeys([*st.session_state.get("w_classes", []), *matches]))
    st.session_state["w_classes"] = chosen
    st.session_state["w_class_search"] = ""
    st.session_state["class_search_result"] = (text, len(matches))


def _present_classes(session: LakeSession, ref: str) -> list[int]:
    frame = session.frame(ref)
    return session.memo(("present_classes", ref), lambda: [int(c) for c in np.flatnonzero(np.bincount(frame.class_id.astype(np.int64) + 1, minlength=1001)[1:])])


def _is_nominal(session: LakeSession, ref: str, color_by: str) -> bool:
    if color_by in ("class", "source", "split"):
        return True
    column = next((c for c in session.columns(ref) if c.ref == color_by), None)
    return column is None or not column.numeric


def _apply_chart_events(view: ViewState) -> ViewState:
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


def _clear_selection() -> None:
    st.session_state[VIEW] = st.session_state[VIEW].cleared()
    st.session_state[NONCE] += 1


def _reset_zoom() -> None:
    st.session_state[VIEW] = replace(st.session_state[VIEW], window=None)
    st.session_state[ZOOM_NONCE] += 1


def _sync_url(view: ViewState) -> None:
    params = encode_query_params(view)
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)


# --- colour ------------------------------------------------------------------------------
def _colour(session: LakeSession, frame: EmbeddingFrame, view: ViewState, rows: np.ndarray, visible_classes: int) -> tuple[charts.ColorSpec, dict[str, Any]]:
    """The colour spec and the per-point colour column(s) for the drawn rows."""
    if view.color_by == "class":
        domain = tuple(session.classes.label(c) for c in _present_classes(session, view.embedding))
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


# --- explore -----------------------------------------------------------------------------
def explore_page(session: LakeSession, config: ExplorerConfig, frame: EmbeddingFrame, view: ViewState, xy: np.ndarray, mask: np.ndarray) -> None:
    thumbs = _thumbs(str(config.lake), config.thumb_host, config.thumb_port, config.thumb_public_host)
    extent = session.memo(("extent", view.embedding, view.rotation), lambda: views.data_extent(xy))
    shown_extent = view.window or extent
    in_window = mask & views.window_mask(xy, view.window)
    total, visible = int(mask.sum()), int(in_window.sum())
    strata = session.memo(("strata", view.embedding), lambda: views.strata_codes(frame.class_id, frame.source_code, len(frame.sources)))
    u = session.memo(("uniform", view.embedding), lambda: _uniform(frame))
    rows = views.stratified_sample(in_window, strata, u, view.max_points)
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


def _uniform(frame: EmbeddingFrame) -> np.ndarray:
    return frame.sampling_uniform


def _neighbours(session: LakeSession, frame: EmbeddingFrame, view: ViewState, row: int) -> queries.Neighbours | None:
    if row < 0:
        return None
    if view.neighbour_space == "projection":
        return queries.projection_neighbours(frame, row, view.k)
    # Memoised: a brute-force query over PCA scores must not rerun on every rerun.
    return session.memo(("neighbours", view.embedding, row, view.k), lambda: queries.activation_neighbours(session, view.embedding, row, view.k))


def _upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling: 64 px images stay sharp at a readable size."""
    return image.repeat(factor, axis=0).repeat(factor, axis=1)


def details_panel(session: LakeSession, frame: EmbeddingFrame, view: ViewState, row: int, neighbours: queries.Neighbours | None) -> None:
    st.subheader("Selected sample")
    if not view.selected:
        st.caption("Click a point to select it; later clicks toggle manual neighbours.")
        return
    if row < 0:
        st.warning(f"Sample `{view.selected}` is not in this embedding.")
        st.button("Clear selection", on_click=_clear_selection, key="clear")
        return
    sample_row = int(frame.sample_row[row])
    record = session.sample_record(sample_row) if sample_row >= 0 else {}
    if sample_row >= 0:
        st.image(_upscale(session.images([sample_row])[0], 4), width=256, caption=session.classes.label(int(frame.class_id[row])))
    facts = {
        "sample id": f"`{view.selected}`",
        "class": session.classes.label(int(frame.class_id[row])) if frame.class_id[row] >= 0 else "unknown",
        "source": frame.sources[frame.source_code[row]],
        "split": frame.splits[frame.split_code[row]],
        "origin": f"`{record.get('origin', '')}`",
        "seed": record.get("seed", ""),
        "model": record.get("model_id", "") or "—",
        "coordinates": ", ".join(f"{v:.3f}" for v in frame.coords[row]),
    }
    for column in session.columns(view.embedding):
        if column.group.startswith("analysis/compare"):
            value = session.column_values(view.embedding, column.ref)[row]
            facts[column.name.replace("_", " ")] = f"{float(value):.4g}" if np.isfinite(value) else "—"
    st.markdown("  \n".join(f"**{k}**: {v}" for k, v in facts.items()))
    st.button("Clear selection and manual neighbours", on_click=_clear_selection, key="clear")

    manual_rows = frame.rows_of(view.manual)
    manual_rows = manual_rows[manual_rows >= 0]
    manual_d = queries.activation_distances(session, view.embedding, row, manual_rows)
    if neighbours is not None:
        st.markdown(f"**{len(neighbours)} nearest neighbours** · {neighbours.space}")
        if neighbours.note:
            st.caption(neighbours.note)
        _thumb_grid(session, frame, neighbours.rows, neighbours.distances, "nn")
    if len(manual_rows):
        st.markdown(f"**{len(manual_rows)} manual neighbours**" + (" · distance in activation space (PCA scores)" if manual_d is not None else ""))
        d = manual_d if manual_d is not None else np.sqrt(((frame.coords[manual_rows] - frame.coords[row]) ** 2).sum(axis=1))
        _thumb_grid(session, frame, manual_rows, d, "manual")
    table = export.selection_frame(
        frame,
        session.classes,
        row,
        neighbours.rows if neighbours is not None else np.zeros(0, np.int64),
        neighbours.distances if neighbours is not None else np.zeros(0, np.float32),
        neighbours.space if neighbours is not None else "",
        manual_rows,
        manual_d,
    )
    st.download_button(
        "Export selection (CSV)",
        data=export.to_csv(table),
        file_name=f"selection-{_safe(view.selected)}.csv",
        mime="text/csv",
        on_click="ignore",
        key="export_selection",
    )


def _thumb_grid(session: LakeSession, frame: EmbeddingFrame, rows: np.ndarray, distances: np.ndarray, key: str) -> None:
    if len(rows) == 0:
        return
    sample_rows = frame.sample_row[rows]
    ok = sample_rows >= 0
    images = session.images(sample_rows[ok]) if ok.any() else np.zeros((0, 64, 64, 3), np.uint8)
    captions = [
        f"{session.classes.label(int(frame.class_id[r]))} · {frame.sources[frame.source_code[r]]} · d={float(d):.3g}"
        for r, d in zip(rows[ok], np.asarray(distances)[ok])
    ]
    st.image([_upscale(img, 2) for img in images], width=112, caption=captions)


def _safe(text: str | None) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in (text or ""))[:80]


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


# --- real vs generated ------------------------------------------------------------------
def compare_page(session: LakeSession, frame: EmbeddingFrame, view: ViewState, xy: np.ndarray, mask: np.ndarray) -> None:
    info = session.embedding(view.embedding)
    overall, per_class = session.compare_summary(info.key)
    present = _present_classes(session, view.embedding)
    focus = st.selectbox(
        "Per-class view",
        [-1, *present],
        format_func=lambda c: "all classes (sidebar filters)" if c == -1 else session.classes.label(c),
        key="w_focus_class",
    )
    if focus >= 0:
        mask = mask & (frame.class_id == focus)
    generated, real = frame.source_is("generated"), frame.source_is("real")
    extent = views.data_extent(xy)
    left, right = st.columns([3, 2], gap="medium")
    with left:
        n_gen, n_real = int((mask & generated).sum()), int((mask & real).sum())
        st.caption(f"{n_gen:,} generated and {n_real:,} real points · orange: generated over-represented, purple: real under-covered")
        if n_gen == 0 or n_real == 0:
            st.info("This view needs both real and generated samples.")
        grid = views.density_difference(xy, mask, generated, real, extent, bins=80, smooth=1.0)
        strata = session.memo(("strata", view.embedding), lambda: views.strata_codes(frame.class_id, frame.source_code, len(frame.sources)))
        rows = views.stratified_sample(mask, strata, session.memo(("uniform", view.embedding), lambda: _uniform(frame)), min(view.max_points, 20_000))
        points = export.points_frame(frame, rows, session.classes).assign(x=xy[rows, 0], y=xy[rows, 1])
        cells = views.difference_cells(grid)
        peak = float(np.abs(cells[4]).max()) if len(cells[4]) else 1.0
        spec = charts.difference_spec(extent, peak, frame.sources, charts.renderer_for(len(points)))
        st.vega_lite_chart(spec=charts.with_datasets(spec, cells=charts.cells_frame(cells, "difference"), points=points), width="stretch", key="difference")
    with right:
        st.subheader("Comparison metrics")
        if not overall and per_class.empty:
            st.info(f"No comparison metrics for {info.key} yet: run `python -m analysis run --lake {session.path}`.")
        if overall:
            st.dataframe({"metric": list(overall), "value": [str(v) for v in overall.values()]}, hide_index=True, width="stretch")
        if not per_class.empty:
            shown = per_class if focus < 0 else per_class[per_class["class_id"] == focus]
            st.dataframe(shown, hide_index=True, width="stretch", height=420)


# --- 3D ---------------------------------------------------------------------------------
def cloud_page(session: LakeSession, frame: EmbeddingFrame, view: ViewState, mask: np.ndarray) -> None:
    strata = session.memo(("strata", view.embedding), lambda: views.strata_codes(frame.class_id, frame.source_code, len(frame.sources)))
    rows = views.stratified_sample(mask, strata, session.memo(("uniform", view.embedding), lambda: _uniform(frame)), min(view.max_points, 30_000))
    table = export.points_frame(frame, rows, session.classes)
    if view.color_by in ("class", "source", "split"):
        codes = {"class": frame.class_id[rows], "source": frame.source_code[rows], "split": frame.split_code[rows]}[view.color_by]
        rgb = charts.point_colors(codes, None)
    else:
        values = session.column_values(view.embedding, view.color_by)[rows]
        rgb = charts.point_colors(None, values) if values.dtype.kind in "iufb" else charts.point_colors(np.unique(values, return_inverse=True)[1], None)
    table["rgb"] = rgb.tolist()
    table["class"] = table["class"].astype(str)
    table["source"] = table["source"].astype(str)
    table["sample_id"] = table["sample_id"].astype(str)
    centre = tuple(float(v) for v in np.nanmean(frame.coords, axis=0))
    span = float(np.nanmax(np.ptp(frame.coords, axis=0)))
    st.caption(f"{len(rows):,} of {int(mask.sum()):,} filtered points · drag to rotate, scroll to zoom. Selection works in the Explore page (it shows this embedding through the rotation sliders).")
    st.pydeck_chart(charts.point_cloud(table[["x", "y", "z", "rgb", "class", "source", "sample_id"]], centre, span), height=620)


main()
