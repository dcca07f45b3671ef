"""Driving the Explore page's WebGL scatter in a real browser (see `browser.py` for the page and its checks).

The scatter draws into a canvas, so there is no element per point to find: these helpers
read what it drew through the page hook the component leaves on its root element
(`.dmd2-scatter`'s `__dmd2scatter`: the point arrays it fetched, where a point is on the
page, the marks it drew, how many points it draws) and act with the mouse at those places.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from browser import Explorer

ROOT = ".dmd2-scatter"
HOOK = f"document.querySelector('{ROOT}')?.__dmd2scatter"  # undefined while Streamlit mounts the component
SELECTED_FILL = (0x14, 0x52, 0xFF)  # the selected point's disc (explorer.charts.SELECTED_FILL)


class GLScatter:
    """The WebGL scatter of one explorer page."""

    def __init__(self, app: Explorer) -> None:
        self.app = app
        self.page = app.page

    def drawn(self) -> dict[str, Any]:
        """Wait until the scatter has drawn and applied every message it received; its data set (points drawn, token)."""
        self.page.locator(f"{ROOT}[data-ready]").wait_for()
        self.page.wait_for_function(f"() => {HOOK}?.pending === 0")
        return dict(self.page.evaluate(f"() => ({{...document.querySelector('{ROOT}').dataset}})"))

    def points_drawn(self) -> int:
        return int(self.drawn()["pointsDrawn"])

    def wait_points_drawn(self, count: int) -> None:
        self.page.wait_for_function(f"(n) => document.querySelector('{ROOT}')?.dataset.pointsDrawn === String(n)", arg=count)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, y, sample rows) as the browser fetched them, in embedding row order."""
        self.drawn()
        x, y, rows = self.page.evaluate(f"() => [Array.from({HOOK}.x), Array.from({HOOK}.y), Array.from({HOOK}.rows)]")
        return np.asarray(x, np.float32), np.asarray(y, np.float32), np.asarray(rows, np.int64)

    def positions(self) -> np.ndarray:
        """(n, 2) page positions (CSS pixels) of every point."""
        self.drawn()
        return np.asarray(self.page.evaluate(f"() => Array.from({{length: {HOOK}.n}}, (_, i) => {HOOK}.pagePosition(i))"), dtype=np.float64)

    def isolated(self, candidates: np.ndarray, clearance: float = 10.0) -> list[int]:
        """Indices among `candidates` with no other drawn point within `clearance` pixels (a click reaches only them)."""
        where = self.positions()
        width = self.page.viewport_size["width"] if self.page.viewport_size else 1500
        found = []
        for i in np.flatnonzero(candidates):
            distance = np.hypot(*(where - where[i]).T)
            distance[i] = np.inf
            if distance.min() > clearance and 0 < where[i, 0] < width:
                found.append(int(i))
        return found

    def frames(self) -> int:
        """How many frames the library has drawn (each one draws every point)."""
        return int(self.page.evaluate(f"() => {HOOK}.frames"))

    def marks(self) -> dict[str, Any]:
        self.drawn()
        return dict(self.page.evaluate(f"() => {HOOK}.marks"))

    def hover(self, index: int) -> dict[str, str]:
        """Move onto point `index`; wait for its tooltip facts and thumbnail; the facts by name."""
        x, y = self.positions()[index]
        self.page.mouse.move(1, 1)
        self.page.mouse.move(x, y)
        tip = self.page.locator(f".dmd2-tooltip.visible[data-ready='{index}']")
        tip.wait_for()
        self.page.wait_for_function("() => { const i = document.querySelector('.dmd2-tooltip img'); return !i || (i.complete && i.naturalWidth > 0); }")
        facts = {}
        for line in tip.locator(".dmd2-fact").all():
            facts[str(line.get_attribute("data-name"))] = line.locator(".dmd2-value").inner_text()
        self.app.assert_no_errors()
        return facts

    def click(self, index: int) -> None:
        """Click point `index` (a rerun follows) and wait until the scatter drew the marks it changed."""
        x, y = self.positions()[index]
        before = self.marks()
        with self.app.rerun():
            self.page.mouse.click(x, y)
        self.page.wait_for_function(f"(before) => {HOOK}?.pending === 0 && JSON.stringify({HOOK}.marks) !== before", arg=_json(before))

    def overlay_pixel(self, index: int) -> tuple[int, int, int, int]:
        """The highlight overlay's colour at point `index`'s centre (alpha 0: nothing drawn there)."""
        return tuple(self.page.evaluate(
            f"""(i) => {{
              const s = {HOOK}; const p = s.scatterplot.getScreenPosition(i); const r = window.devicePixelRatio || 1;
              return Array.from(s.overlay.getContext('2d').getImageData(Math.round(p[0] * r), Math.round(p[1] * r), 1, 1).data);
            }}""",
            index,
        ))  # fmt: skip

    def legend(self) -> list[str]:
        self.drawn()
        return [t.strip() for t in self.page.locator(".dmd2-legend-label").all_inner_texts()]


def _json(value: Any) -> str:
    """`value` as the page's JSON.stringify writes it (no spaces)."""
    return json.dumps(value, separators=(",", ":"))
