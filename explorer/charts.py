"""Altair (and pydeck) chart builders. Inputs are small frames the app has already
filtered, sampled or binned; nothing here touches the lake.

Point marks carry only coordinates, ids and labels; the hover thumbnail is a URL the
browser builds from the sample row (`transform_calculate`), so no image bytes travel
with the chart.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from .state import DEFAULT_CATEGORICAL, DEFAULT_CONTINUOUS, Window

OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#999999")
SELECTED_FILL = "#1452ff"  # the selected point: a larger blue circle
RING = "#e3001b"  # neighbours: red rings (thin for k-NN, thick for manual)
ROLES = ("point", "knn", "manual", "selected")
SVG_POINT_LIMIT = 3000  # above this, canvas (SVG DOM nodes get slow)
PICK = "pick"  # point selection: a click
ZOOM = "zoom"  # interval selection on the overview: the zoom window


@dataclass(frozen=True)
class ColorSpec:
    """How points are coloured: a field of the points frame and its scale."""

    field: str
    title: str
    nominal: bool
    palette: str = ""
    domain: tuple[Any, ...] | None = None  # fixed category order, so colours don't shift with filters
    legend: bool = True

    def scale(self) -> Any:
        import altair as alt

        if self.nominal:
            palette = self.palette or DEFAULT_CATEGORICAL
            domain = list(self.domain) if self.domain is not None else alt.Undefined
            if palette == "okabe-ito":
                return alt.Scale(domain=domain, range=list(OKABE_ITO))
            return alt.Scale(domain=domain, scheme=palette)
        return alt.Scale(scheme=self.palette or DEFAULT_CONTINUOUS)


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


def _density_layer(extent: Window, opacity: float, scheme: str) -> Any:
    """Binned counts (dataset `cells`) as a heatmap with a log colour scale."""
    import altair as alt

    x, y = _axes(extent)
    return (
        alt.Chart(alt.Data(name="cells"))
        .mark_rect(opacity=opacity)
        .encode(
            x=x,
            x2="x2:Q",
            y=y,
            y2="y2:Q",
            color=alt.Color("count:Q", scale=alt.Scale(type="log", scheme=scheme), legend=None),
            tooltip=[alt.Tooltip("count:Q", title="points in cell")],
        )
    )


# Specs are built once per set of parameters and cached: Altair's schema validation and
# object construction cost ~0.3 s per chart, far more than the numpy work of a rerun.
# Data never enters the cache; it is attached per rerun as named datasets.
@lru_cache(maxsize=64)
def scatter_spec(color: ColorSpec, extent: Window, thumb_base: str, background: bool, renderer: str, height: int = 560) -> dict[str, Any]:
    """Points (dataset `points`) with hover thumbnails and a click selection; optional density underlay (`cells`).

    `points` needs columns row, thumb, x, y, sample_id, class, source, role, role_rank and
    the colour field. Highlights are encoded with fixed values (not new scale
    categories), so the legend never grows when points are clicked.
    """
    import altair as alt

    x, y = _axes(extent)
    pick = alt.selection_point(name=PICK, fields=["sample_id"], on="click", clear=False, toggle=False)
    fill_field = alt.Color(
        f"{color.field}:{'N' if color.nominal else 'Q'}",
        title=color.title,
        scale=color.scale(),
        legend=alt.Legend(symbolLimit=24, labelLimit=220) if color.legend else None,
    )
    roles = list(ROLES)
    points = (
        alt.Chart(alt.Data(name="points"))
        .transform_calculate(image=f"datum.thumb >= 0 ? '{thumb_base}' + datum.thumb + '.png' : null")
        .mark_circle(clip=True)
        .encode(
            x=x,
            y=y,
            color=alt.condition("datum.role == 'selected'", alt.value(SELECTED_FILL), fill_field),
            size=alt.Size("role:N", scale=alt.Scale(domain=roles, range=[28, 70, 70, 320]), legend=None),
            stroke=alt.Stroke("role:N", scale=alt.Scale(domain=roles, range=["#ffffff", RING, RING, "#0b1f66"]), legend=None),
            strokeWidth=alt.StrokeWidth("role:N", scale=alt.Scale(domain=roles, range=[0, 1.5, 3.5, 1.5]), legend=None),
            opacity=alt.Opacity("role:N", scale=alt.Scale(domain=roles, range=[0.75, 1, 1, 1]), legend=None),
            order=alt.Order("role_rank:Q"),
            tooltip=[
                alt.Tooltip("image:N", title="image"),
                alt.Tooltip("class:N", title="class"),
                alt.Tooltip("source:N", title="source"),
                alt.Tooltip("sample_id:N", title="sample id"),
            ],
        )
        .add_params(pick)
    )
    layers = [_density_layer(extent, 0.35, "greys"), points] if background else [points]
    chart = alt.layer(*layers).properties(height=height, usermeta={"embedOptions": {"renderer": renderer}}).configure_view(strokeWidth=0)
    return chart.to_dict(validate=False)


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


@lru_cache(maxsize=16)
def difference_spec(extent: Window, peak: float, source_domain: tuple[str, ...], renderer: str, height: int = 480) -> dict[str, Any]:
    """Generated-minus-real density (`cells`, diverging and colour-blind safe) under points by source (`points`)."""
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
                scale=alt.Scale(scheme="purpleorange", domain=[-peak, peak], domainMid=0),
            ),
            tooltip=[alt.Tooltip("difference:Q", format=".2e")],
        )
    )
    points = (
        alt.Chart(alt.Data(name="points"))
        .mark_circle(size=12, opacity=0.6, clip=True)
        .encode(
            x=x,
            y=y,
            color=alt.Color("source:N", scale=alt.Scale(domain=list(source_domain), range=["#0072B2", "#D55E00", "#999999"]), title="source"),
            tooltip=[alt.Tooltip("class:N"), alt.Tooltip("source:N"), alt.Tooltip("sample_id:N")],
        )
    )
    chart = alt.layer(heat, points).resolve_scale(color="independent").properties(height=height, usermeta={"embedOptions": {"renderer": renderer}})
    return chart.to_dict(validate=False)


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
    return pdk.Deck(layers=[layer], views=[view], initial_view_state=state, map_style=None, tooltip={"text": "{class}\n{source}\n{sample_id}"})
