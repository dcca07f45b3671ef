"""End to end in a real browser on the hand-made `small_lake` (tests/explorer/conftest.py).

Hover shows a thumbnail served by the app's thumbnail server, a click selects a point and
lists its neighbours with thumbnails, a second click adds a manual neighbour, and the
selection export downloads a CSV with exactly those rows. The full tour of the explorer
runs on the lake `make demo` builds (test_browser_demo.py); this module keeps a lake with
other ids, classes and stored k (8 < the default k of 10, so the neighbours come from the
PCA scores) covered. Every interaction goes through `browser.Explorer`, which fails on any
error box or exception element.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import pytest
from browser import (
    Explorer,
    chromium,
    explorer_page,
    register_log_plugin,
    require_chromium,
    start_explorer,
)

require_chromium()


@pytest.fixture(scope="module")
def small_server(small_lake: Any, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Any:
    register_log_plugin(request.config)
    server = start_explorer(small_lake.path, tmp_path_factory.mktemp("small_explorer") / "streamlit.log")
    yield server
    server.stop()


@pytest.fixture
def app(small_server: Any, request: pytest.FixtureRequest) -> Any:
    with chromium() as browser, explorer_page(browser, small_server, request.node.name) as explorer:
        explorer.goto()
        yield explorer


def _assert_selected_drawn(app: Explorer, sample_id: str) -> None:
    roles = app.roles()
    assert [s for s, r in roles.items() if r == "selected"] == [sample_id], roles


def test_hover_click_neighbours_and_export_in_chromium(app: Explorer, small_lake: Any) -> None:
    from playwright.sync_api import expect

    assert sorted(p.sample_id for p in app.points()) == sorted(small_lake.sample_ids)

    # Hover: a tooltip with the thumbnail (served by URL, loaded by the browser) and the labels.
    target = app.free_point(lambda p: p.source == "real")
    tooltip = app.hover(target)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/thumb/\d+\.png", tooltip.locator("img").get_attribute("src") or "")
    assert app.page.evaluate("() => document.querySelector('#vg-tooltip-element img').naturalWidth") == 64
    app.screenshot("hover")

    # Click: the point is selected; its neighbours are listed with thumbnails.
    app.click(target)
    details = app.details()
    expect(details.get_by_text("10 nearest neighbours")).to_be_visible()
    expect(details.get_by_text(target.sample_id, exact=True)).to_be_visible()
    assert app.query()["sel"] == target.sample_id
    assert app.details_images_loaded(1 + 10) == 1 + 10
    assert {p.sample_id for p in app.points()} == set(small_lake.sample_ids)
    app.eventually(lambda: _assert_selected_drawn(app, target.sample_id))

    # A second click on a point of another class toggles a manual neighbour in.
    cls = next(p.cls for p in app.points() if p.sample_id == target.sample_id)
    highlighted = app.roles()
    other = app.free_point(lambda p: p.cls != cls and p.sample_id not in highlighted)
    app.click(other)
    expect(details.get_by_text("1 manual neighbours")).to_be_visible()
    assert app.details_images_loaded(1 + 10 + 1) == 1 + 10 + 1
    app.screenshot("selected")

    # Export: the CSV holds the selected point, its 10 neighbours and the manual one.
    exported = pd.read_csv(app.download("Export selection (CSV)"))
    assert exported["role"].tolist() == ["selected"] + ["knn"] * 10 + ["manual"]
    assert exported["sample_id"].iloc[0] == target.sample_id
    assert exported["sample_id"].iloc[-1] == other.sample_id
    assert (np.diff(exported["distance"].iloc[1:11].to_numpy()) >= 0).all()
    # The lake stores 8 neighbours per sample: 10 come from a brute-force search of the PCA scores.
    assert set(exported["distance_space"].iloc[1:11]) == {"activation (PCA scores, brute force)"}
