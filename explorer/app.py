"""The DMD2 Visualizer explorer: `streamlit run explorer/app.py --server.address 127.0.0.1 -- --lake LAKE`.

The entry point: opens the lake, keeps the view state (session state <-> URL) and hands
each page to its module: `sidebar`, `page_explore` (with `details`), `page_compare`,
`page_cloud`. Below them are plain modules: `data` (lazy lake reads), `views` (filter,
sample, bin), `queries` (neighbours), `state` (view state <-> URL), `charts` (Altair/pydeck
specs), `export` (downloads) and `thumbs` (the thumbnail server). It only ever reads the lake.
"""
from __future__ import annotations

import importlib
import sys
import threading
from dataclasses import replace
from pathlib import Path

import streamlit as st

try:
    import explorer  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explorer import common, views
from explorer.common import NONCE, VIEW, ZOOM_NONCE
from explorer.config import ExplorerConfig, parse_args
from explorer.data import LakeDiagnosis, LakeSession, LakeState, diagnose_lake, lake_version
from explorer.page_cloud import cloud_page
from explorer.page_compare import compare_page
from explorer.page_explore import apply_chart_events, explore_page
from explorer.sidebar import sidebar
from explorer.state import PAGES, ViewState, decode_query_params, encode_query_params
from explorer.thumbs import ThumbnailServer, start_thumbnail_server

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
    view = sidebar(session, view, refs)
    frame = common.load_frame(session, view.embedding)
    view = apply_chart_events(view)
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
        thumbs = _thumbs(str(config.lake), config.thumb_host, config.thumb_port, config.thumb_public_host)
        explore_page(session, thumbs, frame, view, xy, mask)
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


def _sync_url(view: ViewState) -> None:
    params = encode_query_params(view)
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)


main()
