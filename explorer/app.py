"""The DMD2 Visualizer explorer: `streamlit run explorer/app.py --server.address 127.0.0.1 -- --lake LAKE`.

The entry point: opens the lake, keeps the view state (session state <-> URL) and hands
each page to its module: `sidebar`, `page_explore` (with `details`), `page_compare`,
`page_cloud`. Below them are plain modules: `data` (lazy lake reads), `views` (filter,
sample, bin), `queries` (neighbours), `state` (view state <-> URL), `charts` (Altair/pydeck
specs), `export` (downloads) and `thumbs` (the thumbnail server). It only ever reads the lake.
"""
from __future__ import annotations

import importlib
import logging
import sys
import threading
from dataclasses import replace

import numpy as np
import streamlit as st

from explorer import common, page_ab, page_models, prompts, views
from explorer.common import NONCE, VIEW, ZOOM_NONCE
from explorer.config import ExplorerConfig, parse_args
from explorer.lake_status import LakeDiagnosis, LakeState, diagnose_lake, embedding_of_key, lake_version, random_weights
from explorer.session import LakeSession
from explorer.page_cloud import cloud_page
from explorer.page_compare import compare_page
from explorer.page_explore import apply_chart_events, explore_page
from explorer.page_noise import noise_page
from explorer.page_prompts import prompts_page
from explorer.sidebar import sidebar
from explorer.state import PAGES, ViewState, decode_query_params, encode_query_params
from explorer.thumbs import ThumbnailServer, start_thumbnail_server
from lake.layout import split_t2i_layer

PAGE_LABELS = {"explore": "Explore", "compare": "Real vs generated", "3d": "3D view", "noise": "Noise levels", "prompts": "Prompts",
               "models": "Compare models", "ab": "A/B"}

# The 2D embedding the 3D page switched away from: (3D ref shown, 2D ref to go back to).
BACK_TO_2D = "back_to_2d"
LAST_PAGE = "last_page"



def _server_log() -> logging.Logger:
    """The explorer's logger; in a server whose logging nobody set up, it writes timestamped lines to stderr."""
    log = logging.getLogger("explorer")
    if not log.handlers and not logging.getLogger().handlers:  # leave configured logging (and pytest's) alone
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
    return log


logger = _server_log()


# --- cached resources (one per process) -----------------------------------------------
@st.cache_resource(max_entries=2, show_spinner="Opening the lake…")
def _session(path: str, version: str) -> LakeSession | LakeDiagnosis:
    diagnosis = diagnose_lake(path)
    return LakeSession(path) if diagnosis.state is LakeState.READY else diagnosis


