"""The noise-level animation: the whole cloud played through the sigma frames, in the browser.

A self-contained HTML/JS canvas component (`st.iframe` of an HTML string, script in
``explorer/static/noise_animation.js``), not a Vega-Lite timer: Streamlit runs Vega with
its CSP-safe expression interpreter, where an interpolating `calculate` over 50,000
points per tick is the slow path, while the component draws a frame of 50,000 points
as plain typed-array work. All frames travel once, in the component's HTML (uint16
coordinates quantised to the extent, one palette index per point); the slider and the
Play/Pause button work client-side, so playing never reruns the script. Nothing is
fetched at run time (no CDN).
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).with_name("static") / "noise_animation.js"
MISSING = 65535  # quantised value of a coordinate that was not computed (NaN)
STEPS = 65534  # quantisation steps across the extent: ~1/65,000 of the map, far below a pixel
WIDTH, HEIGHT = 760, 520  # canvas pixels
LEVELS_PER_SECOND = 0.8  # how fast Play moves through the noise levels


@dataclass(frozen=True)
class AnimationFrames:
    """Every frame of the animation, ready to send: one per sigma, highest sigma first."""

    sigmas: tuple[float, ...]  # decreasing (noise goes from high to low as it plays)
    coords: np.ndarray  # (sigmas, points, 2) uint16, quantised to `extent`; MISSING where NaN
    codes: np.ndarray  # (points,) uint8 index into `palette`
    palette: tuple[str, ...]  # "#rrggbb"
    extent: tuple[float, float, float, float]  # x0, x1, y0, y1 of the quantisation (aspect of the canvas)

    @property
    def points(self) -> int:
        return int(self.coords.shape[1])


def fit_extent(xy: np.ndarray, width: int, height: int, margin: float = 0.03) -> tuple[float, float, float, float]:
    """An (x0, x1, y0, y1) box holding every finite point of `xy` (..., 2), widened to the
    canvas aspect ratio so that one data unit is as long across as up (no stretching)."""
    flat = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    flat = flat[np.isfinite(flat).all(axis=1)]
    if len(flat) == 0:
        return (0.0, 1.0, 0.0, 1.0)
    (lo_x, lo_y), (hi_x, hi_y) = flat.min(axis=0), flat.max(axis=0)
    span_x, span_y = max(hi_x - lo_x, 1e-9), max(hi_y - lo_y, 1e-9)
    span_x, span_y = span_x * (1 + 2 * margin), span_y * (1 + 2 * margin)
    # One scale for both axes: the larger of the two the canvas asks for.
    per_pixel = max(span_x / width, span_y / height)
    cx, cy = (lo_x + hi_x) / 2, (lo_y + hi_y) / 2
    half_w, half_h = per_pixel * width / 2, per_pixel * height / 2
    return (float(cx - half_w), float(cx + half_w), float(cy - half_h), float(cy + half_h))


def quantise(xy: np.ndarray, extent: tuple[float, float, float, float]) -> np.ndarray:
    """(..., 2) coordinates as uint16 steps across `extent` (MISSING where either is NaN)."""
    x0, x1, y0, y1 = extent
    xy = np.asarray(xy, dtype=np.float64)
    unit = np.stack([(xy[..., 0] - x0) / (x1 - x0), (xy[..., 1] - y0) / (y1 - y0)], axis=-1)
    finite = np.isfinite(unit).all(axis=-1, keepdims=True)
    steps = np.rint(np.clip(np.where(finite, unit, 0.0), 0.0, 1.0) * STEPS).astype(np.uint16)
    return np.where(finite, steps, np.uint16(MISSING))


def build_frames(coords: np.ndarray, sigmas: np.ndarray, codes: np.ndarray, palette: tuple[str, ...]) -> AnimationFrames:
    """The frames of points `coords` (points, sigmas, 2) in the lake's sigma order.

    Frames are put in decreasing sigma (the order noise is removed in); `codes` index
    `palette` (at most 256 colours).
    """
    if len(palette) > 256:
        raise ValueError(f"at most 256 colours, got {len(palette)}")
    order = np.argsort(-np.asarray(sigmas, dtype=np.float64), kind="stable")
    by_sigma = np.transpose(np.asarray(coords)[:, order, :2], (1, 0, 2))  # (sigmas, points, 2)
    extent = fit_extent(by_sigma, WIDTH, HEIGHT)
    return AnimationFrames(
        sigmas=tuple(float(np.asarray(sigmas)[i]) for i in order),
        coords=np.ascontiguousarray(quantise(by_sigma, extent)),
        codes=np.asarray(codes, dtype=np.uint8),
        palette=tuple(palette),
        extent=extent,
    )


def point_pixels(points: int) -> int:
    """Side of a point's square in canvas pixels: larger while the cloud is sparse, 2 for a dense one."""
    return 4 if points <= 2_000 else 3 if points <= 20_000 else 2


@lru_cache(maxsize=1)
def _script() -> str:
    return SCRIPT.read_text(encoding="utf-8")


def animation_html(frames: AnimationFrames, levels_per_second: float = LEVELS_PER_SECOND) -> str:
    """The component's whole HTML: the canvas, the slider, Play/Pause, the data and the script."""
    data = {
        "n": frames.points,
        "sigmas": list(frames.sigmas),
        "coords": base64.b64encode(frames.coords.astype("<u2").tobytes()).decode("ascii"),
        "codes": base64.b64encode(frames.codes.tobytes()).decode("ascii"),
        "palette": list(frames.palette),
        "levels_per_second": levels_per_second,
        "point_pixels": point_pixels(frames.points),
    }
    # JSON inside <script> must not close the tag: escape every '<' (base64 and numbers have none).
    payload = json.dumps(data).replace("<", "\\u003c")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><style>
body {{ margin: 0; font-family: "Source Sans Pro", sans-serif; font-size: 14px; color: #31333f; }}
#dmd2viz-controls {{ display: flex; align-items: center; gap: 12px; margin: 4px 0 6px; }}
#dmd2viz-slider {{ flex: 1; max-width: 520px; }}
#dmd2viz-play {{ min-width: 72px; padding: 4px 12px; border: 1px solid #ccc; border-radius: 6px; background: #fff; cursor: pointer; }}
#dmd2viz-canvas {{ border: 1px solid #eee; max-width: 100%; }}
</style></head><body>
<div id="dmd2viz-controls">
  <button id="dmd2viz-play" type="button">Play</button>
  <input id="dmd2viz-slider" type="range" min="0" max="1" step="0.01" value="0" aria-label="noise level">
  <span id="dmd2viz-sigma"></span>
</div>
<canvas id="dmd2viz-canvas" width="{WIDTH}" height="{HEIGHT}"></canvas>
<script id="dmd2viz-data" type="application/json">{payload}</script>
<script>{_script()}</script>
</body></html>"""


def component_height() -> int:
    """The iframe height that shows the controls and the whole canvas."""
    return HEIGHT + 56
