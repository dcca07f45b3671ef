"""Benchmark: the Explore page in a real browser (headless Chromium) at ImageNet scale.

Builds the synthetic lake of `bench_explorer.py` (or reuses it: `--keep`, `--lake`),
starts `streamlit run explorer/app.py` on 127.0.0.1 on a free port, drives headless
Chromium with Playwright and times what a person waits for:

* first map visible: from navigation to the scatter's canvas showing its points,
  on a fresh server (cold caches) and on a second visit (warm server, new browser context);
* click to neighbours visible: from the click on a point to the details panel showing
  "nearest neighbours" with every neighbour image loaded; and a later click (a manual
  neighbour) to the "manual neighbours" grid loaded;
* hover to tooltip image: from moving onto a point to the tooltip's thumbnail loaded;
* filter change (source = generated, and back) and colour change (class <-> source):
  from the input to the scatter's pixels changing (Vega) or to the WebGL scatter having
  applied the new filter or colours;
* on the WebGL scatter also the pan/zoom frame time and how many points it draws (read
  from the page); on Vega the number of points it draws is its stratified sample.

Both scatters run in the same invocation on the same lake (`--scatter vega` is the
Explore page before the WebGL scatter, `webgl` after), and the JSON gives their ratios
(vega / webgl, so above 1 means the WebGL scatter is faster).

Beside each browser figure: the server's script time for the same interaction (from
Streamlit's own websocket messages: `new_session` at script start to `script_finished`)
and the websocket bytes the browser received for it. Each interaction is repeated
(`--repeat`) and reported as the median. Prints JSON. Timings on a shared machine are
noisy: the JSON carries the load average.

    python benchmarks/bench_explorer_browser.py [--points 1280000] [--workdir DIR] [--keep] [--lake LAKE]
    python benchmarks/bench_explorer_browser.py --points 20000      # a quick run
"""
from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

CHROMIUM = "/usr/bin/chromium"
# The WebGL scatter's targets (issue 18); the Vega scatter is measured against the same ones.
TARGETS_S = {"first_map_fresh_server": 2.5, "first_map_second_visit": 1.5, "click_to_neighbours": 0.2, "click_manual_neighbour": 0.2, "hover_to_tooltip_image": 0.05, "filter_change": 0.3, "colour_change": 0.3}
TARGET_CLICK_BYTES = 50_000
TARGET_FRAME_MS = 50.0
# The scatter is the first chart on the page (the overview comes after it).
SCATTER = "document.querySelector('[data-testid=\"stVegaLiteChart\"]')?.querySelector('canvas')"

# In the page: a cheap fingerprint of the scatter's pixels (drawn down to 48x48), and the
# positions of inked pixels: coloured, or greyer than the grid lines (#ddd), i.e. points
# (hovering tells points from density cells).
JS_SIGNATURE = f"""() => {{
  const c = {SCATTER};
  if (!c || !c.width) return null;
  const s = document.createElement('canvas'); s.width = 48; s.height = 48;
  const g = s.getContext('2d'); g.drawImage(c, 0, 0, 48, 48);
  const d = g.getImageData(0, 0, 48, 48).data; let h = 0;
  for (let i = 0; i < d.length; i++) h = (h * 31 + d[i]) >>> 0;
  return h;
}}"""
JS_COLOURED = f"""(limit) => {{
  const c = {SCATTER};
  if (!c || !c.width) return [];
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const r = c.getBoundingClientRect(), sx = r.width / c.width, sy = r.height / c.height, out = [];
  const step = Math.max(1, Math.floor(c.width / 90));
  for (let y = 20; y < c.height - 20; y += step) for (let x = 40; x < c.width - 20; x += step) {{
    const i = 4 * (y * c.width + x), mx = Math.max(d[i], d[i + 1], d[i + 2]), mn = Math.min(d[i], d[i + 1], d[i + 2]);
    if (d[i + 3] > 200 && (mx - mn > 90 || mx < 218)) out.push([r.left + x * sx, r.top + y * sy]);
  }}
  const picked = [];
  for (let j = 0; j < out.length && picked.length < limit; j += Math.max(1, Math.floor(out.length / limit))) picked.push(out[j]);
  return picked;
}}"""
JS_TOOLTIP_IMAGE = """() => {
  const t = document.getElementById('vg-tooltip-element');
  if (!t || !t.classList.contains('visible')) return null;
  const img = t.querySelector('img');
  if (!img) return t.innerText.includes('sample id') ? 'no-image' : 'not-a-point';
  return img.complete && img.naturalWidth > 0 ? 'loaded' : null;
}"""
JS_PANEL_READY = """(text) => {
  const md = [...document.querySelectorAll('[data-testid="stMarkdownContainer"]')].find(e => e.innerText.includes(text));
  if (!md) return false;
  const column = md.closest('[data-testid="stColumn"]') || document;
  const imgs = [...column.querySelectorAll('[data-testid="stImage"] img, [data-testid="stImageContainer"] img')];
  return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
}"""


