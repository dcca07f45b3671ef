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
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from explorer import animation, charts, common, export, prompts, queries, views
from explorer.frames import EmbeddingFrame
from explorer.rows import row_uniform
from explorer.session import LakeSession
from explorer.tables import JointEmbedding, ScheduleSteps, T2ISample
from explorer.details import upscale
from explorer.page_cloud import legend_markdown
from explorer.page_explore import picked_ids
from explorer.state import ViewState
from lake.layout import split_t2i_layer

NOISE_KEY = "noise-map"  # the map's widget key (one for its life, like the Explore scatter)
PICK_SEEN = "noise_pick_seen"
SPEC_SEEN = "noise_spec_seen"
LAYER_KEY = "w_noise_layer"
AT_KEY = "w_noise_at"  # which sigma's points the map draws ("every sigma" or one)
PATHS_KEY = "w_noise_paths"  # also draw the neighbours' paths
SHOW_3D_KEY = "w_noise_3d"
ANIMATION_CACHE = "noise_animation"  # (view key, (HTML, samples, legend)) of the last animation built
POINTS_CACHE = "noise_points"  # (view key, points frame) of the last map this browser session drew
RECONSTRUCTED = "noise_reconstructed"  # on-demand reconstructions: (lake, sample id) -> StripImages
EVERY_SIGMA = "every sigma"
MAP_WIDTH, MAP_HEIGHT = 760, 560  # fixed, so arrow heads can be turned in screen space (one scale for x and y)
ANIMATION_LIMIT = 50_000  # points the animation sends at most (the target size)
CLOUD_3D_LIMIT = 30_000  # points of the 3D view, as on the 3D page
SELECTED_COLOUR = charts.SELECTED_FILL
# Neighbours' paths: light, distinct colours (none is the selection's blue).
LIGHT_COLOURS = ("#f4a582", "#92c5de", "#b8e186", "#c2a5cf", "#fdb863", "#80cdc1", "#f1b6da", "#d9d9d9", "#fddbc7", "#a6dba0")


# --- the data (pure readers and functions) -------------------------------------------------
@dataclass(frozen=True)
class Trajectory:
    """One sample's path across sigma, from high sigma to low."""

    sample_id: str
    sigmas: tuple[float, ...]  # decreasing
    xy: np.ndarray  # (vertices, 2)
    kind: str  # "steps" (a multi-step sample's generation) or "probes"
    schedule: str | None = None


def _first_row(ids: np.ndarray, sample_id: str) -> int:
    hits = np.flatnonzero(ids == sample_id)
    return int(hits[0]) if len(hits) else -1


def trajectory_of(joint: JointEmbedding, schedules: dict[str, ScheduleSteps], sample_id: str) -> Trajectory | None:
    """`sample_id`'s path: its steps when it is a multi-step sample, else its probes; None when it has neither.

    Vertices run from the highest sigma to the lowest; (sample, sigma) pairs without
    coordinates (NaN: not probed) are left out.
    """
    for steps in schedules.values():
        row = _first_row(steps.sample_id, sample_id)
        if row >= 0:
            return _path(sample_id, steps.sigmas, steps.coords[row], "steps", steps.schedule)
    row = _first_row(joint.sample_id, sample_id)
    if row < 0:
        return None
    return _path(sample_id, joint.sigmas, joint.coords[row], "probes", None)


def _path(sample_id: str, sigmas: np.ndarray, xy: np.ndarray, kind: str, schedule: str | None) -> Trajectory | None:
    order = np.argsort(-np.asarray(sigmas, dtype=np.float64), kind="stable")
    keep = order[np.isfinite(xy[order]).all(axis=1)]
    if len(keep) == 0:
        return None
    return Trajectory(sample_id, tuple(float(sigmas[i]) for i in keep), np.asarray(xy[keep], dtype=np.float32), kind, schedule)


def sigma_label(sigma: float) -> str:
    """'σ=80', 'σ=21.3', 'σ=0.5'."""
    return f"σ={sigma:.3g}"


