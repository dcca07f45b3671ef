"""Altair (and pydeck) chart builders. Inputs are small frames the app has already
filtered, sampled or binned; nothing here touches the lake.

Point marks carry only coordinates, ids and labels; the hover thumbnail is a URL the
browser builds from the sample row (`transform_calculate`), so no image bytes travel
with the chart.
"""
from __future__ import annotations

from dataclasses import dataclass
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


def _cells_frame(cells: tuple[np.ndarray, ...], value: str) -> Any:
    import pandas as pd

    x0, x1, y0, y1, v = cells
    return pd.DataFrame({"x": x0, "x2": x1, "y": y0, "y2": y1, value: v})


def _axes(extent: Window) -> tuple[Any, Any]:
    import altair as alt

    x0, x1, y0, y1 = extent
    x = alt.X("x:Q", title=None, scale=alt.Scale(domain=[x0, x1], nice=False, zero=False))
    y = alt.Y("y:Q", title=None, scale=alt.Scale(domain=[y0, y1], nice=False, zero=False))
    return x, y


def density_layer(cells: tuple[np.ndarray, ...], extent: Window, opacity: float = 0.55, scheme: str = "greys") -> Any:
    """Binned counts as a heatmap (log colour), the overview for points too many to draw."""
    import altair as alt

    x, y = _axes(extent)
    return (
        alt.Chart(_cells_frame(cells, "count"))
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


def scatter_chart(
    points: Any,
    color: ColorSpec,
    extent: Window,
    thumb_base: str,
    background: tuple[np.ndarray, ...] | None = None,
    height: int = 560,
) -> Any:
    """Points with hover thumbnails and a click selection; highlighted roles drawn on top.

    `points` needs columns row, thumb, x, y, sample_id, class, source, role and the
    colour field. Highlights are encoded with fixed values (not new scale categories),
    so the legend never grows when points are clicked.
    """
    import altair as alt

    x, y = _axes(extent)
    pick = alt.selection_point(name=PICK, fields=["sample_id"], on="click", clear=False, toggle=False)
    role_rank = {role: i for i, role in enumerate(ROLES)}
    fill_field = alt.Color(
        f"{color.field}:{'N' if color.nominal else 'Q'}",
        title=color.title,
        scale=color.scale(),
        legend=alt.Legend(symbolLimit=24, labelLimit=220) if color.legend else None,
    )
    chart = (
        alt.Chart(points.assign(role_rank=points["role"].map(role_rank).astype(int)))
        .transform_calculate(image=f"datum.thumb >= 0 ? '{thumb_base}' + datum.thumb + '.png' : null")
        .mark_circle()
        .encode(
            x=x,
            y=y,
            color=alt.condition("datum.role == 'selected'", alt.value(SELECTED_FILL), fill_field),
            size=alt.Size("role:N", scale=alt.Scale(domain=list(ROLES), range=[28, 60, 60, 320]), legend=None),
            stroke=alt.Stroke("role:N", scale=alt.Scale(domain=list(ROLES), range=["#ffffff", RING, RING, "#0b1f66"]), legend=None),
            strokeWidth=alt.StrokeWidth("role:N", scale=alt.Scale(domain=list(ROLES), range=[0, 1.5, 3.5, 1.5]), legend=None),
            opacity=alt.Opacity("role:N", scale=alt.Scale(domain=list(ROLES), range=[0.75, 1, 1, 1]), legend=None),
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
    layers = [chart] if background is None else [density_layer(background, extent, opacity=0.35), chart]
    return (
        alt.layer(*layers)
        .properties(height=height, usermeta={"embedOptions": {"renderer": renderer_for(len(points))}})
        .configure_view(strokeWidth=0)
    )


def overview_chart(cells: tuple[np.ndarray, ...], extent: Window, window: Window | None, height: int = 240) -> Any:
    """The density of every filtered point; drag a box on it to zoom the main plot."""
    import altair as alt
    import pandas as pd

    zoom = alt.selection_interval(name=ZOOM, encodings=["x", "y"])
    heat = density_layer(cells, extent, opacity=1.0, scheme="viridis").add_params(zoom)
    layers = [heat]
    if window is not None:
        x, y = _axes(extent)
        box = pd.DataFrame({"x": [window[0]], "x2": [window[1]], "y": [window[2]], "y2": [window[3]]})
        layers.append(alt.Chart(box).mark_rect(fill=None, stroke=RING, strokeWidth=2).encode(x=x, x2="x2:Q", y=y, y2="y2:Q"))
    return (
        alt.layer(*layers)
        .properties(height=height, usermeta={"embedOptions": {"renderer": "svg"}})
        .configure_view(strokeWidth=0)
    )


def difference_chart(cells: tuple[np.ndarray, ...], extent: Window, points: Any | None, source_domain: tuple[str, ...], height: int = 480) -> Any:
    """Generated-minus-real density (diverging, colour-blind safe) with points coloured by source on top."""
    import altair as alt

    x, y = _axes(extent)
    values = cells[4]
    peak = float(np.abs(values).max()) if len(values) else 1.0
    heat = (
        alt.Chart(_cells_frame(cells, "difference"))
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
    layers = [heat]
    if points is not None and len(points):
        layers.append(
            alt.Chart(points)
            .mark_circle(size=12, opacity=0.6)
            .encode(
                x=x,
                y=y,
                color=alt.Color("source:N", scale=alt.Scale(domain=list(source_domain), range=["#0072B2", "#D55E00", "#999999"]), title="source"),
                tooltip=["class:N", "source:N", "sample_id:N"],
            )
        )
    return alt.layer(*layers).resolve_scale(color="independent").properties(
        height=height, usermeta={"embedOptions": {"renderer": renderer_for(0 if points is None else len(points))}}
    )


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