@dataclass
class Wire:
    """The websocket traffic the page received, with arrival times (Playwright events)."""

    frames: list[tuple[float, int, str]] = field(default_factory=list)  # (time, bytes, ForwardMsg type)
    page: Any = None

    def attach(self, page: Any) -> None:
        self.page = page
        from google.protobuf.message import DecodeError
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        def received(payload: Any) -> None:
            now = time.perf_counter()
            data = payload if isinstance(payload, bytes) else payload.encode()
            kind = ""
            try:
                msg = ForwardMsg()
                msg.ParseFromString(data)
                kind = msg.WhichOneof("type") or ""
            except DecodeError:  # not a ForwardMsg: count its bytes all the same
                kind = ""
            self.frames.append((now, len(data), kind))

        page.on("websocket", lambda ws: ws.on("framereceived", received))

    def since(self, start: float) -> tuple[float | None, int]:
        """Server script time (new_session -> script_finished) and bytes received after `start`."""
        after = [f for f in self.frames if f[0] >= start]
        begun = next((t for t, _, k in after if k == "new_session"), None)
        finished = [t for t, _, k in after if k == "script_finished"]
        server = round(finished[-1] - begun, 4) if begun is not None and finished and finished[-1] >= begun else None
        return server, sum(n for _, n, _ in after)

    def idle(self, start: float, timeout: float = 120.0) -> None:
        """Wait (pumping Playwright events) until a script run that began after `start` has finished."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if any(k == "script_finished" for t, _, k in self.frames if t >= start):
                return
            self.page.wait_for_timeout(20)  # Playwright delivers events only inside its own calls
        raise TimeoutError("the app did not finish its script run")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(lake: Path, port: int, log: Path, scatter: str = "vega") -> subprocess.Popen:
    command = [
        sys.executable, "-m", "streamlit", "run", str(REPO / "explorer" / "app.py"),
        "--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", "--", "--lake", str(lake), "--scatter", scatter,
    ]
    process = subprocess.Popen(command, cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as response:
                if response.status == 200:
                    return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"streamlit did not become healthy on port {port}; see {log}")


def wait_js(page: Any, script: str, arg: Any = None, timeout_s: float = 120.0) -> Any:
    return page.wait_for_function(script, arg=arg, timeout=timeout_s * 1000, polling="raf").json_value()


def vega_drawn(page: Any) -> None:
    """The Vega scatter shows coloured points."""
    wait_js(page, f"() => ({JS_COLOURED})(400).length >= 400")


def first_map(browser: Any, url: str, drawn: Callable[[Any], None] = vega_drawn) -> tuple[Any, Wire, dict[str, Any]]:
    """Open the page in a new context; time until `drawn` says the scatter shows its points."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = context.new_page()
    wire = Wire()
    wire.attach(page)
    start = time.perf_counter()
    page.goto(url)
    drawn(page)
    seconds = time.perf_counter() - start
    wire.idle(start)
    server, received = wire.since(start)
    return page, wire, {"browser_s": round(seconds, 3), "server_s": server, "ws_bytes": received}


def point_candidates(page: Any, limit: int = 80) -> list[tuple[float, float]]:
    """Inked pixels spread over the whole plot, in a fixed shuffled order (not row by row from the top)."""
    found = [tuple(p) for p in page.evaluate(JS_COLOURED, limit)]
    random.Random(0).shuffle(found)
    return found