def paths_frame(paths: list[tuple[Trajectory, str, str]]) -> pd.DataFrame:
    """The vertices of every path, in drawing order: (trajectory, role, colour) -> one row per vertex."""
    rows = []
    for number, (path, role, colour) in enumerate(paths):
        for i, (sigma, (x, y)) in enumerate(zip(path.sigmas, path.xy)):
            rows.append((float(x), float(y), path.sample_id, number, i, sigma, sigma_label(sigma), role, colour, 3.0 if role == "selected" else 2.0))
    columns = ["x", "y", "sample_id", "path", "order", "sigma", "label", "role", "colour", "width"]
    return pd.DataFrame(rows, columns=columns).astype({"x": np.float32, "y": np.float32, "path": np.int32, "order": np.int32})


def arrows_frame(paths: list[tuple[Trajectory, str, str]], extent: tuple[float, float, float, float], width: int, height: int) -> pd.DataFrame:
    """An arrow head at the middle of every segment, turned along it (high sigma to low) on screen.

    Vega's `angle` turns a triangle-up clockwise from pointing up; screen y grows
    downwards, so a segment (dx, dy) in data units heads atan2(dx * sx, dy * sy).
    """
    x0, x1, y0, y1 = extent
    sx, sy = width / (x1 - x0), height / (y1 - y0)
    rows = []
    for path, role, colour in paths:
        for (ax, ay), (bx, by) in zip(path.xy[:-1], path.xy[1:]):
            if ax == bx and ay == by:
                continue
            angle = math.degrees(math.atan2(float(bx - ax) * sx, float(by - ay) * sy)) % 360
            rows.append(((ax + bx) / 2, (ay + by) / 2, path.sample_id, angle, role, colour))
    return pd.DataFrame(rows, columns=["x", "y", "sample_id", "angle", "role", "colour"]).astype({"x": np.float32, "y": np.float32})


@dataclass(frozen=True)
class StripImages:
    """The images under the map: one list per row of the strip, with captions."""

    rows: tuple[tuple[str, np.ndarray, tuple[str, ...]], ...]  # (row title, images (m, 64, 64, 3), captions)

    @property
    def count(self) -> int:
        return sum(len(images) for _, images, _ in self.rows)


def step_images(lake: Any, schedule: str, sample_id: str) -> StripImages | None:
    """A multi-step sample's x0_hat at every step (``trajectories/<schedule>``), captioned by sigma."""
    table = lake.trajectory(schedule)
    row = _first_row(np.asarray(table["sample_id"].values), sample_id)
    if row < 0:
        return None
    images = np.asarray(table["x0_hat"][row].values, dtype=np.uint8)
    sigmas = np.asarray(table["sigma"].values, dtype=np.float64)
    captions = tuple(f"step {i + 1} · {sigma_label(s)}" for i, s in enumerate(sigmas))
    return StripImages((("x0_hat at each step", images, captions),))


def t2i_step_strip(sample: T2ISample) -> StripImages | None:
    """A text-to-image sample's decoded x0 at every step (``t2i/<name>/samples``), captioned by timestep and sigma."""
    if sample.previews is None:
        return None
    captions = tuple(f"t={t}" + (f" · σ={sample.sigmas[i]:.3g}" if sample.sigmas else "") for i, t in enumerate(sample.timesteps))
    if len(captions) != len(sample.previews):
        captions = tuple(f"step {i + 1}" for i in range(len(sample.previews)))
    return StripImages((("x0 estimate after each step (text-to-image)", sample.previews, captions),))


def stored_reconstructions(lake: Any, sample_id: str) -> StripImages | None:
    """The probe inputs and one-step reconstructions stored for `sample_id` (None when there are none)."""
    try:
        table = lake.reconstructions()
    except KeyError:
        return None
    row = _first_row(np.asarray(table["sample_id"].values), sample_id)
    if row < 0:
        return None
    probed = np.asarray(table["probed"][row].values, dtype=bool)
    if not probed.any():
        return None
    sigmas = np.asarray(table["sigma"].values, dtype=np.float64)
    return reconstruction_strip(sigmas[probed], np.asarray(table["noisy"][row].values)[probed], np.asarray(table["x0_hat"][row].values)[probed])


