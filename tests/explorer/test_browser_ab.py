"""The A/B page in a real Chromium (tests/explorer/browser.py), on a copy of the CLI-built demo lake.

The demo's second model (teacher-stand-in) samples 64 images with EDM's Heun sampler from
the same noise and classes as the first model's first 64 one-step samples: a researcher
opens A/B, sees a pair side by side (the pixels the lake holds, on the sides the page
promises), types a name, rates three pairs, and finds each rating in the lake's `ratings`
table (read with xarray), the win rate the page reports equal to scipy's, and the CSV
export equal to the table. A copy, because ratings are written to the lake.
"""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from browser import Explorer, chromium, explorer_page, read_png, register_log_plugin, require_chromium, start_explorer

from explorer.ab_pairs import left_side
from explorer.details import upscale

require_chromium()

RATER = "Your name (saved with each rating)"


@pytest.fixture(scope="module")
def ab_lake(cli_demo_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake = tmp_path_factory.mktemp("ab") / "demo_lake"
    shutil.copytree(cli_demo_lake, lake)
    return lake


def read(lake: Path, group: str) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_zarr(lake, group=group).load()


def expected_pairs(lake: Path) -> list[tuple[str, str, int]]:
    """(student id, teacher id, class) of the demo's pairs, from the samples table alone."""
    samples = read(lake, "samples")
    ids, classes = samples.sample_id.values.tolist(), samples.class_id.values.tolist()
    teacher = {i.rsplit("/", 1)[1]: (i, c) for i, c in zip(ids, classes, strict=True) if "~heun4/" in i}
    student = {i.rsplit("/", 1)[1]: (i, c) for i, c in zip(ids, classes, strict=True) if i.startswith("gen/micro-random-seed0/s0/")}
    return [(student[k][0], teacher[k][0], student[k][1]) for k in sorted(teacher, key=int) if student[k][1] == teacher[k][1]]


def shown_images(app: Explorer) -> list[np.ndarray]:
    """The two images the page shows, as decoded pixels (fetched from the server like the browser did)."""
    images = app.page.get_by_test_id("stMain").get_by_test_id("stImage").locator("img")
    assert images.count() == 2
    found = []
    for k in range(2):
        source = images.nth(k).get_attribute("src")
        assert source
        found.append(read_png(app.page.request.get(app.server.url.rstrip("/") + source if source.startswith("/") else source).body()))
    return found


def test_rate_pairs_blind_then_read_the_win_rate_and_export(ab_lake: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from playwright.sync_api import expect
    from scipy.stats import binomtest

    pairs = expected_pairs(ab_lake)
    assert len(pairs) == 64
    samples = read(ab_lake, "samples")
    image_of = dict(zip(samples.sample_id.values.tolist(), samples.image.values, strict=True))
    register_log_plugin(request.config)
    server = start_explorer(ab_lake, tmp_path / "streamlit.log")
    try:
        with chromium() as browser, explorer_page(browser, server, request.node.name) as app:
            app.goto()
            app.radio("A/B")
            assert app.query()["page"] == "ab"
            main = app.page.get_by_test_id("stMain")
            assert app.selected_option("Models") == "micro (one step) vs teacher-stand-in (heun4) · 64 pairs"
            better = app.page.get_by_role("button", name="Image 1 is better", exact=True)
            expect(better).to_be_disabled()  # no rating without a name

            # Pair 1: the pixels the lake holds, the first model on the side left_side promises.
            student, teacher, class_id = pairs[0]
            left = left_side(student, teacher)
            on_screen = [student, teacher] if left == "first" else [teacher, student]
            for shown, sample_id in zip(shown_images(app), on_screen, strict=True):
                np.testing.assert_array_equal(shown[..., :3], upscale(image_of[sample_id], 4))
            # the layers' activations on the same input: one row per layer both models stored (the bottleneck)
            expect(main.get_by_text("Activations on the same first input")).to_be_visible()
            expect(main.get_by_test_id("stDataFrame")).to_have_count(1)

            app.type_and_enter(RATER, "ada")
            clicks = ["Image 1 is better", "About the same", "Image 2 is better"]
            for number, name in enumerate(clicks, start=1):
                app.button(name)
                expect(main.get_by_text(f"Saved pair {number} for ada")).to_be_visible()
            assert app.page.get_by_label("Pair (1 to 64)").input_value() == "4"  # on to the next pair after each rating
            app.screenshot("ab")

            stored = read(ab_lake, "ratings")
            assert stored.sizes["rating"] == 3
            assert stored.rater.values.tolist() == ["ada"] * 3
            assert stored.first_sample_id.values.tolist() == [p[0] for p in pairs[:3]]
            assert stored.second_sample_id.values.tolist() == [p[1] for p in pairs[:3]]
            sides = [left_side(p[0], p[1]) for p in pairs[:3]]
            assert stored.left.values.tolist() == sides
            other = {"first": "second", "second": "first"}
            assert stored.choice.values.tolist() == [sides[0], "tie", other[sides[2]]]

            wins = stored.choice.values.tolist().count("first")
            decisive = wins + stored.choice.values.tolist().count("second")
            expect(main.get_by_text(f"{wins / decisive:.0%}", exact=True)).to_be_visible()
            interval = binomtest(wins, decisive).proportion_ci(method="wilson")
            expect(main.get_by_text(f"95% Wilson interval {interval.low:.0%} to {interval.high:.0%}")).to_be_visible()

            exported = pd.read_csv(app.download("Download the ratings (CSV)"))
            assert exported.choice.tolist() == stored.choice.values.tolist()
            assert exported.rated_at.tolist() == stored.rated_at.values.tolist()
    finally:
        server.stop()