def hover(page: Any, at: tuple[float, float]) -> float | None:
    """Seconds from moving onto `at` to the tooltip's image loaded; None when `at` is not a point."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.mouse.move(5, 5)
    page.wait_for_function("() => !document.querySelector('#vg-tooltip-element.visible')", timeout=5000)
    start = time.perf_counter()
    page.mouse.move(*at)
    try:
        state = wait_js(page, JS_TOOLTIP_IMAGE, timeout_s=2.0)
    except PlaywrightTimeout:  # no tooltip: a gap between points
        return None
    return time.perf_counter() - start if state == "loaded" else None


def timed_change(page: Any, wire: Wire, action: Callable[[], None]) -> dict[str, Any]:
    """Seconds from `action` to the scatter's pixels changing, with the server time and bytes."""
    before = page.evaluate(JS_SIGNATURE)
    start = time.perf_counter()
    action()
    wait_js(page, f"(old) => {{ const s = ({JS_SIGNATURE})(); return s !== null && s !== old; }}", before)
    seconds = time.perf_counter() - start
    wire.idle(start)
    server, received = wire.since(start)
    return {"browser_s": round(seconds, 3), "server_s": server, "ws_bytes": received}


def timed_panel(page: Any, wire: Wire, action: Callable[[], None], text: str) -> dict[str, Any]:
    start = time.perf_counter()
    action()
    try:
        wait_js(page, JS_PANEL_READY, text, timeout_s=60)
    except Exception:
        page.screenshot(path=str(Path(tempfile.gettempdir()) / f"bench_explorer_browser_failed_{text.split()[0]}.png"))
        raise
    seconds = time.perf_counter() - start
    wire.idle(start)
    server, received = wire.since(start)
    return {"browser_s": round(seconds, 3), "server_s": server, "ws_bytes": received}


def choose(page: Any, label: str, option: str) -> None:
    """Pick `option` in the sidebar selectbox/multiselect labelled `label` (typing filters the list)."""
    widget = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"], [data-testid="stSidebar"] [data-testid="stMultiSelect"]').filter(has_text=label).first
    widget.locator("input").click()
    page.keyboard.type(option)
    page.keyboard.press("Enter")
    page.mouse.click(5, 900)  # close the dropdown


def clear_multiselect(page: Any, label: str) -> None:
    widget = page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]').filter(has_text=label).first
    widget.locator("input").click()
    page.keyboard.press("Backspace")
    page.mouse.click(5, 900)


def clear_selection(page: Any, wire: Wire) -> None:
    start = time.perf_counter()
    page.get_by_role("button", name="Clear selection and manual neighbours").click()
    page.wait_for_function("() => ![...document.querySelectorAll('[data-testid=\"stMarkdownContainer\"]')].some(e => e.innerText.includes('nearest neighbours'))", timeout=60000)
    wire.idle(start)


def first_maps(browser: Any, url: str, repeat: int, figures: dict[str, Any], drawn: Callable[[Any], None]) -> tuple[Any, Wire]:
    """The first map on a fresh server, then `repeat` second visits (into `figures`); a page left open for the rest."""
    page, _, figures["first_map_fresh_server"] = first_map(browser, url, drawn)
    page.context.close()
    visits = []
    for _ in range(repeat):
        page, _, result = first_map(browser, url, drawn)
        visits.append(result)
        page.context.close()
    figures["first_map_second_visit"] = median(visits)
    page, wire, _ = first_map(browser, url, drawn)
    return page, wire


def median(results: list[dict[str, Any]]) -> dict[str, Any]:
    def med(key: str) -> Any:
        values = [r[key] for r in results if r.get(key) is not None]
        return round(statistics.median(values), 4) if values else None

    return {"browser_s": med("browser_s"), "server_s": med("server_s"), "ws_bytes": med("ws_bytes"), "runs": [r["browser_s"] for r in results]}


