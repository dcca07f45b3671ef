"""Run the explorer under Streamlit's AppTest and fail on any error it shows.

The app turns exceptions into a one-line `st.error` box (or, in debug mode, an exception
element), so a test that only looked for exceptions would pass over a broken page.
`CheckedAppTest` checks after every run, whether started by `at.run()` or by a widget
(`at.button[0].click().run()`), that the page holds no error box and no exception.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[2] / "explorer" / "app.py"


def problems(at: AppTest) -> list[str]:
    """Every error box and exception on the page, as text."""
    found = [f"st.error: {e.value}" for e in at.error]
    for exc in at.exception:
        found.append(f"exception: {exc.value}\n" + "".join(exc.stack_trace))
    return found


class CheckedAppTest(AppTest):
    """An AppTest that fails the test as soon as a run shows an error box or an exception."""

    def _run(self, widget_state: Any = None, timeout: float | None = None) -> AppTest:
        at = super()._run(widget_state, timeout)
        shown = problems(at)
        if shown:
            pytest.fail("the explorer showed an error:\n" + "\n".join(shown), pytrace=False)
        return at


def open_app(
    lake: Path, monkeypatch: pytest.MonkeyPatch, query: dict[str, str] | None = None, checked: bool = True, argv: tuple[str, ...] = (),
    scatter: str = "vega",
) -> AppTest:
    """The explorer on `lake` (optionally with URL query parameters), run once.

    `checked=False` gives a plain AppTest, for tests that expect an error on the page.
    `scatter`: AppTest has no browser, so by default the Explore page draws its Vega
    scatter, whose datasets a test can read (`chart_datasets`); "webgl" draws the GPU
    scatter, whose message a test reads with `gl_message`.
    """
    monkeypatch.setenv("DMD2VIZ_LAKE", str(lake))
    monkeypatch.setenv("DMD2VIZ_SCATTER", scatter)
    monkeypatch.setattr("sys.argv", [str(APP), *argv])
    at = (CheckedAppTest if checked else AppTest)(APP, default_timeout=120)
    for name, value in (query or {}).items():
        at.query_params[name] = value
    return at.run()


def chart_datasets(at: AppTest, index: int = 0) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """The spec of the `index`-th Vega-Lite chart and its named datasets as the browser receives them (Arrow)."""
    chart = at.get("vega_lite_chart")[index]
    spec = json.loads(chart.proto.spec)
    return spec, {d.name: pa.ipc.open_stream(d.data.data).read_pandas() for d in chart.proto.datasets}


def scatter_points(at: AppTest) -> pd.DataFrame:
    """The Explore scatter's drawn points (dataset `points`)."""
    _, frames = chart_datasets(at, 0)
    return frames["points"]


def scatter_roles(at: AppTest) -> dict[str, str]:
    """sample id -> role ("selected", "knn", "manual") of the highlighted points of the Explore scatter.

    Read from the highlights dataset (`marks`) where the chart has one, else from the
    points' own `role` column.
    """
    _, frames = chart_datasets(at, 0)
    table = frames.get("marks", frames["points"])
    if "role" not in table:
        return {}
    return {str(i): str(r) for i, r in zip(table["sample_id"], table["role"]) if r != "point"}


def markdown_text(at: AppTest) -> str:
    """All Markdown on the page, joined."""
    return "\n".join(m.value for m in at.markdown)


def gl_message(at: AppTest) -> dict[str, Any]:
    """The data the WebGL scatter component received in the last run."""
    (component,) = [e for e in at.get("bidi_component")]
    return dict(json.loads(component.proto.json))
