"""The WebGL half of `bench_explorer_browser.py`: the same interactions, timed on the GPU scatter.

The scatter draws into a WebGL canvas, so points are found through the component's page
hook (`.dmd2-scatter`'s `__dmd2scatter`) rather than by reading pixels, and "drawn" means
the component has applied Python's message (its queue is empty) with the expected points.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

HOOK = "document.querySelector('.dmd2-scatter')?.__dmd2scatter"
JS_READY = f"() => {{ const s = {HOOK}; return !!s && s.pending === 0 && !!s.n && s.root.dataset.ready !== undefined; }}"
JS_TOOLTIP_IMAGE = """() => {
  const t = document.querySelector('.dmd2-tooltip.visible');
  const img = t && t.querySelector('img');
  return !!img && img.complete && img.naturalWidth > 0;
}"""
# Time per frame while the view changes: move the camera, wait for the library's `draw`
# event, repeat; the median of those intervals (GPU work included: regl draws synchronously).
JS_FRAME_TIME = f"""async (frames) => {{
  const s = {HOOK}, sp = s.scatterplot, times = [];
  const distance = sp.get('cameraDistance');
  for (let k = 0; k < frames; k += 1) {{
    const drawn = new Promise((resolve) => sp.subscribe('draw', resolve, 1));
    const start = performance.now();
    sp.set({{ cameraDistance: distance * (1 + 0.02 * ((k % 10) - 5)) }});
    await drawn;
    times.push(performance.now() - start);
  }}
  sp.set({{ cameraDistance: distance }});
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}}"""


def wait_ready(page: Any, timeout_s: float = 180.0) -> None:
    page.wait_for_function(JS_READY, timeout=timeout_s * 1000, polling="raf")


def points_drawn(page: Any) -> int:
    """How many points the scatter draws, read from the page (the library's own count)."""
    return int(page.evaluate(f"() => {HOOK}.pointsDrawn()"))


def spread_points(page: Any, count: int) -> list[int]:
    """`count` point indices spread evenly over the points' order (a click or hover there reaches a point: at 1.28M
    points another may be drawn over it, which is what a user's click reaches too)."""
    return list(page.evaluate(
        f"""(count) => {{
          const s = {HOOK}, box = s.canvas.getBoundingClientRect(), picked = [];
          for (let k = 0; k < count * 20 && picked.length < count; k += 1) {{
            const i = Math.floor((k * 7919 * 104729) % s.n), p = s.pagePosition(i);
            if (p && p[0] > box.left + 10 && p[0] < box.right - 10 && p[1] > box.top + 10 && p[1] < box.bottom - 10) picked.push(i);
          }}
          return picked;
        }}""",
        count,
    ))  # fmt: skip


def page_position(page: Any, index: int) -> tuple[float, float]:
    x, y = page.evaluate(f"(i) => {HOOK}.pagePosition(i)", index)
    return float(x), float(y)


def hover(page: Any, index: int) -> float | None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.mouse.move(5, 5)
    page.wait_for_function("() => !document.querySelector('.dmd2-tooltip.visible')", timeout=5000)
    at = page_position(page, index)
    start = time.perf_counter()
    page.mouse.move(*at)
    try:
        page.wait_for_function(JS_TOOLTIP_IMAGE, timeout=3000, polling="raf")
    except PlaywrightTimeout:  # the library's hover did not land on a point
        return None
    return time.perf_counter() - start


def timed_change(page: Any, wire: Any, action: Callable[[], None], changed: str) -> dict[str, Any]:
    """Seconds from `action` to the scatter having applied a message where the JS expression `changed` (of `s`) differs."""
    before = page.evaluate(f"() => {{ const s = {HOOK}; return JSON.stringify({changed}); }}")
    start = time.perf_counter()
    action()
    page.wait_for_function(
        f"(old) => {{ const s = {HOOK}; return !!s && s.pending === 0 && JSON.stringify({changed}) !== old; }}",
        arg=before, timeout=120_000, polling="raf",
    )  # fmt: skip
    seconds = time.perf_counter() - start
    wire.idle(start)
    server, received = wire.since(start)
    return {"browser_s": round(seconds, 3), "server_s": server, "ws_bytes": received}


def frame_time_ms(page: Any, frames: int = 30) -> float:
    return round(float(page.evaluate(JS_FRAME_TIME, frames)), 2)


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None