def reconstruction_strip(sigmas: np.ndarray, noisy: np.ndarray, x0_hat: np.ndarray) -> StripImages:
    """Two rows, from high sigma to low: the noisy probe inputs and their one-step reconstructions."""
    order = np.argsort(-np.asarray(sigmas, dtype=np.float64), kind="stable")
    labels = [sigma_label(float(sigmas[i])) for i in order]
    return StripImages(
        (
            ("noisy input x0 + σ·ε", np.asarray(noisy, dtype=np.uint8)[order], tuple(f"noisy · {s}" for s in labels)),
            ("one-step reconstruction G(x0 + σ·ε, σ)", np.asarray(x0_hat, dtype=np.uint8)[order], tuple(f"x0_hat · {s}" for s in labels)),
        )
    )


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


def _apply_clicks(view: ViewState) -> ViewState:
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


def _neighbour_ids(session: LakeSession, frame: EmbeddingFrame, view: ViewState) -> list[str]:
    """The selection's k-NN (as the Explore page finds them for the current key) and its manual neighbours."""
    if not view.selected:
        return []
    row = int(frame.rows_of([view.selected])[0])
    found: list[str] = []
    if row >= 0:
        if view.neighbour_space == "projection":
            neighbours = queries.projection_neighbours(frame, row, view.k)
        else:  # the Explore page's memo key: one query serves both pages
            neighbours = session.memo(("neighbours", view.embedding, row, view.k), lambda: queries.activation_neighbours(session, view.embedding, row, view.k))
        found = [str(i) for i in frame.sample_id[neighbours.rows]]
    return list(dict.fromkeys([*found, *view.manual]))


