"""How the Explore page colours points: the legend's spec and each point's colour category or value.

Shared by the Vega scatter (a column of the drawn rows) and the WebGL scatter (a code or
value for every point); no Streamlit here.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from explorer import charts, prompts
from explorer.columns import NO_CLASS
from explorer.frames import EmbeddingFrame
from explorer.session import LakeSession
from explorer.state import DEFAULT_CONTINUOUS, ViewState


def point_colours(
    session: LakeSession, frame: EmbeddingFrame, view: ViewState, rows: np.ndarray, highlighted: tuple[int, ...] = ()
) -> tuple[charts.ColorSpec, Any]:
    """The colour spec and a function giving the colour column for any embedding rows.

    `rows` are the drawn rows (their most frequent categories get the colours);
    `highlighted` the class ids picked to colour instead ("Colour these classes").

    Categorical colourings with more categories than the palette has colours (1000
    classes) colour the most frequent categories among the drawn points, or the ones
    picked in the highlight box, and draw the rest in grey as "other".
    """
    limit = charts.palette_size(view.palette)
    if view.color_by in ("class", "source", "split", *prompts.COLOUR_OPTIONS):
        if view.color_by == "class":
            codes = frame.class_id.astype(np.int64) + 1  # -1 (no class) -> 0
            labels = np.array([NO_CLASS] + [session.classes.label(c) for c in range(1000)], dtype=object)
            chosen = tuple(session.classes.label(c) for c in highlighted)
        elif view.color_by in prompts.COLOUR_OPTIONS:
            # Prompts, clusters and models: codes with a 'none' entry at 0, exactly like classes.
            codes, labels = prompts.colour_codes(session, frame, view.embedding, view.color_by)
            chosen = ()
        else:
            codes = frame.source_code if view.color_by == "source" else frame.split_code
            labels, chosen = np.array(frame.sources if view.color_by == "source" else frame.splits, dtype=object), ()
        present, counts = np.unique(codes[rows], return_counts=True)
        everywhere = _present_codes(session, frame, view, codes)
        if len(everywhere) <= limit and not chosen:
            # Every category of the embedding gets a colour, in code order: no colour shifts with filters or zoom.
            top, has_other = tuple(str(labels[c]) for c in everywhere), False
        else:
            top = charts.top_categories({str(labels[c]): int(n) for c, n in zip(present, counts)}, limit, chosen)
            has_other = len(present) > len(top)
        name = prompts.OPTION_LABELS.get(view.color_by, view.color_by)
        title = name if not has_other else f"{name} ({'chosen' if chosen else f'top {len(top)} in view'})"
        return charts.legend_colour_spec(title, view.palette, top, has_other), lambda rs: _categorical(labels, codes[rs], top)
    values = session.column_values(view.embedding, view.color_by)
    title = view.color_by.rpartition(".")[2]  # refs are "<table>.<array>"; a table may hold dots (a key), an array never
    if values.dtype.kind in "iufb":
        return charts.ColorSpec("value", title, False, view.palette), lambda rs: values[rs].astype(np.float32)
    drawn = _text_labels(values[rows])
    uniques, counts = np.unique(drawn, return_counts=True)
    top = charts.top_categories(dict(zip(uniques.tolist(), counts.tolist())), limit)
    spec = charts.legend_colour_spec(title, view.palette, top, len(uniques) > len(top))
    spec = replace(spec, field="value")

    def column(rs: np.ndarray) -> Any:
        text = _text_labels(values[rs])
        return pd.Categorical(np.where(np.isin(text, top), text, charts.OTHER), categories=list(spec.domain or ()))

    return spec, column


def _text_labels(values: np.ndarray) -> np.ndarray:
    """Text category labels; an empty value (a real image's `model_id`) reads as "(none)" in the legend."""
    text = np.asarray(values, dtype=object).astype(str)
    return np.where(text == "", charts.NO_VALUE, text)


def _present_codes(session: LakeSession, frame: EmbeddingFrame, view: ViewState, codes: np.ndarray) -> np.ndarray:
    """The category codes that occur anywhere in the embedding (memoised per embedding and colouring)."""
    return session.memo(("present_codes", view.embedding, view.color_by), lambda: np.flatnonzero(np.bincount(codes, minlength=1)))


def _categorical(labels: np.ndarray, codes: np.ndarray, top: tuple[str, ...]) -> Any:
    """Per-row colour category (a top label or "other") as a pandas Categorical (Arrow dictionary)."""
    lookup = {name: i for i, name in enumerate(top)}
    index = np.array([lookup.get(str(name), len(top)) for name in labels], dtype=np.int32)
    return pd.Categorical.from_codes(index[codes], categories=[*top, charts.OTHER])


# Anchor colours of the continuous schemes (Vega's and matplotlib's, evenly spaced), for the
# WebGL scatter, which colours by a lookup table rather than a Vega scale.
CONTINUOUS_STOPS = {
    "viridis": ("#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725"),
    "cividis": ("#00224e", "#123570", "#3b496c", "#575d6d", "#707173", "#8a8779", "#a69d75", "#c4b56c", "#e4cf5b", "#fee838"),
    "magma": ("#000004", "#180f3d", "#440f76", "#721f81", "#9e2f7f", "#cd4071", "#f1605d", "#fd9668", "#feca8d", "#fcfdbf"),
    "plasma": ("#0d0887", "#47039f", "#7301a8", "#9c179e", "#bd3786", "#d8576b", "#ed7953", "#fb9f3a", "#fdca26", "#f0f921"),
    "turbo": ("#30123b", "#4145ab", "#4675ed", "#39a2fc", "#1bcfd4", "#24eca6", "#61fc6c", "#a4fc3b", "#d1e834", "#f3c63a",
              "#fe9b2d", "#f36315", "#d93806", "#b11901", "#7a0402"),
}


def colour_ramp(palette: str, steps: int = 64) -> tuple[str, ...]:
    """`steps` colours evenly along a continuous scheme (linear in RGB between its anchors)."""
    stops = CONTINUOUS_STOPS.get(palette) or CONTINUOUS_STOPS[DEFAULT_CONTINUOUS]
    anchors = np.array([charts.hex_to_rgb(c) for c in stops], dtype=np.float64)
    where = np.linspace(0, len(stops) - 1, steps)
    low = np.minimum(where.astype(int), len(stops) - 2)
    t = (where - low)[:, None]
    rgb = np.rint(anchors[low] * (1 - t) + anchors[low + 1] * t).astype(int)
    return tuple(f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb)
