"""The Noise levels page in a real Chromium (tests/explorer/browser.py).

On the lake our own CLI builds as `make demo` does (`cli_demo_lake`: a 4-step run, its
probes with stored reconstructions, and `analysis trajectory`), and on the small
hand-written noise lake of test_page_noise.py: open the page, press Play and watch the
animation's frame counter advance without a single script rerun, then click a
multi-step sample on the map and a real image and see each path (drawn in the
selection's blue, one sigma label per vertex) and its image strip loaded, while the
animation plays on (the browser kept the component through the reruns). A screenshot of each state goes to
the test's tmp dir (and to $DMD2VIZ_SCREENSHOTS when set).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from browser import Explorer, chromium, explorer_page, read_png, register_log_plugin, require_chromium, start_explorer

from explorer import charts
from lake import open_lake
from lake.layout import split_t2i_layer

require_chromium()

NOISE_MAP = '[class*="st-key-noise-map"]'
SELECTED_LINE = f'{NOISE_MAP} g.mark-line path[stroke="{charts.SELECTED_FILL}"]'
FRAMES = "() => window.dmd2vizAnimation.frames"


def _animation_frame(app: Explorer) -> Any:
    """The component's iframe, once its script has published the frame counter."""
    def found() -> Any:
        for frame in app.page.frames:
            try:
                if frame.evaluate("() => !!(window.dmd2vizAnimation && window.dmd2vizAnimation.frames > 0)"):
                    return frame
            except Exception:  # a frame still loading or gone: look again
                continue
        raise AssertionError(f"no animation component among {len(app.page.frames)} frames")

    return app.eventually(found)


def _labels(app: Explorer) -> list[str]:
    return [t.strip() for t in app.page.locator(f"{NOISE_MAP} g.mark-text.role-mark text").all_text_contents() if t.strip()]


def _strip_loaded(app: Explorer, count: int) -> None:
    app.page.wait_for_function(
        """(n) => { const imgs = [...document.querySelectorAll('[data-testid="stImage"] img')];
                    return imgs.length === n && imgs.every((i) => i.complete && i.naturalWidth > 0); }""",
        arg=count,
    )


def _blue_pixels(app: Explorer) -> int:
    """Pixels of the selection's blue in a screenshot of the map (the drawn path)."""
    image = read_png(app.page.locator(NOISE_MAP).screenshot()).astype(int)
    blue = np.array(charts.hex_to_rgb(charts.SELECTED_FILL))
    return int((np.abs(image - blue).sum(axis=2) < 40).sum())


