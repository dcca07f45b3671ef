"""The sidebar: embedding, colour, filters and selection settings, read into a new ViewState."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import streamlit as st

from explorer import common, prompts
from explorer.lake_status import ModelGroup, group_by_model
from explorer.session import LakeSession
from explorer.state import (
    CATEGORICAL_PALETTES,
    CLICK_MODES,
    CONTINUOUS_PALETTES,
    MAX_K,
    MAX_POINTS_LIMIT,
    MAX_PROMPT_SEARCH,
    NEIGHBOUR_SPACES,
    ViewState,
)



def sidebar(session: LakeSession, view: ViewState, refs: list[str]) -> ViewState:
    sb = st.sidebar
    sb.header("DMD2 Visualizer")
    sb.caption(f"Lake `{session.path}` · {session.lake.num_samples:,} samples")
    ref = _embedding(sb, session, refs)
    info = session.embedding(ref)
    frame = common.load_frame(session, ref)
    color_by, palette = _colouring(sb, session, ref)
    classes, sources, splits, prompt = _filters(sb, session, ref, frame.sources, frame.splits)

    rotation = view.rotation
    if info.dims == 3:
        sb.subheader("3D rotation")
        rotation = (float(sb.slider("Azimuth", -180, 180, step=5, key="w_az")), float(sb.slider("Elevation", -90, 90, step=5, key="w_el")))
    k, space, max_points = _selection(sb)

    new = replace(
        view,
        embedding=ref,
        color_by=color_by,
        palette=palette,
        classes=tuple(sorted(int(c) for c in classes)),
        sources=tuple(sources),
        splits=tuple(splits),
        prompt=prompt,
        rotation=rotation,
        k=int(k),
        neighbour_space=space,
        max_points=int(max_points),
    )
    if new.embedding != view.embedding or new.rotation != view.rotation:
        new = replace(new, window=None)  # the old window is in other coordinates
    return new


def _embedding(sb: Any, session: LakeSession, refs: list[str]) -> str:
    """The 'Model' picker (when the lake's embeddings come from several models) and the 'Embedding'
    picker, which offers the chosen model's embeddings."""
    if st.session_state.get("w_embedding") not in refs:
        st.session_state["w_embedding"] = refs[0]
    groups = model_groups(session)
    offered = refs
    if len(groups) > 1:
        by_name = {group.name: group for group in groups}
        # The model follows the embedding, which the URL or the 3D page may have set to another model's;
        # choosing a model moves the embedding to that model's first (`_first_embedding_of`).
        st.session_state["w_model"] = next(g.name for g in groups if st.session_state["w_embedding"] in g.refs)
        model = sb.selectbox("Model", list(by_name), format_func=lambda name: by_name[name].label, key="w_model",
                             on_change=_first_embedding_of, args=(by_name,),
                             help="The network whose activations the embeddings project; each model's layers are listed below.")
        offered = [r for r in refs if r in by_name[model].refs]
    labels = {e.ref: e.label() for e in session.embeddings}
    return str(sb.selectbox("Embedding (layer · sigma · dims)", offered, format_func=lambda r: labels.get(r, r), key="w_embedding"))


def model_groups(session: LakeSession) -> list[ModelGroup]:
    """The lake's embeddings grouped by the model whose activations they project (first model first)."""
    def build() -> list[ModelGroup]:
        registered = session.lake.models()
        first = registered[0].name if registered else None
        return group_by_model(session.embeddings, first, set(session.lake.t2i_models()))

    return session.memo("model_groups", build)


def _first_embedding_of(by_name: dict[str, ModelGroup]) -> None:
    st.session_state["w_embedding"] = by_name[st.session_state["w_model"]].refs[0]


def _colouring(sb: Any, session: LakeSession, ref: str) -> tuple[str, str]:
    """The 'Colour by' and 'Palette' widgets: (colouring, palette; '' for the default)."""
    # "model" (text-to-image lakes) is samples.model_id with a readable entry for real images; the plain
    # column stays offered too, so every per-sample column remains a colouring (links keep working).
    colour_options = ["class", "source", "split", *prompts.colour_options(session, ref), *colour_columns(session, ref)]
    column_labels = {**{c.ref: c.label for c in session.columns(ref)}, **prompts.OPTION_LABELS}
    if st.session_state.get("w_color") not in colour_options:
        st.session_state["w_color"] = "class"
    color_by = sb.selectbox("Colour by", colour_options, format_func=lambda c: column_labels.get(c, c), key="w_color")
    nominal = is_nominal(session, ref, color_by)
    palettes = [""] + list(CATEGORICAL_PALETTES if nominal else CONTINUOUS_PALETTES)
    if st.session_state.get("w_palette") not in palettes:
        st.session_state["w_palette"] = ""
    default_name = "okabe-ito, colour-blind safe" if nominal else "viridis, colour-blind safe"
    palette = sb.selectbox("Palette", palettes, format_func=lambda p: p or f"default ({default_name})", key="w_palette")
    return str(color_by), str(palette)


def _filters(sb: Any, session: LakeSession, ref: str, frame_sources: tuple[str, ...],
             frame_splits: tuple[str, ...]) -> tuple[list[int], list[str], list[str], str]:
    """The filter widgets: (classes, sources, splits, prompt search text)."""
    sb.subheader("Filters")
    present = common.present_classes(session, ref)
    sb.text_input(
        "Add classes matching (id, wnid or name)",
        key="w_class_search",
        placeholder="e.g. goldfish, n01443537, 1",
        on_change=_add_matching_classes,
        args=(session, present),
    )
    st.session_state["w_classes"] = [c for c in st.session_state.get("w_classes", []) if c in present]
    classes = sb.multiselect("Classes", present, format_func=session.classes.label, key="w_classes", placeholder="all classes")
    sources = sb.multiselect("Source", list(frame_sources), key="w_sources", placeholder="all sources")
    splits = sb.multiselect("Split", list(frame_splits), key="w_splits", placeholder="all splits")
    prompt = ""
    if prompts.has_t2i(session):
        prompt = sb.text_input(
            "Prompt contains",
            key="w_prompt",
            max_chars=MAX_PROMPT_SEARCH,
            placeholder="e.g. cat (any case)",
            help="Keeps the text-to-image samples whose prompt contains this text, ignoring case; "
            "combines with the filters above. Samples without a prompt are left out while it is set.",
        ).strip()
        if prompt:
            found = prompts.matching_prompts(session, prompt)
            sb.caption(f"{found:,} of the lake's {prompts.prompt_index(session).n_prompts:,} prompts match")
    return classes, sources, splits, prompt


def _selection(sb: Any) -> tuple[int, str, int]:
    """The selection widgets: (k, neighbour space, most points drawn)."""
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
    return int(k), str(space), int(max_points)


def _add_matching_classes(session: LakeSession, present: list[int]) -> None:
    text = st.session_state.get("w_class_search", "")
    matches = [c for c in session.classes.search(text) if c in set(present)] if text.strip() else []
    chosen = list(dict.fromkeys([*st.session_state.get("w_classes", []), *matches]))
    st.session_state["w_classes"] = chosen
    st.session_state["w_class_search"] = ""
    st.session_state["class_search_result"] = (text, len(matches))


def colour_columns(session: LakeSession, ref: str) -> list[str]:
    """Refs of the per-sample columns offered in "Colour by" (besides class, source and split)."""
    return [c.ref for c in session.columns(ref) if c.name not in common.LABEL_COLUMNS]


def is_nominal(session: LakeSession, ref: str, color_by: str) -> bool:
    if color_by in ("class", "source", "split", *prompts.COLOUR_OPTIONS):
        return True
    column = next((c for c in session.columns(ref) if c.ref == color_by), None)
    return column is None or not column.numeric
