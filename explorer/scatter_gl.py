"""The Explore page's WebGL scatter: every point of the embedding drawn on the GPU.

A Streamlit v2 component (`st.components.v2`) whose script is regl-scatterplot bundled into
``explorer/static/scatter_gl.js`` (built from ``explorer/frontend/``; `SCRIPT_SHA256` pins
the shipped file). The per-point arrays never ride the websocket: `gl_points` and
`gl_colours` put them in the local data server's blob store (`explorer.blobs`) and the
component's data carries only their URLs, the selection's few marks and the legend, so a
click sends a few hundred bytes and the browser keeps the points it has.

Events come back as component triggers, read at the start of the next run
(`pending_click`, `pending_lasso`, `pending_zoom`); a browser without WebGL says so in the component's
state (`webgl_missing`) and the page falls back to the Vega scatter.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from explorer import charts
from explorer.colouring import colour_ramp
from explorer.thumbs import SCRIPT_ROUTE, ThumbnailServer

COMPONENT = "dmd2viz_scatter_gl"
KEY = "scatter-gl"  # the component's widget key for its whole life: the browser keeps its points
SCRIPT = Path(__file__).with_name("static") / "scatter_gl.js"
SCRIPT_SHA256 = "808bb40bf7e0e19021b47449cc740517d14edf260992cc35b139ee8fe8d650c8"  # `make scatter-js` prints the new one
HEIGHT = 560
RAMP_STEPS = 64
MISSING_COLOUR = "#d4d4d4"  # a NaN value: the grey of "other"
MAX_POLYGON_VERTICES = 2000

# The component's own code is this loader; it imports the bundle from the data server (one
# cached module per page), so the 230 kB script never rides a rerun.
LOADER = """
export default function (component) {
  let cleanup = null;
  let gone = false;
  import(component.data.module)
    .then((module) => { if (!gone) cleanup = module.mount(component); })
    .catch((error) => component.setStateValue('failed', String(error)));
  return () => { gone = true; if (cleanup) cleanup(); };
}
"""



@cache
def _component() -> Any:
    """The registered component (once per process; Streamlit keeps components by name)."""
    import streamlit as st

    return st.components.v2.component(COMPONENT, js=LOADER, isolate_styles=False)  # its CSS ships in the bundle


def script_digest() -> str:
    """sha256 of the shipped script (tests compare it with `SCRIPT_SHA256`)."""
    return hashlib.sha256(SCRIPT.read_bytes()).hexdigest()


@dataclass(frozen=True)
class GLPoints:
    """One embedding's points in the blob store: URLs of x, y (float32) and sample rows (int32)."""

    n: int
    x: str
    y: str
    rows: str
    centre: tuple[float, float]
    half: float  # half the side of the square the points are normalised into [-1, 1] by
    token: str  # names these points in events and hover facts: (embedding, rotation, lake version)

    def message(self) -> dict[str, Any]:
        return {"n": self.n, "x": self.x, "y": self.y, "rows": self.rows, "centre": list(self.centre), "half": self.half}


def gl_points(server: ThumbnailServer, xy: np.ndarray, sample_rows: np.ndarray, token: str) -> GLPoints:
    """Put an embedding's coordinates and sample rows in the blob store (content-named: repeats cost a hash)."""
    xy = np.asarray(xy, dtype=np.float32)
    finite = xy[np.isfinite(xy).all(axis=1)]
    low, high = (finite.min(axis=0), finite.max(axis=0)) if len(finite) else (np.zeros(2), np.ones(2))
    centre = (float(low[0] + high[0]) / 2, float(low[1] + high[1]) / 2)
    half = float(max(high[0] - low[0], high[1] - low[1], 1e-9)) / 2 * 1.04  # a margin so edge points stay whole
    put = server.blobs.put
    x, y = put(np.ascontiguousarray(xy[:, 0])), put(np.ascontiguousarray(xy[:, 1]))
    rows = put(np.asarray(sample_rows, dtype=np.int32))
    url = server.blob_url
    return GLPoints(len(xy), url(x), url(y), url(rows), centre, half, token)


def still_served(server: ThumbnailServer, urls: list[str]) -> bool:
    """Whether every blob URL is still in the store (a memoised message must not point at a dropped blob)."""
    return all(server.blobs.touch(u.rsplit("/", 1)[-1].removesuffix(".bin")) for u in urls)