def noise_tour(app: Explorer, lake_path: Path, shots: Path) -> None:
    """Select a multi-step sample and a real image on the Noise levels page, then play the animation."""
    lake = open_lake(lake_path)
    # the schedule whose steps are placed in the map's joint embedding (the demo also holds the teacher's heun4)
    schedule = next(s for s in lake.schedules() if s in lake.children(f"analysis/trajectory/{probe_layer(lake)}"))
    steps = lake.schedule_sigmas(schedule)
    app.goto()
    app.radio("Noise levels")
    app.page.locator(NOISE_MAP).wait_for()
    # One noise level's points (fewer than the SVG limit whatever the lake): each is one clickable mark.
    lowest = min(float(s) for s in lake.joint_embedding(probe_layer(lake))["sigma"].values)
    app.radio(f"σ={lowest:.3g}")

    # Play: the frame counter advances in the browser, and the script never reruns.
    frame = _animation_frame(app)
    frame.locator("#dmd2viz-canvas").scroll_into_view_if_needed()
    runs, before = app.runs(), frame.evaluate(FRAMES)
    frame.click("#dmd2viz-play")
    frame.wait_for_function("(n) => window.dmd2vizAnimation.frames > n + 30 && window.dmd2vizAnimation.t > 0", arg=before)
    assert frame.evaluate("() => window.dmd2vizAnimation.playing") is True
    assert frame.locator("#dmd2viz-play").inner_text() == "Pause"
    assert app.runs() == runs
    app.page.screenshot(path=str(shots / "noise-playing.png"))
    app.screenshot("noise-playing")
    played = frame.evaluate(FRAMES)

    # A multi-step sample: its steps' path, one sigma label per step, and its x0_hat strip.
    multi = app.free_point(lambda p: "~" in (p.sample_id or ""), chart=NOISE_MAP)
    with app.rerun():
        app.page.mouse.click(multi.x, multi.y)
    assert app.query()["sel"] == multi.sample_id
    app.page.locator(SELECTED_LINE).first.wait_for()
    app.eventually(lambda: _expect(_labels(app) == [f"σ={s:.3g}" for s in steps], _labels(app)))
    _strip_loaded(app, len(steps))
    app.page.mouse.move(1, 1)  # no tooltip over the path
    assert _blue_pixels(app) > 50
    app.page.screenshot(path=str(shots / "noise-multi-step.png"))
    app.screenshot("noise-multi-step")
    # The click reran the script, yet the browser kept the component: the same document
    # (a reloaded frame would be detached), still playing, its counter going on.
    frame.locator("#dmd2viz-canvas").scroll_into_view_if_needed()
    assert frame.evaluate("() => window.dmd2vizAnimation.playing") is True
    frame.wait_for_function("(n) => window.dmd2vizAnimation.frames > n + 10", arg=played)

    # A real image: its probes' path and, per sigma, the noisy input and the reconstruction,
    # stored by `ingest activations --reconstructions`, or else computed on demand by the
    # lake's probe network when the button asks.
    app.button("Clear selection and manual neighbours")
    probes = len(probe_sigmas(lake))
    try:
        table = lake.reconstructions()
    except KeyError:
        stored: set[str] = set()
    else:
        stored = {str(i) for i, p in zip(table["sample_id"].values, table["probed"].values) if np.asarray(p).any()}
    real = app.free_point(lambda p: p.source == "real" and (p.sample_id in stored or not stored), chart=NOISE_MAP)
    with app.rerun():
        app.page.mouse.click(real.x, real.y)
    assert app.query()["sel"] == real.sample_id
    if not stored:
        app.button(f"Compute its reconstructions at σ = {', '.join(f'{s:g}' for s in sorted(probe_sigmas(lake), reverse=True))}")
    _strip_loaded(app, 2 * probes)
    app.eventually(lambda: _expect(len(_labels(app)) == probes, _labels(app)))
    app.page.mouse.move(1, 1)
    assert _blue_pixels(app) > 50
    app.page.screenshot(path=str(shots / "noise-real.png"))
    app.screenshot("noise-real")
    app.assert_no_errors()


def probe_sigmas(lake: Any) -> list[float]:
    """The sigmas of the first joint embedding (the probes' noise levels)."""
    return [float(s) for s in lake.joint_embedding(probe_layer(lake))["sigma"].values]


def probe_layer(lake: Any) -> str:
    """The joint embedding the page opens with on an ImageNet key: the first ImageNet layer's (a text-to-image
    layer's steps are tested in test_noise_t2i)."""
    return next(layer for layer in lake.joint_embedding_layers() if split_t2i_layer(layer) is None)


def _expect(ok: bool, seen: Any) -> None:
    assert ok, seen


@pytest.fixture(scope="module")
def small_noise_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_page_noise import build_noise_lake

    return build_noise_lake(tmp_path_factory.mktemp("noise_browser") / "lake").path


def _tour_on(lake: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    register_log_plugin(request.config)
    server = start_explorer(lake, tmp_path / "streamlit.log")
    try:
        with chromium() as browser, explorer_page(browser, server, request.node.name) as app:
            noise_tour(app, lake, tmp_path)
    finally:
        server.stop()


def test_noise_page_on_the_cli_built_demo_lake(cli_demo_lake: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    _tour_on(cli_demo_lake, tmp_path, request)


def test_noise_page_on_a_small_hand_written_lake(small_noise_lake: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    _tour_on(small_noise_lake, tmp_path, request)
