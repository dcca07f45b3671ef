"""Altair (and pydeck) chart builders. Inputs are small frames the app has already
filtered, sampled or binned; nothing here touches the lake.

Point marks carry only coordinates, ids and labels; the hover thumbnail is a URL the
browser builds from the sample row (`transform_calculate`), so no image bytes travel
with the chart.
"""
from __future__ import annotations

import copy
import json
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from .state import DEFAULT_CATEGORICAL, DEFAULT_CONTINUOUS, Window

OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000")  # Okabe & Ito (2008), all 8
# The categorical schemes as colour lists (Vega's own values), so that a legend can give the
# top categories a colour each and everything else one grey ("other").
CATEGORICAL_COLOURS = {
    "okabe-ito": OKABE_ITO,
    "tableau10": ("#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac"),
    "category20": (
        "#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896", "#9467bd", "#c5b0d5",
        "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7", "#bcbd22", "#dbdb8d", "#17becf", "#9edae5",
    ),
    "dark2": ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"),
    "set2": ("#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3", "#a6d854", "#ffd92f", "#e5c494", "#b3b3b3"),
}
OTHER = "other"  # the legend entry of every category without a colour of its own
OTHER_COLOUR = "#d4d4d4"
NO_VALUE = "(none)"  # the legend entry of an empty text value
SELECTED_FILL = "#1452ff"  # the selected point: a larger blue circle
RING = "#e3001b"  # neighbours: red rings (thin for k-NN, thick for manual)
ROLES = ("point", "knn", "manual", "selected")
MARK_ROLES = ROLES[1:]  # drawn by the small `marks` layer over the points
PLACED_SHAPE = "diamond"  # placed samples (projected into the map, not fitted): a filled diamond with a dark outline
PLACED_OUTLINE = "#111111"
LINEAGE_COLOUR = "#555555"  # thin lines from a placed sample to each of its parents
SVG_POINT_LIMIT = 3000  # above this, canvas (SVG DOM nodes get slow)
PICK = "pick"  # point selection: clicks (toggling, so every click changes the selection)
ZOOM = "zoom"  # interval selection on the overview: the zoom window
# The heatmap and the points must never share a hue, or "orange" means two things. The
# heatmap is purple-green (ColorBrewer PRGn, colour-blind safe); the points are Okabe-Ito
# orange (real) and near-black (generated) with different shapes, so they read without colour too.
HEAT_SCHEME = "purplegreen"
SOURCE_COLOURS = {"real": "#E69F00", "generated": "#1a1a1a"}
SOURCE_SHAPES = {"real": "circle", "generated": "cross"}
SOURCE_OTHER_COLOUR, SOURCE_OTHER_SHAPE = "#999999", "square"


@dataclass(frozen=True)
class ColorSpec:
    """How points are coloured: a field of the points frame and its scale."""

    field: str
    title: str
    nominal: bool
    palette: str = ""
    domain: tuple[Any, ...] | None = None  # fixed category order, so colours don't shift with filters
    legend: bool = True
    colours: tuple[str, ...] | None = None  # explicit colours for `domain` (top categories + "other")

    def scale(self) -> Any:
        import altair as alt

        if self.nominal:
            palette = self.palette or DEFAULT_CATEGORICAL
            domain = list(self.domain) if self.domain is not None else alt.Undefined
            if self.colours is not None:
                return alt.Scale(domain=domain, range=list(self.colours))
            if palette == "okabe-ito":
                return alt.Scale(domain=domain, range=list(OKABE_ITO))
            return alt.Scale(domain=domain, scheme=palette)  # type: ignore[arg-type]  # a Vega scheme name, validated in state.py
        return alt.Scale(scheme=self.palette or DEFAULT_CONTINUOUS)  # type: ignore[arg-type]  # a Vega scheme name, validated in state.py


def palette_size(palette: str) -> int:
    """How many categories a categorical palette colours distinctly (the rest share grey)."""
    return len(CATEGORICAL_COLOURS.get(palette or DEFAULT_CATEGORICAL, OKABE_ITO))