def drive_vega(lake: Path, repeat: int, log: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    port = free_port()
    server = start_server(lake, port, log, "vega")
    url = f"http://127.0.0.1:{port}/"
    figures: dict[str, Any] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            page, wire = first_maps(browser, url, repeat, figures, vega_drawn)
            candidates = point_candidates(page)
            hovers, points = [], []
            for at in candidates:
                seconds = hover(page, at)
                if seconds is not None:
                    points.append(at)
                    hovers.append({"browser_s": round(seconds, 3), "server_s": 0.0, "ws_bytes": 0})
                if len(points) >= 2 * repeat + 2:
                    break
            if len(points) < 2:
                raise RuntimeError(f"found only {len(points)} hoverable points among {len(candidates)} coloured pixels")
            figures["hover_to_tooltip_image"] = median(hovers)

            clicks, manual = [], []
            for i in range(repeat):
                first = points[i % len(points)]
                # the manual neighbour far from the first point: not under its highlight rings
                second = max(points, key=lambda p, f=first: (p[0] - f[0]) ** 2 + (p[1] - f[1]) ** 2)
                page.mouse.move(5, 5)  # no tooltip left over from the hovers covers the point
                page.wait_for_function("() => !document.querySelector('#vg-tooltip-element.visible')", timeout=5000)
                clicks.append(timed_panel(page, wire, lambda at=first: page.mouse.click(*at), "10 nearest neighbours"))
                manual.append(timed_panel(page, wire, lambda at=second: page.mouse.click(*at), "1 manual neighbours"))
                clear_selection(page, wire)
            figures["click_to_neighbours"] = median(clicks)
            figures["click_manual_neighbour"] = median(manual)

            filters, colours = [], []
            for _ in range(repeat):
                filters.append(timed_change(page, wire, lambda: choose(page, "Source", "generated")))
                filters.append(timed_change(page, wire, lambda: clear_multiselect(page, "Source")))
                colours.append(timed_change(page, wire, lambda: choose(page, "Colour by", "source")))
                colours.append(timed_change(page, wire, lambda: choose(page, "Colour by", "class")))
            figures["filter_change"] = median(filters)
            figures["colour_change"] = median(colours)
            caption = page.get_by_text("filtered points in view").first.inner_text()
            drawn = re.search(r"drawing (?:a stratified sample of|all) ([\d,]+)", caption)
            figures["points_drawn"] = int(drawn.group(1).replace(",", "")) if drawn else None
            browser.close()
    finally:
        stop(server)
    return with_targets(figures)


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()


def with_targets(figures: dict[str, Any]) -> dict[str, Any]:
    for name, target in TARGETS_S.items():
        figures[name]["target_s"] = target
        measured = figures[name].get("browser_s")
        figures[name]["meets_target"] = measured is not None and measured <= target
    return figures


def drive_gl(lake: Path, repeat: int, log: Path) -> dict[str, Any]:
    """The same interactions on the WebGL scatter (`explorer_gl_drive`), plus frame time and points drawn."""
    import explorer_gl_drive as gl
    from playwright.sync_api import sync_playwright

    port = free_port()
    server = start_server(lake, port, log, "webgl")
    url = f"http://127.0.0.1:{port}/"
    figures: dict[str, Any] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            page, wire = first_maps(browser, url, repeat, figures, gl.wait_ready)
            points = gl.spread_points(page, 4 * repeat + 2)
            hovers = [h for h in (gl.hover(page, i) for i in points[: 2 * repeat + 2]) if h is not None]
            figures["hover_to_tooltip_image"] = {**median([{"browser_s": round(h, 3), "server_s": 0.0, "ws_bytes": 0} for h in hovers]), "hovered": len(hovers)}
            clicks, manual = [], []
            for i in range(repeat):
                first, second = gl.page_position(page, points[2 * i]), gl.page_position(page, points[2 * i + 1])
                clicks.append(timed_panel(page, wire, lambda at=first: page.mouse.click(*at), "10 nearest neighbours"))
                manual.append(timed_panel(page, wire, lambda at=second: page.mouse.click(*at), "1 manual neighbours"))
                clear_selection(page, wire)
            figures["click_to_neighbours"] = median(clicks)
            figures["click_manual_neighbour"] = median(manual)
            filters, colours = [], []
            for _ in range(repeat):
                filters.append(gl.timed_change(page, wire, lambda: choose(page, "Source", "generated"), "s.pointsDrawn()"))
                filters.append(gl.timed_change(page, wire, lambda: clear_multiselect(page, "Source"), "s.pointsDrawn()"))
                colours.append(gl.timed_change(page, wire, lambda: choose(page, "Colour by", "source"), "s.state.colourKey"))
                colours.append(gl.timed_change(page, wire, lambda: choose(page, "Colour by", "class"), "s.state.colourKey"))
            figures["filter_change"] = median(filters)
            figures["colour_change"] = median(colours)
            figures["pan_zoom_frame_ms"] = {"median_ms": gl.frame_time_ms(page), "target_ms": TARGET_FRAME_MS}
            figures["pan_zoom_frame_ms"]["meets_target"] = figures["pan_zoom_frame_ms"]["median_ms"] <= TARGET_FRAME_MS
            figures["points_drawn"] = gl.points_drawn(page)
            browser.close()
    finally:
        stop(server)
    return with_targets(figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=1_280_000, help="number of samples/points in the synthetic lake (default 1,280,000; e.g. 20000 for a quick run)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to build the lake (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the lake afterwards (reused by a later run with the same --workdir and --points)")
    parser.add_argument("--lake", type=Path, default=None, help="benchmark this existing lake instead of building one (it is never written)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of each interaction; the JSON reports medians (default 3)")
    parser.add_argument("--scatter", choices=("both", "vega", "webgl"), default="both", help="which scatter to drive (default both: before and after in one run)")
    args = parser.parse_args()
    if args.points < 1000:
        parser.error("--points must be at least 1000")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not Path(CHROMIUM).exists():
        parser.error(f"{CHROMIUM} not found: this benchmark drives Debian's chromium")
    if args.lake is not None and not (args.lake / "zarr.json").exists():
        parser.error(f"--lake {args.lake}: not a lake (no zarr.json)")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-explorer-browser-"))
    workdir.mkdir(parents=True, exist_ok=True)
    lake = args.lake or workdir / f"lake-{args.points}"
    try:
        build_s = None
        if args.lake is None and not (lake / "zarr.json").exists():
            from bench_explorer import build_lake

            shutil.rmtree(lake, ignore_errors=True)
            start = time.perf_counter()
            build_lake(lake, args.points)
            build_s = round(time.perf_counter() - start, 1)
        loadavg = [Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None]
        vega = drive_vega(lake, args.repeat, workdir / "streamlit-vega.log") if args.scatter in ("both", "vega") else None
        loadavg.append(Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None)
        webgl = drive_gl(lake, args.repeat, workdir / "streamlit-webgl.log") if args.scatter in ("both", "webgl") else None
        loadavg.append(Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None)
        ratios = None
        if vega and webgl:
            ratios = {name: round(vega[name]["browser_s"] / webgl[name]["browser_s"], 2) for name in TARGETS_S if vega[name]["browser_s"] and webgl[name]["browser_s"]}
            ratios.update({f"{name}_ws_bytes": round(vega[name]["ws_bytes"] / max(webgl[name]["ws_bytes"], 1), 1) for name in ("click_to_neighbours", "filter_change", "colour_change")})
        print(
            json.dumps(
                {
                    "benchmark": "explorer_browser",
                    "lake": str(lake),
                    "points": None if args.lake else args.points,
                    "points_drawn": webgl["points_drawn"] if webgl else vega["points_drawn"] if vega else None,
                    "build_lake_s": build_s,
                    "repeat": args.repeat,
                    "loadavg_before_vega_webgl_end": loadavg,
                    "vega": vega,
                    "webgl": webgl,
                    "ratio_vega_over_webgl": ratios,
                    "webgl_click_bytes_meet_target": webgl["click_to_neighbours"]["ws_bytes"] <= TARGET_CLICK_BYTES if webgl else None,
                },
                indent=2,
            )
        )
    finally:
        if not args.keep and args.workdir is None and args.lake is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
