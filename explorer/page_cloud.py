"""The 3D page: a pydeck point cloud of a 3D embedding."""
from __future__ import annotations

import html

import numpy as np
import streamlit as st

from explorer import charts, common, export, prompts
from explorer.columns import NO_CLASS
from explorer.frames import EmbeddingFrame
from explorer.session import LakeSession
from explorer.state import ViewState

LEGEND_LIMIT = 16  # more categories than this get no legend line (colours repeat anyway)


def cloud_colours(session: LakeSession, frame: EmbeddingFrame, view: ViewState, rows: np.ndarray) -> tuple[np.ndarray, list[tuple[str, str]], str]:
    """RGB per drawn point, the legend of a categorical colouring as (label, hex) pairs, and a caption for a numeric one.

    Categories are numbered by their rank among the embedding's categories (not by class
    id, whose remainders would give different classes the same colour).
    """
    if view.color_by in ("class", "source", "split"):
        if view.color_by == "class":
            present = np.asarray(common.present_classes(session, view.embedding), dtype=np.int64)
            class_id = frame.class_id[rows].astype(np.int64)
            codes = np.where(class_id >= 0, np.searchsorted(present, class_id), len(present))
            labels = [common.class_label(session, c) for c in present] + ([NO_CLASS] if (class_id < 0).any() else [])
        else:
            codes = frame.source_code[rows] if view.color_by == "source" else frame.split_code[rows]
            labels = list(frame.sources if view.color_by == "source" else frame.splits)
        return charts.point_colors(codes, None), _legend(labels), ""
    if view.color_by in prompts.COLOUR_OPTIONS:
        # Numbered by rank among the categories present anywhere in the embedding, as classes are.
        all_codes, all_labels = prompts.colour_codes(session, frame, view.embedding, view.color_by)
        present = np.flatnonzero(np.bincount(all_codes, minlength=1))
        return charts.point_colors(np.searchsorted(present, all_codes[rows]), None), _legend([str(all_labels[c]) for c in present]), ""
    values = session.column_values(view.embedding, view.color_by)[rows]
    name = view.color_by.rpartition(".")[2]
    if values.dtype.kind in "iuf":
        finite = np.isfinite(values.astype(np.float64))
        span = f"{common.format_value(np.min(values[finite]))} (yellow) to {common.format_value(np.max(values[finite]))} (dark purple)" if finite.any() else "no values"
        return charts.point_colors(None, values), [], f"{name}: {span}"
    categories, codes = np.unique(np.asarray(values, dtype=object).astype(str), return_inverse=True)
    return charts.point_colors(codes, None), _legend([common.format_value(c) for c in categories]), ""


def _legend(labels: list[str]) -> list[tuple[str, str]]:
    if len(labels) > LEGEND_LIMIT:
        return []
    return [(label, charts.OKABE_ITO[i % len(charts.OKABE_ITO)]) for i, label in enumerate(labels)]


def legend_markdown(legend: list[tuple[str, str]]) -> str:
    """A one-line HTML legend of (label, hex colour) pairs: deck.gl draws fixed RGB per point and no legend."""
    return "&emsp;".join(f"<span style='color:{colour};font-size:1.2em'>●</span>&nbsp;{html.escape(label)}" for label, colour in legend)


def cloud_page(session: LakeSession, frame: EmbeddingFrame, view: ViewState, mask: np.ndarray) -> None:
    rows = common.stratified_rows(session, frame, view.embedding, mask, min(view.max_points, 30_000))
    table = export.points_frame(frame, rows, session.classes)
    if prompts.has_t2i(session):  # the hover names the prompt of a text-to-image sample
        table["prompt"] = np.asarray(prompts.hover_prompts(session, frame, view.embedding, rows), dtype=object)
    rgb, legend, scale = cloud_colours(session, frame, view, rows)
    table["rgb"] = rgb.tolist()
    table["class"] = table["class"].astype(str)
    table["source"] = table["source"].astype(str)
    table["sample_id"] = table["sample_id"].astype(str)
    cx, cy, cz = (float(v) for v in np.nanmean(frame.coords, axis=0))
    centre = (cx, cy, cz)
    span = float(np.nanmax(np.ptp(frame.coords, axis=0)))
    st.caption(f"{len(rows):,} of {int(mask.sum()):,} filtered points · drag to rotate, scroll to zoom · select points in the Explore page.")
    if legend:
        st.markdown(legend_markdown(legend), unsafe_allow_html=True)
    elif scale:
        st.caption(scale)
    shown = ["x", "y", "z", "rgb", "class", "source", "sample_id"] + (["prompt"] if "prompt" in table else [])
    st.pydeck_chart(charts.point_cloud(table[shown], centre, span), height=620)