def top_categories(counts: dict[str, int], limit: int, chosen: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The categories that get a colour: the chosen ones (in order), else the `limit` most frequent.

    Ties break by name so that the same view always gets the same legend.
    """
    if chosen:
        return tuple(dict.fromkeys(chosen))[:limit]
    ranked = sorted((c for c, n in counts.items() if n > 0), key=lambda c: (-counts[c], c))
    return tuple(ranked[:limit])


def legend_colour_spec(title: str, palette: str, categories: tuple[str, ...], has_other: bool) -> ColorSpec:
    """A readable categorical legend: one colour per listed category, plus grey "other" when some are left out."""
    colours = CATEGORICAL_COLOURS.get(palette or DEFAULT_CATEGORICAL, OKABE_ITO)[: len(categories)]
    domain = categories + ((OTHER,) if has_other else ())
    return ColorSpec("colour", title, True, palette, domain=domain, legend=True, colours=tuple(colours) + ((OTHER_COLOUR,) if has_other else ()))


def renderer_for(points: int) -> str:
    return "svg" if points <= SVG_POINT_LIMIT else "canvas"


def cells_frame(cells: tuple[np.ndarray, ...], value: str = "count") -> Any:
    """Grid cells (x0, x1, y0, y1, value) as the frame the heatmap layers read."""
    import pandas as pd

    x0, x1, y0, y1, v = cells
    return pd.DataFrame({"x": x0, "x2": x1, "y": y0, "y2": y1, value: v})


def with_datasets(spec: dict[str, Any], **datasets: Any) -> dict[str, Any]:
    """A copy of a cached spec with its named datasets attached (Streamlit ships them as Arrow).

    Deep-copied because Streamlit edits the spec it is given (theme, config) in place.
    """
    return {**copy.deepcopy(spec), "datasets": datasets}


def _axes(extent: Window) -> tuple[Any, Any]:
    import altair as alt

    x0, x1, y0, y1 = extent
    x = alt.X("x:Q", title=None, scale=alt.Scale(domain=[x0, x1], nice=False, zero=False))
    y = alt.Y("y:Q", title=None, scale=alt.Scale(domain=[y0, y1], nice=False, zero=False))
    return x, y


def _density_layer(extent: Window, opacity: float, scheme: str, aria: bool = True) -> Any:
    """Binned counts (dataset `cells`) as a heatmap with a log colour scale."""
    import altair as alt

    x, y = _axes(extent)
    return (
        alt.Chart(alt.Data(name="cells"))
        .mark_rect(opacity=opacity, aria=aria)
        .encode(
            x=x,
            x2="x2:Q",
            y=y,
            y2="y2:Q",
            color=alt.Color("count:Q", scale=alt.Scale(type="log", scheme=scheme), legend=None),  # type: ignore[arg-type]  # a Vega scheme name, validated in state.py
            tooltip=[alt.Tooltip("count:Q", title="points in cell")],
        )
    )


# Specs are built once per set of parameters and cached: Altair's schema validation and
# object construction cost ~0.3 s per chart, far more than the numpy work of a rerun.
# Data never enters the cache; it is attached per rerun as named datasets.
@lru_cache(maxsize=64)
def scatter_spec(
    color: ColorSpec, extent: Window, thumb_base: str, background: bool, renderer: str, height: int = 560, placed: bool = False,
    prompt: bool = False,
) -> dict[str, Any]:
    """Points (dataset `points`) with hover thumbnails and a click selection; the selection's
    highlights (dataset `marks`) drawn over them; optional density underlay (`cells`).

    With `placed`, samples placed in the map after its fit (dataset `placed`: the points'
    columns plus `placement`) are drawn as diamonds over the points, with a thin line
    (dataset `lineage`: x, y, x2, y2) to each parent; they select like any point.

    With `prompt`, every dataset also has a `prompt` column (a text-to-image sample's
    prompt, cut; "no prompt" for other samples), shown in the hover under the thumbnail.

    `points` needs columns x, y, sample_id, class, source, thumb and the colour field;
    `marks` the same plus `role` (one of `MARK_ROLES`), in drawing order. The points carry
    nothing about the selection, so a click changes only the small `marks` dataset: the
    browser keeps the drawn points and redraws only the highlights. Highlights are
    encoded with fixed values (not new scale categories), so the legend never grows.

    The click selection toggles: every click adds or removes one id, so a click is the
    one id by which the selection changed (`clicked_id`), also when the same point is
    clicked twice, and the chart keeps one widget key for its whole life. Vega-Lite takes
    a point selection's value from whatever item is under the cursor in the layered view,
    so clicks on a highlight (drawn over its point) select too.
    """
    import altair as alt

    x, y = _axes(extent)
    pick = alt.selection_point(name=PICK, fields=["sample_id"], on="click", clear=False, toggle="true")
    def fill(legend: bool) -> Any:
        return alt.Color(
            f"{color.field}:{'N' if color.nominal else 'Q'}",
            title=color.title,
            scale=color.scale(),
            legend=alt.Legend(symbolLimit=24, labelLimit=220) if legend else None,
        )

    tooltip = [
        alt.Tooltip("image:N", title="image"),
        *([alt.Tooltip("prompt:N", title="prompt")] if prompt else []),
        alt.Tooltip("class:N", title="class"),
        alt.Tooltip("source:N", title="source"),
        alt.Tooltip("sample_id:N", title="sample id"),
    ]
    image = f"datum.thumb >= 0 ? '{thumb_base}' + datum.thumb + '.png' : null"
    points = (
        alt.Chart(alt.Data(name="points"))
        .transform_calculate(image=image)
        # No ARIA description per point on canvas (it is never read there): Vega-Lite would
        # otherwise format an "x: …; y: …" string for each of ~50,000 points, and Streamlit
        # runs Vega's expression interpreter (CSP-safe), where every per-point expression counts.
        .mark_circle(clip=True, size=28, opacity=0.75, aria=renderer == "svg")
        .encode(x=x, y=y, color=fill(color.legend), tooltip=tooltip)
        .add_params(pick)
    )
    placed_layers = _placed_layers(x, y, image, fill(False), tooltip) if placed else []
    roles = list(MARK_ROLES)
    marks = (
        alt.Chart(alt.Data(name="marks"))
        .transform_calculate(image=image)
        .mark_circle(clip=True, opacity=1)
        .encode(
            x=x,
            y=y,
            # the points layer's scale; its legend is enough (a second one would repeat it)
            color=alt.condition("datum.role == 'selected'", alt.value(SELECTED_FILL), fill(False)),
            size=alt.Size("role:N", scale=alt.Scale(domain=roles, range=[70, 70, 320]), legend=None),
            stroke=alt.Stroke("role:N", scale=alt.Scale(domain=roles, range=[RING, RING, "#0b1f66"]), legend=None),
            strokeWidth=alt.StrokeWidth("role:N", scale=alt.Scale(domain=roles, range=[1.5, 3.5, 1.5]), legend=None),
            tooltip=tooltip,
        )
    )
    layers = [_density_layer(extent, 0.35, "greys", aria=False), points, *placed_layers, marks] if background else [points, *placed_layers, marks]
    chart = alt.layer(*layers).properties(height=height, usermeta={"embedOptions": {"renderer": renderer}}).configure_view(strokeWidth=0)
    return chart.to_dict(validate=False)


def _placed_layers(x: Any, y: Any, image: str, colour: Any, tooltip: list[Any]) -> list[Any]:
    """The placed samples' layers of `scatter_spec`: a line to each parent (`lineage`), then diamonds (`placed`)."""
    import altair as alt

    lines = (
        alt.Chart(alt.Data(name="lineage"))
        .mark_rule(clip=True, color=LINEAGE_COLOUR, strokeWidth=1, opacity=0.8, aria=False)
        .encode(x=x, y=y, x2="x2:Q", y2="y2:Q")
    )
    diamonds = (
        alt.Chart(alt.Data(name="placed"))
        .transform_calculate(image=image)
        .mark_point(clip=True, shape=PLACED_SHAPE, filled=True, size=110, opacity=1, stroke=PLACED_OUTLINE, strokeWidth=1.2)
        .encode(x=x, y=y, color=colour, tooltip=[*tooltip, alt.Tooltip("placement:N", title="placement")])
    )
    return [lines, diamonds]


@dataclass(frozen=True)
class PickSeen:
    """What the app knows about the scatter's toggling click selection between reruns."""

    last: tuple[str, ...] = ()  # the selection the previous rerun saw
    held: tuple[str, ...] = ()  # the selection the browser's view holds (empty after it rebuilt the view)

    def update(self, current: tuple[str, ...]) -> tuple[str | None, PickSeen]:
        """The clicked id (None: this rerun has no click) and the new knowledge, given the selection now."""
        if current == self.last:  # a rerun for another reason (a widget, a button)
            return None, self
        clicked = clicked_id(self.held, current)
        if clicked is None and self.held != self.last:
            # Streamlit (1.67) may restore the widget's last selection into the rebuilt view
            # (seen when placed samples arrive, or the colouring changes, after a click): the
            # click is then one toggle away from `last`, not from an empty selection.
            clicked = clicked_id(self.last, current)
        return clicked, PickSeen(current, current)

    def rebuilt(self) -> PickSeen:
        """The browser builds a new view (new spec) whose selection starts empty (or holds `last` again)."""
        return PickSeen(self.last, ())


def clicked_id(seen: tuple[str, ...], current: tuple[str, ...]) -> str | None:
    """The id a click toggled, from the toggling selection before (`seen`) and after (`current`).

    One click adds or removes exactly one id. Anything else (no change, or a selection
    that does not follow from `seen` by one click) is not a click.
    """
    before, after = Counter(seen), Counter(current)
    added, removed = after - before, before - after
    if sum(added.values()) + sum(removed.values()) != 1:
        return None
    return next(iter(added or removed))


@lru_cache(maxsize=64)
def overview_spec(extent: Window, window: Window | None, renderer: str, height: int = 240) -> dict[str, Any]:
    """The density (`cells`) of every filtered point; drag a box on it to zoom the main plot."""
    import altair as alt

    zoom = alt.selection_interval(name=ZOOM, encodings=["x", "y"])
    layers = [_density_layer(extent, 1.0, "viridis").add_params(zoom)]
    if window is not None:
        x, y = _axes(extent)
        box = alt.Data(values=[{"x": window[0], "x2": window[1], "y": window[2], "y2": window[3]}])
        layers.append(alt.Chart(box).mark_rect(fill=None, stroke=RING, strokeWidth=2).encode(x=x, x2="x2:Q", y=y, y2="y2:Q"))
    chart = alt.layer(*layers).properties(height=height, usermeta={"embedOptions": {"renderer": renderer}}).configure_view(strokeWidth=0)
    return chart.to_dict(validate=False)


def source_scale(sources: tuple[str, ...]) -> tuple[list[str], list[str], list[str]]:
    """Domain, colours and shapes of the source encoding: fixed per source name, whatever order the lake has."""
    domain = list(sources)
    return domain, [SOURCE_COLOURS.get(s, SOURCE_OTHER_COLOUR) for s in domain], [SOURCE_SHAPES.get(s, SOURCE_OTHER_SHAPE) for s in domain]


@lru_cache(maxsize=16)
def difference_spec(extent: Window, peak: float, sources: tuple[str, ...], renderer: str, height: int = 480) -> dict[str, Any]:
    """Generated-minus-real density (`cells`, purple-green) under points by source (`points`, orange/black, circle/cross)."""
    import altair as alt

    x, y = _axes(extent)
    peak = peak if peak > 0 else 1.0
    heat = (
        alt.Chart(alt.Data(name="cells"))
        .mark_rect()
        .encode(
            x=x,
            x2="x2:Q",
            y=y,
            y2="y2:Q",
            color=alt.Color(
                "difference:Q",
                title="generated − real density",
                scale=alt.Scale(scheme=HEAT_SCHEME, domain=[-peak, peak], domainMid=0),  # type: ignore[arg-type]  # a Vega scheme name, validated in state.py
            ),
            tooltip=[alt.Tooltip("difference:Q", format=".2e")],
        )
    )
    domain, colours, shapes = source_scale(sources)
    points = (
        alt.Chart(alt.Data(name="points"))
        .mark_point(size=18, opacity=0.75, filled=True, clip=True)
        .encode(
            x=x,
            y=y,
            # One legend (colour) naming the shapes too: a colour and a shape legend of the same
            # field are not merged across the layers' independent colour scales.
            color=alt.Color("source:N", scale=alt.Scale(domain=domain, range=colours), title="source", legend=alt.Legend(labelExpr=_shape_labels(domain, shapes))),
            shape=alt.Shape("source:N", scale=alt.Scale(domain=domain, range=shapes), legend=None),
            tooltip=[alt.Tooltip("class:N"), alt.Tooltip("source:N"), alt.Tooltip("sample_id:N")],
        )
    )
    chart = alt.layer(heat, points).resolve_scale(color="independent").properties(height=height, usermeta={"embedOptions": {"renderer": renderer}})
    return chart.to_dict(validate=False)


def _shape_labels(domain: list[str], shapes: list[str]) -> str:
    """A Vega expression labelling each source with its mark's shape: 'real (circles)'."""
    plural = {"circle": "circles", "cross": "crosses", "square": "squares"}
    expression = "datum.label"
    for source, shape in zip(domain, shapes):
        expression = f"datum.label === {json.dumps(source)} ? {json.dumps(f'{source} ({plural.get(shape, shape)})')} : {expression}"
    return expression


def hex_to_rgb(color: str) -> list[int]:
    color = color.lstrip("#")
    return [int(color[i : i + 2], 16) for i in (0, 2, 4)]


def point_colors(codes: np.ndarray | None, values: np.ndarray | None) -> np.ndarray:
    """RGB per point for the 3D view: Okabe-Ito by category code, or a light-to-dark ramp for numbers."""
    if codes is not None:
        table = np.array([hex_to_rgb(c) for c in OKABE_ITO], dtype=np.uint8)
        return table[np.asarray(codes, dtype=np.int64) % len(OKABE_ITO)]
    assert values is not None
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    lo, hi = (np.nanmin(v[finite]), np.nanmax(v[finite])) if finite.any() else (0.0, 1.0)
    t = np.where(finite, (v - lo) / (hi - lo if hi > lo else 1.0), 0.0)[:, None]
    start, end = np.array(hex_to_rgb("#FDE725"), float), np.array(hex_to_rgb("#440154"), float)  # viridis ends
    return (start + (end - start) * t).astype(np.uint8)


def point_cloud(points: Any, centre: tuple[float, float, float], span: float) -> Any:
    """A rotatable 3D point cloud (deck.gl OrbitView via pydeck, bundled with Streamlit; works offline)."""
    import pydeck as pdk

    layer = pdk.Layer(
        "PointCloudLayer",
        data=points,
        get_position=["x", "y", "z"],
        get_color="rgb",
        point_size=2,
        pickable=True,
    )
    zoom = float(np.log2(500.0 / max(span, 1e-6)))
    view = pdk.View(type="OrbitView", controller=True)
    state = pdk.ViewState(target=list(centre), zoom=zoom, rotation_orbit=30, rotation_x=20)
    # A text-to-image sample's prompt leads its tooltip (points then carry a `prompt` column).
    text = ("{prompt}\n" if "prompt" in getattr(points, "columns", ()) else "") + "{class}\n{source}\n{sample_id}"
    return pdk.Deck(layers=[layer], views=[view], initial_view_state=state, map_style=None, tooltip={"text": text})
