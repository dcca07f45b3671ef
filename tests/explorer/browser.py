"""Driving the explorer in a real browser: `streamlit run explorer/app.py` + Playwright + Debian's Chromium.

Shared by the browser tests (`test_browser*.py`):

- `start_explorer` starts one Streamlit server on a lake with the debug switch on
  (`DMD2VIZ_DEBUG=1`: the app re-raises, so a failure shows as an exception element and
  its traceback lands in the server log), and `ServerLogPlugin` attaches that log to the
  report of every failing test that used the server.
- `Explorer` wraps a Playwright page. Every interaction it offers waits for the rerun it
  caused to finish, then fails on any error box or exception element on the page (and on
  any uncaught JavaScript error), so no test can forget the check.

Waiting is by condition only: a page-side counter of script runs (a MutationObserver on
Streamlit's `data-test-script-state` attribute) tells that the rerun an action caused has
started and finished, never a sleep.
"""
from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")
CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS_ENV = "DMD2VIZ_SCREENSHOTS"  # folder for screenshots of key states; unset: none are saved
TIMEOUT_MS = 60_000  # generous: the machine is shared and a first render loads the lake
# `st.error` renders stAlertContentError; `st.exception` (what the debug switch shows) renders
# stException, which also holds a stAlertContentError. Checked on a throwaway app (Streamlit 1.67).
ERROR_SELECTOR = '[data-testid="stException"], [data-testid="stAlertContentError"]'
SCATTER = '[class*="st-key-scatter-"]'  # the main chart; its key changes after every click
OVERVIEW = '[class*="st-key-overview-"]'
POINT_PATHS = "g.mark-symbol.role-mark path"
CAPTION_RE = re.compile(r"([\d,]+) of ([\d,]+) filtered points in view")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]

# Counts script runs in the page: each time Streamlit's app root says "running". An action
# reads the count, acts, then waits for a larger count and "notRunning" - no race with a
# rerun that has not started yet.
_RUN_COUNTER = """
window.__dmd2runs = 0;
new MutationObserver((mutations) => {
  for (const m of mutations) {
    if (m.target.getAttribute('data-test-script-state') === 'running') window.__dmd2runs += 1;
  }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ['data-test-script-state']});
"""

# Every point mark of a Vega chart: its datum (Vega's SVG renderer binds the scenegraph
# item to each element as __data__), its centre on screen, and whether it is the topmost
# element there (a click or hover at that centre reaches it, not a neighbour drawn above).
_POINTS_JS = """
(selector) => [...document.querySelectorAll(selector)].map((p) => {
  const d = (p.__data__ && p.__data__.datum) || {};
  const r = p.getBoundingClientRect();
  const x = r.x + r.width / 2, y = r.y + r.height / 2;
  const inside = x >= 0 && y >= 0 && x < window.innerWidth && y < window.innerHeight;
  return {sample_id: d.sample_id, source: d.source, cls: d.class, role: d.role, data_x: d.x, data_y: d.y,
          fill: p.getAttribute('fill'), x, y, free: inside && document.elementFromPoint(x, y) === p};
})
"""


