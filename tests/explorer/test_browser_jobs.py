"""An edit job from the explorer in Chromium, on a copy of the lake `make demo` builds.

Select a generated sample, ask for 4 variations, and wait: the real `python -m ingest
edit variations` and `python -m analysis place` run in the background, and when they have
committed, the new samples appear on the map as diamonds with a thin line to their parent;
one of them is clicked and its details say it is placed. Every interaction goes through
`browser.Explorer`, which fails on any error box or exception element.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from browser import SCATTER, Explorer, chromium, explorer_page, register_log_plugin, require_chromium, start_explorer

require_chromium()
# The first module to ask for the demo lake also waits for the rest of its build (the session fixture).
pytestmark = pytest.mark.timeout(1800)

N = 4
JOB_TIMEOUT_MS = 600_000  # micro preset on a shared 2-core machine: edit, probe and place take well under this

# The placed samples as drawn: diamonds whose datum carries `placement` (the fitted points' datums do not).
_PLACED_JS = """
(selector) => [...document.querySelectorAll(selector)]
  .filter((p) => p.__data__ && p.__data__.datum && p.__data__.datum.placement)
  .map((p) => ({sample_id: p.__data__.datum.sample_id, placement: p.__data__.datum.placement}))
"""
_LINES_JS = "(selector) => document.querySelectorAll(selector).length"


@pytest.fixture
def jobs_lake(cli_demo_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the demo lake (jobs write), with its own jobs folder."""
    monkeypatch.setenv("DMD2VIZ_JOBS_DIR", str(tmp_path / "jobs"))
    lake = tmp_path / "lake"
    shutil.copytree(cli_demo_lake, lake)
    return lake


@pytest.fixture
def app(jobs_lake: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    register_log_plugin(request.config)
    server = start_explorer(jobs_lake, tmp_path / "streamlit.log")
    try:
        with chromium() as browser, explorer_page(browser, server, request.node.name) as explorer:
            explorer.goto()
            yield explorer
    finally:
        server.stop()


def placed_marks(app: Explorer) -> list[dict[str, str]]:
    return list(app.page.evaluate(_PLACED_JS, f"{SCATTER} g.mark-symbol.role-mark path"))


def lineage_lines(app: Explorer) -> int:
    return int(app.page.evaluate(_LINES_JS, f"{SCATTER} g.mark-rule.role-mark line, {SCATTER} g.mark-rule.role-mark path"))


def test_variations_land_on_the_map_with_lineage_and_select(app: Explorer, jobs_lake: Path) -> None:
    parent = app.free_point(lambda p: p.source == "generated")
    app.click(parent)
    details = app.details()
    assert parent.sample_id in details.inner_text()
    assert not placed_marks(app) and lineage_lines(app) == 0

    n_input = app.page.get_by_test_id("stNumberInput").filter(has=app.page.get_by_text("N", exact=True)).locator("input")
    n_input.fill(str(N))  # inside the form: no rerun until a button is pressed
    app.button("Variations")
    app.screenshot("job-started")

    def landed() -> list[dict[str, str]]:
        app.assert_no_errors()  # a failed job's error box ends the wait at once
        marks = placed_marks(app)
        assert len(marks) == N, f"{len(marks)} placed samples drawn"
        return marks

    marks = app.eventually(landed, timeout_ms=JOB_TIMEOUT_MS)
    app.settle()
    app.screenshot("job-landed")
    ids = sorted(m["sample_id"] for m in marks)
    assert all(i.startswith("edit/variations/") for i in ids)
    assert {m["placement"] for m in marks} == {f"placed, not fitted · variations of {parent.sample_id}"}
    assert app.eventually(lambda: _equal(lineage_lines(app), N)) == N  # one thin line per new sample to its parent
    assert f"{N} placed samples" in app.page.get_by_text("placed samples (diamonds").inner_text()
    # The jobs area reports the job done, and the lake holds exactly what the map shows.
    assert app.page.get_by_text("done in").count() >= 1
    lineage = xr.open_zarr(jobs_lake, group="lineage")
    assert sorted(np.asarray(lineage["sample_id"].values, dtype=object).astype(str)) == ids
    assert set(np.asarray(lineage["parent_ids"].values, dtype=object).astype(str)) == {parent.sample_id}

    # A new point selects like any other: details, its image, its placement and parent.
    app.button("Clear selection and manual neighbours")  # a click now selects (it would toggle a manual neighbour)
    new = app.free_point(lambda p: p.sample_id in ids)
    app.click(new)
    text = app.details().inner_text()
    assert new.sample_id in text and "placed, not fitted" in text and parent.sample_id in text, text[:1500]
    assert app.details_images_loaded() >= 1
    app.screenshot("placed-selected")


def _equal(value: int, expected: int) -> int:
    assert value == expected, f"{value} != {expected}"
    return value
