"""The Noise levels page: the joint embedding across sigma, the selection's path, its images and the animation.

Reads ``analysis/trajectory/<layer>`` (one embedding of every sigma of a layer's probes)
and ``analysis/trajectory/<layer>/<schedule>`` (the steps of multi-step samples placed in
it). A generated multi-step sample's path is its steps, every other sample's path its
probes, always drawn from high sigma to low. The selection is the Explore page's
(`ViewState.selected`, URL ``sel``); a click on this map selects too. Under the map: the
path's images (``trajectories/<schedule>`` x0_hat per step, or the stored or on-demand
reconstructions of the probes), the whole cloud played through the noise levels
(`explorer.animation`, client-side) and a 3D view (x, y, log sigma).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import streamlit as st

from explorer import animation, charts, export, prompts, views
from explorer.frames import EmbeddingFrame
from explorer.noise_map import apply_clicks, class_colours, draw_map
from explorer.noise_paths import Trajectory, paths_to_draw, sigma_label
from explorer.noise_strip import draw_strip
from explorer.page_cloud import legend_markdown
from explorer.rows import row_uniform
from explorer.session import LakeSession
from explorer.state import ViewState
from explorer.tables import JointEmbedding
from lake.layout import split_t2i_layer

LAYER_KEY = "w_noise_layer"
AT_KEY = "w_noise_at"  # which sigma's points the map draws ("every sigma" or one)
PATHS_KEY = "w_noise_paths"  # also draw the neighbours' paths
SHOW_3D_KEY = "w_noise_3d"
ANIMATION_CACHE = "noise_animation"  # (view key, (HTML, samples, legend)) of the last animation built
EVERY_SIGMA = "every sigma"
ANIMATION_LIMIT = 50_000  # points the animation sends at most (the target size)
CLOUD_3D_LIMIT = 30_000  # points of the 3D view, as on the 3D page


def default_layer(layers: list[str], shown: str | None) -> str:
    """The joint embedding to open with: the layer on screen's, else the first of the same model
    (a text-to-image model's own layers for its keys, the ImageNet generator's otherwise)."""
    if shown in layers:
        return str(shown)
    def model(layer: str | None) -> str | None:
        parts = split_t2i_layer(layer) if layer else None
        return parts[0] if parts else None

    same = [layer for layer in layers if model(layer) == model(shown)]
    return (same or layers)[0]


def noise_page(session: LakeSession, frame: EmbeddingFrame, view: ViewState) -> None:
    lake = session.lake
    layers = lake.joint_embedding_layers()
    if not layers:
        suggestion = frame.info.layer or (lake.activation_layers() or ["LAYER"])[0]  # the layer on screen
        st.info(
            "This lake has no joint embedding across noise levels yet, so there is nothing to draw here. "
            f"Make one with `python -m analysis trajectory --lake {session.path} --layer {suggestion}`, then reload the page.",
            icon=":material/info:",
        )
        return
    if st.session_state.get(LAYER_KEY) not in layers:
        st.session_state[LAYER_KEY] = default_layer(layers, frame.info.layer)
    layer = str(st.selectbox("Layer (one embedding of all its noise levels)", layers, key=LAYER_KEY))
    joint = session.joint(layer)
    schedules = session.joint_schedules(layer)
    view = apply_clicks(view)

    mask = views.filter_mask(joint.class_id, joint.source_code, joint.sources, joint.split_code, joint.splits, view.classes, view.sources, view.splits)
    if view.prompt and prompts.has_t2i(session):  # the sidebar's prompt search, as on Explore
        codes = session.memo(("joint_prompt_codes", layer), lambda: prompts.prompt_codes_of(session, joint.sample_id))
        mask &= prompts.codes_matching(session, codes, view.prompt)
    strata = session.memo(("joint_strata", layer), lambda: views.strata_codes(joint.class_id, joint.source_code, len(joint.sources)))
    uniform = session.memo(("joint_uniform", layer), lambda: row_uniform(len(joint.sample_id)))

    options = [EVERY_SIGMA, *(sigma_label(s) for s in sorted(joint.sigmas, reverse=True))]
    if st.session_state.get(AT_KEY) not in options:
        st.session_state[AT_KEY] = EVERY_SIGMA
    at = st.radio("Points at", options, horizontal=True, key=AT_KEY)
    columns = [i for i, s in enumerate(joint.sigmas) if at in (EVERY_SIGMA, sigma_label(s))]
    rows = views.stratified_sample(mask, strata, uniform, max(view.max_points // len(columns), 1))
    colour, codes = class_colours(joint, rows, session, view.palette)

    show_paths = st.toggle("Also draw the paths of the k-NN and manual neighbours", key=PATHS_KEY)
    paths = paths_to_draw(session, frame, view, joint, schedules, show_paths)
    draw_map(session, joint, schedules, rows, columns, colour, codes, paths)
    # One container whatever the selection: the elements after it keep their place in the
    # page, so the browser keeps the animation's frame (and its playing state) across clicks.
    with st.container():
        if not view.selected:
            st.caption("Click a point (here or on the Explore page) to draw its path across the noise levels.")
        elif not paths:
            st.warning(f"Sample `{view.selected}` has no coordinates in the joint embedding of {layer}.")
        else:
            draw_strip(session, paths[0][0], joint)

    st.subheader("The whole cloud through the noise levels")
    _animation(session, joint, mask, strata, uniform, view)
    if st.toggle("3D view: x, y and log sigma", key=SHOW_3D_KEY):
        # Every sigma of each drawn sample, at most the 3D page's 30,000 points (deck.gl's data is JSON).
        rows_3d = views.stratified_sample(mask, strata, uniform, max(min(view.max_points, CLOUD_3D_LIMIT) // len(joint.sigmas), 1))
        colour_3d, codes_3d = class_colours(joint, rows_3d, session, view.palette)
        _cloud_3d(session, joint, rows_3d, colour_3d, codes_3d, paths)



def _animation(session: LakeSession, joint: JointEmbedding, mask: np.ndarray, strata: np.ndarray, uniform: np.ndarray, view: ViewState) -> None:
    limit = min(view.max_points, ANIMATION_LIMIT)
    key = ("joint_animation", joint.layer, view.classes, view.sources, view.splits, view.prompt, limit, view.palette)

    def build() -> tuple[str, int, str]:
        rows = views.stratified_sample(mask, strata, uniform, limit)
        colour, codes = class_colours(joint, rows, session, view.palette)
        frames = animation.build_frames(joint.coords[rows], joint.sigmas, codes, tuple(colour.colours or charts.OKABE_ITO))
        return animation.animation_html(frames), len(rows), legend_markdown(list(zip(colour.domain or (), colour.colours or ())))

    # Built once per view and kept for this browser session only (one entry, ~1 MB at 50,000
    # points): reruns send the same bytes, so the browser keeps the component and its state.
    cached = st.session_state.get(ANIMATION_CACHE)
    if cached is None or cached[0] != (id(session), key):
        cached = ((id(session), key), build())
        st.session_state[ANIMATION_CACHE] = cached
    html, count, legend = cached[1]
    st.caption(f"{count:,} samples at {len(joint.sigmas)} noise levels · Play runs in the browser, from high sigma to low; drag the slider to scrub")
    st.markdown(legend, unsafe_allow_html=True)
    # Our own HTML (numbers, base64 and palette constants), so embedding it as-is is safe.
    st.iframe(html, height=animation.component_height())


def _cloud_3d(session: LakeSession, joint: JointEmbedding, rows: np.ndarray, colour: charts.ColorSpec,
              codes: np.ndarray, paths: list[tuple[Trajectory, str, str]]) -> None:
    """(x, y, log sigma) with pydeck, as the 3D page draws, and the paths as lines."""
    import pydeck as pdk

    span = float(np.nanmax(np.ptp(joint.coords[np.isfinite(joint.coords).all(axis=2)], axis=0))) if np.isfinite(joint.coords).any() else 1.0
    logs = np.log(joint.sigmas)
    low, high = float(logs.min()), float(logs.max())

    def z_of(sigma: np.ndarray | float) -> np.ndarray:
        # log sigma stretched to the map's span, so the third axis reads as far as the other two.
        return (np.log(sigma) - low) / (high - low if high > low else 1.0) * span

    palette = np.array([charts.hex_to_rgb(c) for c in (colour.colours or charts.OKABE_ITO)], dtype=np.uint8)
    parts = []
    for c in range(len(joint.sigmas)):
        xy = joint.coords[rows, c]
        ok = np.isfinite(xy).all(axis=1)
        parts.append(pd.DataFrame({
            "x": xy[ok, 0], "y": xy[ok, 1], "z": np.float32(z_of(joint.sigmas[c])),
            "rgb": palette[codes[ok]].tolist(),
            "class": np.asarray(export.class_labels(joint.class_id[rows[ok]], session.classes), dtype=object),
            "source": np.asarray(joint.sources, dtype=object)[joint.source_code[rows[ok]]],
            "sample_id": np.asarray(joint.sample_id[rows[ok]], dtype=object).astype(str),
        }))  # fmt: skip
    table = pd.concat(parts, ignore_index=True)
    centre = (float(table["x"].mean()), float(table["y"].mean()), float(table["z"].mean())) if len(table) else (0.0, 0.0, 0.0)
    deck = charts.point_cloud(table, centre, span)
    if paths:
        lines = [{"path": [[float(x), float(y), float(z_of(s))] for (x, y), s in zip(p.xy, p.sigmas)], "color": charts.hex_to_rgb(col), "sample_id": p.sample_id}
                 for p, _, col in paths]  # fmt: skip
        deck.layers.append(pdk.Layer("PathLayer", data=lines, get_path="path", get_color="color", width_units="pixels", get_width=3, pickable=False))
    st.caption(f"x, y: the joint embedding; up: log sigma ({math.exp(low):g} at the bottom, {math.exp(high):g} at the top) · drag to rotate, scroll to zoom")
    if colour.colours and colour.domain:
        st.markdown(legend_markdown(list(zip(colour.domain, colour.colours))), unsafe_allow_html=True)
    st.pydeck_chart(deck, height=560)