def gl_colours(server: ThumbnailServer, colour: charts.ColorSpec, column: Any, n: int) -> dict[str, Any]:
    """The colour message: a URL of per-point codes (uint16, categorical) or ramp positions (float32), and the legend."""
    values = column(np.arange(n, dtype=np.int64))
    if colour.nominal:
        codes = np.asarray(getattr(values, "codes", values), dtype=np.uint16)
        domain = list(colour.domain or ())
        colours = list(colour.colours or charts.CATEGORICAL_COLOURS.get(colour.palette, charts.OKABE_ITO))[: max(len(domain), 1)]
        name = server.blobs.put(codes)
        legend = [[str(label), colours[i] if i < len(colours) else charts.OTHER_COLOUR] for i, label in enumerate(domain)]
        return {"kind": "category", "url": server.blob_url(name), "colours": colours, "legend": legend, "title": colour.title,
                "key": f"{name}:{','.join(colours)}"}  # fmt: skip
    numbers = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(numbers)
    low, high = (float(numbers[finite].min()), float(numbers[finite].max())) if finite.any() else (0.0, 1.0)
    scaled = (numbers - low) / (high - low if high > low else 1.0)
    # Position 0 is the grey of a missing value; the ramp fills (0, 1].
    position = np.where(finite, (1 + np.clip(scaled, 0, 1) * (RAMP_STEPS - 1)) / RAMP_STEPS, 0.0).astype(np.float32)
    colours = [MISSING_COLOUR, *colour_ramp(colour.palette, RAMP_STEPS)]
    name = server.blobs.put(position)
    return {"kind": "value", "url": server.blob_url(name), "colours": colours, "legend": [], "title": colour.title,
            "range": [f"{low:.4g}", f"{high:.4g}"], "key": f"{name}:{colour.palette}"}  # fmt: skip


def gl_filter(server: ThumbnailServer, visible: np.ndarray) -> str | None:
    """The URL of the visible points as a little-endian bitmask, or None when every point is visible."""
    if bool(np.all(visible)):
        return None
    return server.blob_url(server.blobs.put(np.packbits(np.asarray(visible, dtype=bool), bitorder="little")))


def gl_marks(roles: dict[int, str]) -> dict[str, Any]:
    """The selection's highlights as point indices: the selected point, k-NN rings and manual rings."""
    selected = [r for r, role in roles.items() if role == "selected"]
    return {
        "selected": int(selected[0]) if selected else -1,
        "knn": sorted(int(r) for r, role in roles.items() if role == "knn"),
        "manual": sorted(int(r) for r, role in roles.items() if role == "manual"),
    }


def script_url(server: ThumbnailServer) -> str:
    """The bundle's URL on the data server, versioned by its digest (the browser caches it for good)."""
    return f"{server.origin}{SCRIPT_ROUTE}?v={SCRIPT_SHA256[:16]}"


def draw(message: dict[str, Any]) -> Any:
    """Mount (or update) the scatter with one message; returns the component's result."""
    return _component()(key=KEY, data=message, default={"webgl": True, "failed": ""}, height="content",
                        on_click_change=_ignore, on_lasso_change=_ignore, on_zoom_change=_ignore, on_webgl_change=_ignore,
                        on_failed_change=_ignore)  # fmt: skip


def _ignore() -> None:
    """Events are read from session state at the start of the next run (`pending_click`), not in callbacks."""


def _state(session_state: Any) -> dict[str, Any]:
    try:
        return dict(session_state[KEY])
    except (KeyError, TypeError):
        return {}


NO_WEBGL = "scatter_gl_missing"  # session-state key: why this browser session cannot draw the WebGL scatter


def webgl_missing(session_state: Any) -> str | None:
    """Why the browser cannot draw the WebGL scatter (no WebGL, or the script failed), or None.

    Remembered for the browser session: once the page draws the Vega scatter instead, the
    component is no longer mounted and its own state goes, so without this every rerun would
    mount it again, hear again that WebGL is missing, and rerun once more.
    """
    if session_state.get(NO_WEBGL):
        return str(session_state[NO_WEBGL])
    state = _state(session_state)
    reason = "this browser has no WebGL" if state.get("webgl") is False else str(state["failed"]) if state.get("failed") else None
    if reason:
        session_state[NO_WEBGL] = reason
    return reason


def pending_click(session_state: Any, token: str, size: int) -> int | None:
    """The point index a click on the scatter chose for this run (None: no click, or one on other points)."""
    event = _state(session_state).get("click")
    if not isinstance(event, dict) or event.get("token") != token:
        return None
    index = event.get("index")
    return int(index) if isinstance(index, int) and 0 <= index < size else None


def pending_lasso(session_state: Any, token: str) -> np.ndarray | None:
    """The polygon (data coordinates, (k, 2)) a lasso drew on the scatter for this run, or None."""
    event = _state(session_state).get("lasso")
    if not isinstance(event, dict) or event.get("token") != token:
        return None
    try:
        polygon = np.asarray(event.get("polygon"), dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if polygon.ndim != 2 or polygon.shape[1] != 2 or not 3 <= len(polygon) <= MAX_POLYGON_VERTICES or not np.isfinite(polygon).all():
        return None
    return polygon


def pending_zoom(session_state: Any, token: str) -> tuple[bool, tuple[float, float, float, float] | None]:
    """(whether a box zoom or a reset came this run, the new window: x0, x1, y0, y1, or None to show everything)."""
    event = _state(session_state).get("zoom")
    if not isinstance(event, dict) or event.get("token") != token or "window" not in event:
        return False, None
    window = event["window"]
    if window is None:
        return True, None
    try:
        x0, x1, y0, y1 = (float(v) for v in window)
    except (TypeError, ValueError):
        return False, None
    if not all(np.isfinite((x0, x1, y0, y1))) or x1 <= x0 or y1 <= y0:
        return False, None
    return True, (x0, x1, y0, y1)