@st.cache_resource(show_spinner=False)
def _thumbs(path: str, host: str, port: int, public_host: str | None, app_port: int) -> ThumbnailServer:
    return start_thumbnail_server(path, host=host, port=port, public_host=public_host, app_port=app_port)


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
    except Exception as exc:
        # Users get one line; the server log gets the traceback; --debug / DMD2VIZ_DEBUG=1
        # re-raise, so Streamlit shows the traceback and tests fail on it.
        logger.exception("the explorer could not show a view of %s", config.lake)
        if config.debug:
            raise
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

    _follow_page_to_3d(session)
    view: ViewState = st.session_state[VIEW]
    view = sidebar(session, view, refs)
    frame = common.load_frame(session, view.embedding)
    view = apply_chart_events(view, session, frame)
    st.session_state[VIEW] = view

    # The Prompts page needs text-to-image samples; Compare models, a CKA table or two ImageNet models;
    # A/B, two generated models' samples of the same noise and class.
    offered = {"prompts": prompts.has_t2i(session), "models": page_models.offered(session), "ab": page_ab.offered(session)}
    pages = [p for p in PAGES if offered.get(p, True)]
    if st.session_state.get("w_page") not in pages:
        st.session_state["w_page"] = "explore"
    page = st.radio("Page", pages, format_func=PAGE_LABELS.get, horizontal=True, key="w_page", label_visibility="collapsed")
    if page == "3d" and frame.info.dims != 3:  # only when the lake has no 3D embedding of this key
        st.caption(f"The 3D view needs a 3D embedding, and this lake has none of {frame.info.key}; pick one in the sidebar.")
        page = "explore"
    _random_weights_note(session, frame.info.layer)
    view = replace(view, page=page)
    st.session_state[VIEW] = view

    xy = views.plotted_xy(frame.coords, view.rotation)
    mask = views.filter_mask(
        frame.class_id, frame.source_code, frame.sources, frame.split_code, frame.splits, view.classes, view.sources, view.splits
    )
    if view.prompt:  # the prompt search narrows the same selection as the other filters
        mask &= prompts.search_mask(session, frame, view.embedding, view.prompt)
    if page == "explore":
        thumbs = _thumbs(str(config.lake), config.thumb_host, config.thumb_port, config.thumb_public_host, int(st.get_option("server.port")))
        explore_page(session, thumbs, frame, view, xy, mask, jobs=not config.read_only, renderer=config.scatter)
    elif page == "compare":
        # Real vs generated compares the fit's samples: placed edits (rows after n_fitted) are experiments, not the generator's distribution.
        compare_page(session, frame, view, xy, mask & (np.arange(frame.size) < frame.n_fitted) if frame.n_placed else mask)
    elif page == "noise":
        noise_page(session, frame, view)
    elif page == "prompts":
        prompts_page(session, view)
    elif page == "models":
        page_models.models_page(session)
    elif page == "ab":
        page_ab.ab_page(session)
    else:
        cloud_page(session, frame, view, mask)
    _sync_url(st.session_state[VIEW])
    # After the page is drawn, so the background joins don't compete with the first page.
    session.warm(view.embedding)


def _follow_page_to_3d(session: LakeSession) -> None:
    """On the 3D page show the 3D embedding of the chosen layer and sigma; leaving it, go back to the 2D one.

    Runs before the sidebar's widgets exist, so it may still set their values. The 2D
    embedding is restored only if the 3D one is still the one this switch chose (a 3D
    embedding the researcher picked stays).
    """
    page, ref = st.session_state.get("w_page"), str(st.session_state.get("w_embedding"))
    dims = {e.ref: e.dims for e in session.embeddings}
    back = st.session_state.get(BACK_TO_2D)
    if page == "3d" and dims.get(ref) == 2:
        twin = embedding_of_key(session.embeddings, ref, 3)
        if twin is not None:
            st.session_state["w_embedding"] = twin
            st.session_state[BACK_TO_2D] = (twin, ref)
    elif page != "3d" and back is not None:
        if st.session_state.get(LAST_PAGE) == "3d" and ref == back[0]:
            st.session_state["w_embedding"] = back[1]
        st.session_state.pop(BACK_TO_2D, None)
    st.session_state[LAST_PAGE] = page


def _random_weights_note(session: LakeSession, layer: str) -> None:
    """Say so when the generated samples or this layer's probes come from random weights (the demo's)."""
    if split_t2i_layer(layer) is not None:  # the note is about the ImageNet generator, not a text-to-image model's samples
        return
    found = session.memo(("random_weights", layer), lambda: random_weights(session.lake, layer))
    if found is None:
        return
    parts = [p for p, on in (("the generated samples", found.generated), (f"the {layer} activations", found.probes)) if on]
    models = f" ({', '.join(found.model_ids)})" if found.model_ids else ""
    subject = " and ".join(parts)
    effect = "generated images look like noise" if found.generated else "the layout says nothing about DMD2"
    st.info(
        f"{subject[0].upper()}{subject[1:]} in this lake come from a network with seeded random weights{models}, "
        f"not from DMD2, so {effect}. For the real model run `python -m ingest generate` and "
        "`python -m ingest activations` with `--checkpoint pytorch_model.bin --preset dmd2-imagenet64`, "
        f"then `python -m analysis run --lake {session.path}`.",
        icon=":material/info:",
    )


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
    st.session_state["w_prompt"] = view.prompt
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