# --- the page ------------------------------------------------------------------------------------
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
    view = _apply_clicks(view)

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
    paths = _paths(session, frame, view, joint, schedules, show_paths)
    _map(session, joint, schedules, rows, columns, colour, codes, paths)
    # One container whatever the selection: the elements after it keep their place in the
    # page, so the browser keeps the animation's frame (and its playing state) across clicks.
    with st.container():
        if not view.selected:
            st.caption("Click a point (here or on the Explore page) to draw its path across the noise levels.")
        elif not paths:
            st.warning(f"Sample `{view.selected}` has no coordinates in the joint embedding of {layer}.")
        else:
            _strip(session, paths[0][0], joint)

    st.subheader("The whole cloud through the noise levels")
    _animation(session, joint, mask, strata, uniform, view)
    if st.toggle("3D view: x, y and log sigma", key=SHOW_3D_KEY):
        # Every sigma of each drawn sample, at most the 3D page's 30,000 points (deck.gl's data is JSON).
        rows_3d = views.stratified_sample(mask, strata, uniform, max(min(view.max_points, CLOUD_3D_LIMIT) // len(joint.sigmas), 1))
        colour_3d, codes_3d = class_colours(joint, rows_3d, session, view.palette)
        _cloud_3d(session, joint, rows_3d, colour_3d, codes_3d, paths)


def _paths(session: LakeSession, frame: EmbeddingFrame, view: ViewState, joint: JointEmbedding,
           schedules: dict[str, ScheduleSteps], with_neighbours: bool) -> list[tuple[Trajectory, str, str]]:
    """(trajectory, role, colour) of the selection and, when asked, of its neighbours; the selection first."""
    if not view.selected:
        return []
    def path_of(sample_id: str) -> Trajectory | None:
        # One id scan per sample and layer for the session's life: reruns and neighbours reuse it.
        return session.memo(("joint_path", joint.layer, sample_id), lambda: trajectory_of(joint, schedules, sample_id))

    selected = path_of(view.selected)
    if selected is None:
        return []
    found = [(selected, "selected", SELECTED_COLOUR)]
    if with_neighbours:
        manual = set(view.manual)
        for sample_id in _neighbour_ids(session, frame, view):
            path = path_of(sample_id)
            if path is not None and sample_id != view.selected:
                colour = LIGHT_COLOURS[(len(found) - 1) % len(LIGHT_COLOURS)]
                found.append((path, "manual" if sample_id in manual else "knn", colour))
    return found


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


def _map(session: LakeSession, joint: JointEmbedding, schedules: dict[str, ScheduleSteps], rows: np.ndarray, columns: list[int],
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


def _strip(session: LakeSession, path: Trajectory, joint: JointEmbedding) -> None:
    """The images along the selected path: x0_hat per step, or noisy input and reconstruction per sigma."""
    lake = session.lake
    t2i = prompts.t2i_sample(session, int(session.sample_rows([path.sample_id])[0]))
    if t2i is not None:
        what = f"{len(path.sigmas)} steps of text-to-image model `{t2i.model}`"
    elif path.kind == "steps":
        what = f"{len(path.sigmas)} steps of schedule `{path.schedule}`"
    else:
        what = f"probes at {len(path.sigmas)} noise levels"
    heading, clear = st.columns([4, 1])
    heading.markdown(f"**Along the path of** `{path.sample_id}` · {what}")
    clear.button("Clear selection and manual neighbours", on_click=common.clear_selection, key="noise_clear")
    if t2i is not None:  # its steps are the path's vertices; the ImageNet denoiser never reconstructs it
        strip = t2i_step_strip(t2i)
    elif path.kind == "steps" and path.schedule is not None:
        strip = step_images(lake, path.schedule, path.sample_id)
    else:
        strip = session.memo(("recon", path.sample_id), lambda: stored_reconstructions(lake, path.sample_id))
        strip = strip or st.session_state.get(RECONSTRUCTED, {}).get((str(session.path), path.sample_id))
        if strip is None:
            _reconstruct_button(session, path.sample_id, [float(s) for s in sorted(joint.sigmas, reverse=True)], joint.layer)
            return
    if strip is None:
        st.caption("No images are stored for these steps.")
        return
    for title, images, captions in strip.rows:
        st.caption(title)
        st.image([upscale(img, 2) if img.shape[0] <= 64 else img for img in images], width=112, caption=list(captions))


def _reconstruct_button(session: LakeSession, sample_id: str, sigmas: list[float], layer: str) -> None:
    """Offer to compute the probe inputs and reconstructions of one sample now (none are stored)."""
    try:
        # Lazy: the ingest package (and torch behind it) loads only when a sample needs it.
        from ingest.core import reconstruct_sample
        from ingest.errors import InputError
    except ImportError:
        st.info(
            "No reconstructions are stored for this sample, and this installation cannot compute them on demand "
            "(`ingest.core` is missing). Store them with "
            f"`python -m ingest activations --lake {session.path} ... --reconstructions`.",
            icon=":material/info:",
        )
        return
    st.caption("No reconstructions are stored for this sample (`ingest activations --reconstructions` stores them).")
    if st.button(f"Compute its reconstructions at σ = {', '.join(f'{s:g}' for s in sigmas)}", key="noise_reconstruct"):
        try:
            with st.spinner("Running the denoiser on this sample…"):
                # The layer's probe network and noise seed: the images the probes saw.
                done = reconstruct_sample(session.lake, sample_id, sigmas, layer=layer)
        except InputError as exc:  # no probe set-up in this lake, a missing checkpoint: one line, not a traceback
            st.warning(f"Could not compute the reconstructions: {exc}")
            return
        strip = reconstruction_strip(np.asarray(done.sigmas, dtype=np.float64), done.noisy, done.x0_hat)
        st.session_state.setdefault(RECONSTRUCTED, {})[(str(session.path), sample_id)] = strip
        st.rerun()


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