def require_chromium() -> None:
    """Skip the calling test module without Chromium (fail under CI, where it must be installed)."""
    if CHROMIUM.exists():
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{CHROMIUM} is missing; CI must install Debian's chromium (apt-get install -y chromium)", pytrace=False)
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class StreamlitServer:
    """A running `streamlit run explorer/app.py` and the file its output goes to."""

    url: str
    lake: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    def log(self, limit: int = 20_000) -> str:
        """The end of the server's output (tracebacks of the debug switch land here)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-limit:]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_explorer(
    lake: Path, log_path: Path, timeout: float = 90.0, cwd: Path = ROOT, options: tuple[str, ...] = (), scatter: str = "vega"
) -> StreamlitServer:
    """Start the explorer on `lake` (debug switch on) and wait until Streamlit answers its health check.

    `cwd` is where it runs (`lake` may be relative to it: docs/_tools/screenshots.py runs it in
    the lake's folder so the pages name the lake as after `make demo`); `options` are more
    `streamlit run` options. `scatter` is the Explore page's scatter: these helpers read
    points from Vega's scenegraph ("vega", the fallback); `test_browser_gl.py` drives the
    default WebGL scatter ("webgl") through its own page hook.
    """
    port = _free_port()
    command = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "explorer" / "app.py"),
        "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", *options,
        "--", "--lake", str(lake), "--scatter", scatter,
    ]  # fmt: skip
    env = {**os.environ, "DMD2VIZ_DEBUG": "1", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = StreamlitServer(f"http://127.0.0.1:{port}/", lake, log_path, process)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}:\n{server.log()}")
        try:
            with urllib.request.urlopen(f"{server.url}_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise TimeoutError(f"{server.url} did not answer within {timeout} s:\n{server.log()}")
        time.sleep(0.2)  # polling a health check, not waiting for the page


class ServerLogPlugin:
    """Adds the Streamlit server log to the report of a failing test that used a server."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
        outcome = yield
        report = outcome.get_result()
        if not report.failed:
            return
        for value in getattr(item, "funcargs", {}).values():
            server = value.server if isinstance(value, Explorer) else value
            if isinstance(server, StreamlitServer):
                report.sections.append((f"streamlit server log ({server.log_path})", server.log()))
                return


def register_log_plugin(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("dmd2viz-server-log"):
        config.pluginmanager.register(ServerLogPlugin(), "dmd2viz-server-log")


@dataclass(frozen=True)
class Point:
    """One point mark of a chart, as drawn."""

    sample_id: str
    source: str
    cls: str
    role: str | None  # "selected", "knn", "manual" on a highlight mark; None (or "point") on a plain point
    data_x: float
    data_y: float
    fill: str
    x: float  # centre on screen (CSS pixels)
    y: float
    free: bool  # topmost at its centre: hover and click reach it


class Explorer:
    """A browser page on the explorer. Each action waits for its rerun, then checks for errors."""

    def __init__(self, page: Any, server: StreamlitServer, shots: Path | None) -> None:
        self.page = page
        self.server = server
        self.shots = shots
        self.js_errors: list[str] = []
        page.set_default_timeout(TIMEOUT_MS)
        page.add_init_script(_RUN_COUNTER)
        page.on("pageerror", lambda exc: self.js_errors.append(str(exc)))

    # --- waiting and the error check -------------------------------------------------
    def runs(self) -> int:
        return int(self.page.evaluate("() => window.__dmd2runs || 0"))

    def settle(self, after: int | None = None) -> None:
        """Wait until the app is idle (and, with `after`, has run again since that count); then check for errors."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        floor = -1 if after is None else after
        try:
            self._wait_idle(floor)
        except PlaywrightTimeout as exc:
            self.assert_no_errors()  # an error on the page explains the missing run best
            state = self.page.evaluate(
                "() => [window.__dmd2runs, document.querySelector('[data-testid=\"stApp\"]')?.getAttribute('data-test-script-state')]"
            )
            raise AssertionError(
                f"the app did not finish a new run after the action (script runs before: {floor}, now: {state[0]}, state: {state[1]}): {exc}"
            ) from exc
        self.assert_no_errors()

    def _wait_idle(self, floor: int) -> None:
        self.page.wait_for_function(
            """(floor) => {
              const app = document.querySelector('[data-testid="stApp"]');
              return app && app.getAttribute('data-test-connection-state') === 'CONNECTED'
                && app.getAttribute('data-test-script-state') === 'notRunning' && (window.__dmd2runs || 0) > floor;
            }""",
            arg=floor,
        )

    def assert_no_errors(self) -> None:
        """Fail on any error box or exception element, or any uncaught JavaScript error, with the server log."""
        boxes = self.page.locator(ERROR_SELECTOR)
        texts = boxes.all_inner_texts() if boxes.count() else []
        problems = [f"error on the page: {t.strip()[:2000]}" for t in texts] + [f"JavaScript error: {e}" for e in self.js_errors]
        if problems:
            raise AssertionError("\n".join(problems) + f"\n--- streamlit server log ({self.server.log_path}) ---\n{self.server.log()}")

    @contextmanager
    def rerun(self) -> Iterator[None]:
        """Wrap an action that makes the app rerun: wait for that rerun to finish, then check for errors."""
        before = self.runs()
        yield
        self.settle(after=before)

    def eventually(self, check: Callable[[], T], timeout_ms: int = TIMEOUT_MS) -> T:
        """Retry `check` until it stops failing an assertion, and return its result.

        Vega draws a chart asynchronously after the script run that sent its data has ended,
        so what a test reads from a chart right after a rerun may still be the previous
        drawing; this polls for the expected one (as Playwright's `expect` does for the DOM).
        """
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            try:
                return check()
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                self.page.wait_for_timeout(100)  # a polling interval, not a wait for the page

    def act(self, action: Callable[[], Any]) -> None:
        with self.rerun():
            action()

    # --- navigation -------------------------------------------------------------------
    def goto(self, url: str | None = None) -> None:
        """Open the explorer (or a copied URL of it) and wait for its first complete run."""
        self.page.goto(url or self.server.url)
        self.settle(after=0)

    def query(self) -> dict[str, str]:
        """The page URL's query parameters (the shareable view state)."""
        return {k: v[-1] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(self.page.url).query).items()}

    def screenshot(self, name: str) -> None:
        """Save a full-page screenshot when $DMD2VIZ_SCREENSHOTS names a folder."""
        if self.shots is not None:
            self.shots.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    # --- the scatter ---------------------------------------------------------------------
    def points(self, chart: str = SCATTER) -> list[Point]:
        """Every point mark of a chart (the main scatter by default), once it has drawn them.

        Highlight marks (the selection, drawn over their points) are included, with their role.
        """
        self.page.locator(f"{chart} {POINT_PATHS}").first.wait_for(state="attached")
        self.page.locator(chart).first.scroll_into_view_if_needed()
        self.page.mouse.move(1, 1)  # no tooltip covering points
        self.page.locator("#vg-tooltip-element.visible").wait_for(state="hidden")
        return [Point(**p) for p in self.page.evaluate(_POINTS_JS, f"{chart} {POINT_PATHS}")]

    def roles(self, chart: str = SCATTER) -> dict[str, str]:
        """Highlighted points: sample id -> role ("selected", "knn", "manual"), from the drawn marks."""
        return {p.sample_id: p.role for p in self.points(chart) if p.role and p.role != "point"}

    def free_point(self, where: Callable[[Point], bool], chart: str = SCATTER) -> Point:
        """The first point matching `where` that nothing is drawn over (so hover and click reach it)."""
        points = self.points(chart)
        for point in points:
            if point.free and where(point):
                return point
        raise AssertionError(f"no unobstructed point matches among {len(points)} drawn")

    def hover(self, point: Point) -> Any:
        """Hover a point; wait for its tooltip (with that sample id) and for the thumbnail image to load."""
        self.page.mouse.move(point.x, point.y)
        tooltip = self.page.locator("#vg-tooltip-element")
        row = tooltip.locator("tr", has_text="sample id").locator("td.value")
        from playwright.sync_api import expect

        expect(row).to_have_text(point.sample_id)
        self.page.wait_for_function(
            "() => { const i = document.querySelector('#vg-tooltip-element img'); return i && i.complete && i.naturalWidth > 0; }"
        )
        self.assert_no_errors()
        return tooltip

    def click(self, point: Point) -> None:
        """Click a point (a rerun follows).

        The point is located again by its sample id first: the chart may have been laid
        out anew (a resize, a screenshot) since `point` was read.
        """
        here = self.free_point(lambda p: p.sample_id == point.sample_id)
        with self.rerun():
            self.page.mouse.click(here.x, here.y)

    def click_id(self, sample_id: str) -> None:
        self.click(self.free_point(lambda p: p.sample_id == sample_id))

    # --- widgets -------------------------------------------------------------------------
    def sidebar(self) -> Any:
        return self.page.get_by_test_id("stSidebar")

    def _widget(self, testid: str, label: str) -> Any:
        return self.page.get_by_test_id(testid).filter(has=self.page.get_by_test_id("stWidgetLabel").get_by_text(label, exact=True))

    def _combobox(self, label: str) -> Any:
        # Streamlit 1.67's selectbox and multiselect are react-aria comboboxes labelled by aria-label.
        return self.page.get_by_role("combobox", name=label, exact=True)

    def selectbox_options(self, label: str) -> list[str]:
        """The option labels of a selectbox (opens and closes its list, no rerun)."""
        self._combobox(label).click()
        options = self.page.get_by_role("option")
        options.first.wait_for()
        texts = [t.strip() for t in options.all_inner_texts()]
        self.page.keyboard.press("Escape")
        options.first.wait_for(state="detached")
        return texts

    def choose(self, label: str, option: str) -> None:
        """Pick `option` in the selectbox labelled `label` (a rerun follows, unless it was already chosen)."""
        if self.selected_option(label) == option:
            return
        self._combobox(label).click()
        with self.rerun():
            self.page.get_by_role("option", name=option, exact=True).click()
        from playwright.sync_api import expect

        expect(self._combobox(label)).to_have_value(option)

    def selected_option(self, label: str) -> str:
        return str(self._combobox(label).input_value())

    def multiselect_add(self, label: str, option: str) -> None:
        """Add `option` to the multiselect labelled `label` (a rerun follows).

        On a loaded machine the first click can land while the dropdown is still being laid
        out and select nothing (no rerun, the value absent: seen in CI). Then the dropdown is
        opened again and the option clicked once more; a click that did select is never repeated.
        """
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        before = self.runs()
        self._combobox(label).click()
        self.page.get_by_role("option", name=option, exact=True).click()
        try:
            self.page.wait_for_function("(floor) => (window.__dmd2runs || 0) > floor", arg=before, timeout=10_000)
        except PlaywrightTimeout:
            if option not in self.multiselect_values(label):
                self.page.keyboard.press("Escape")
                self._combobox(label).click()
                self.page.get_by_role("option", name=option, exact=True).click()
        self.settle(after=before)
        self.page.keyboard.press("Escape")

    def multiselect_values(self, label: str) -> list[str]:
        # Each chosen value is a tag span carrying its label (the <template> copy is not rendered).
        tags = self._widget("stMultiSelect", label).locator(".react-aria-ComboBox [data-tag]")
        return [str(t.get_attribute("aria-label")) for t in tags.all()]

    def type_and_enter(self, label: str, text: str) -> None:
        """Type into the text input labelled `label` and press Enter (a rerun follows)."""
        field = self._widget("stTextInput", label).locator("input")
        field.fill(text)
        with self.rerun():
            field.press("Enter")

    def button(self, name: str) -> None:
        """Click a button (a rerun follows)."""
        with self.rerun():
            self.page.get_by_role("button", name=name, exact=True).click()

    def radio(self, option: str) -> None:
        """Pick a radio option by its label (a rerun follows)."""
        with self.rerun():
            self.page.get_by_test_id("stRadio").get_by_text(option, exact=True).click()

    def download(self, name: str) -> Path:
        """Click a download button and return the downloaded file (download buttons do not rerun)."""
        with self.page.expect_download() as info:
            self.page.get_by_role("button", name=re.compile(re.escape(name))).click()
        path = Path(info.value.path())
        self.assert_no_errors()
        return path

    # --- what the page says --------------------------------------------------------------
    def in_view(self) -> tuple[int, int]:
        """(points in view, filtered points) from the scatter's caption."""
        caption = self.page.get_by_text(CAPTION_RE)
        caption.wait_for()
        match = CAPTION_RE.search(caption.inner_text())
        assert match, caption.inner_text()
        return int(match.group(1).replace(",", "")), int(match.group(2).replace(",", ""))

    def details(self) -> Any:
        """The details panel: the column holding the "Selected sample" heading."""
        return self.page.get_by_test_id("stColumn").filter(has=self.page.get_by_role("heading", name="Selected sample"))

    def details_images_loaded(self, at_least: int = 1) -> int:
        """Wait until the details panel shows `at_least` images and every one has loaded; return how many there are.

        The panel streams in element by element during a rerun, so "all images present have loaded" alone
        can hold while the later ones are still on their way: the wait needs the count it expects.
        """
        images = self.details().locator('[data-testid="stImage"] img')
        images.first.wait_for()
        self.page.wait_for_function(
            """(atLeast) => {
              const col = [...document.querySelectorAll('[data-testid="stColumn"]')].find((c) => [...c.querySelectorAll('h3')].some((h) => h.innerText.includes('Selected sample')));
              const imgs = col ? [...col.querySelectorAll('[data-testid="stImage"] img')] : [];
              return imgs.length >= atLeast && imgs.every((i) => i.complete && i.naturalWidth > 0);
            }""",
            arg=at_least,
        )
        return images.count()

    def legend_labels(self, chart: str = SCATTER) -> list[str]:
        """The entries of a chart's legend(s), in order (SVG text: textContent, not innerText)."""
        return [t.strip() for t in self.page.locator(f"{chart} g.role-legend-label text").all_text_contents()]

    def legend_titles(self, chart: str = SCATTER) -> list[str]:
        return [t.strip() for t in self.page.locator(f"{chart} g.role-legend-title text").all_text_contents()]


def read_png(data: bytes) -> Any:
    """A screenshot as an (h, w, channels) uint8 array."""
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@contextmanager
def chromium(extra_args: tuple[str, ...] = ()) -> Iterator[Any]:
    """A headless Debian Chromium driven by Playwright (never `playwright install`), with more command-line `extra_args`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=[*CHROMIUM_ARGS, *extra_args])
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def explorer_page(browser: Any, server: StreamlitServer, name: str) -> Iterator[Explorer]:
    """A fresh browser context (its own Streamlit session) on the explorer; errors are checked again at the end."""
    context = browser.new_context(viewport={"width": 1500, "height": 1100}, accept_downloads=True)
    shots = Path(os.environ[SCREENSHOTS_ENV]) / name if os.environ.get(SCREENSHOTS_ENV) else None
    try:
        explorer = Explorer(context.new_page(), server, shots)
        yield explorer
        explorer.assert_no_errors()  # every action settled and checked; this catches what came after
    finally:
        context.close()
