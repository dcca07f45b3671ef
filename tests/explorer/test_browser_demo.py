"""The explorer in Chromium on the lake `make demo` builds (the `cli_demo_lake` fixture).

One Streamlit server for the module (debug switch on), one Chromium, a fresh browser
context (so a fresh Streamlit session) per test. Every interaction goes through
`browser.Explorer`, which waits for the rerun it caused and fails on any error box or
exception element; the server log is attached to every failure.

Expected figures (counts, neighbour lists, columns) are read from the lake with xarray,
not from the app.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from lake import open_lake
from lake.layout import T2I_SPLIT, parse_key, parse_model_id, split_t2i_layer
from browser import (
    OVERVIEW,
    Explorer,
    chromium,
    explorer_page,
    read_png,
    register_log_plugin,
    require_chromium,
    start_explorer,
)

require_chromium()
# The first test also waits for the demo lake's build (`make demo-lake-steps`, allowed 2400 s by the
# fixture): the suite-wide 600 s would cut that build short on a busy 2-core machine.
pytestmark = pytest.mark.timeout(1500)

K = 10  # the explorer's default number of neighbours
VIEW_COLUMNS_2D = ["sample_id", "class_id", "class", "source", "split", "x", "y"]


@pytest.fixture(scope="module")
def demo_server(cli_demo_lake: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Any:
    register_log_plugin(request.config)
    server = start_explorer(cli_demo_lake, tmp_path_factory.mktemp("demo_explorer") / "streamlit.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Any:
    with chromium() as b:
        yield b


@pytest.fixture
def app(browser: Any, demo_server: Any, request: pytest.FixtureRequest) -> Any:
    with explorer_page(browser, demo_server, request.node.name) as explorer:
        explorer.goto()
        yield explorer


def embedding_table(lake: Path, ref: str) -> pd.DataFrame:
    """The labels of an embedding's rows, straight from the lake."""
    ds = xr.open_zarr(lake, group=f"analysis/embeddings/{ref}")
    table = {name: np.asarray(ds[name].values, dtype=object).astype(str) for name in ("sample_id", "source", "split")}
    return pd.DataFrame({**table, "class_id": np.asarray(ds["class_id"].values, dtype=np.int64)})


def sample_counts(lake: Path) -> tuple[int, int, int]:
    """(all, generated, real) samples of the demo lake's ImageNet keys: its samples table without the
    text-to-image rows (those have their own key) and without the teacher stand-in's Heun samples (made
    after the probes, for the A/B page). The demo's size is the Makefile's business."""
    samples = xr.open_zarr(lake, group="samples")
    source = np.asarray(samples["source"].values, dtype=object).astype(str)
    heun = np.array([bool(m) and parse_model_id(str(m)).heun is not None for m in samples["model_id"].values])
    source = source[(np.asarray(samples["split"].values, dtype=object).astype(str) != T2I_SPLIT) & ~heun]
    return len(source), int((source == "generated").sum()), int((source == "real").sum())


def _keys(lake: Path) -> list[str]:
    return sorted(g.split("/")[2] for g in open_lake(lake).results("pca"))


def imagenet_keys(lake: Path) -> list[str]:
    """The analysis keys of the ImageNet generator's layers."""
    return [k for k in _keys(lake) if split_t2i_layer(parse_key(k).layer) is None]


def t2i_keys(lake: Path) -> list[str]:
    """The analysis keys of text-to-image models' layers."""
    return [k for k in _keys(lake) if split_t2i_layer(parse_key(k).layer) is not None]


def stored_neighbours(lake: Path, key: str, sample_id: str) -> list[str]:
    """The lake's stored k-NN list of a sample, nearest first."""
    ds = xr.open_zarr(lake, group=f"analysis/knn/{key}")
    ids = np.asarray(ds["sample_id"].values, dtype=object).astype(str)
    (row,) = np.flatnonzero(ids == sample_id)
    return [str(v) for v in np.asarray(ds["neighbor_id"].values[row], dtype=object)]


def current_ref(app: Explorer) -> str:
    ref = app.query().get("emb", "")
    assert ref.count("/") == 1, f"the URL names no embedding: {app.page.url}"
    return ref


def assert_selected(app: Explorer, sample_id: str, manual: int = 0) -> None:
    """The details panel shows `sample_id`, its K neighbours (and `manual` manual ones) with thumbnails."""
    from playwright.sync_api import expect

    details = app.details()
    expect(details.get_by_text(sample_id, exact=True)).to_be_visible()
    expect(details.get_by_text(f"{K} nearest neighbours", exact=True)).to_be_visible()
    if manual:
        expect(details.get_by_text(f"{manual} manual neighbours", exact=True)).to_be_visible()
    else:
        expect(details.get_by_text(re.compile(r"^\d+ manual neighbours"))).to_have_count(0)
    assert app.details_images_loaded(1 + K + manual) == 1 + K + manual

    def drawn() -> None:  # the chart's highlights: the selected point, its K neighbours, the manual ones
        roles = list(app.roles().items())
        assert [s for s, r in roles if r == "selected"] == [sample_id], roles
        assert sum(r == "knn" for _, r in roles) == K and sum(r == "manual" for _, r in roles) == manual, roles

    app.eventually(drawn)


def _assert_equal(actual: Any, expected: Any) -> None:
    assert actual == expected, (actual, expected)


def _assert_len(items: Any, n: int) -> Any:
    assert len(items) == n, (len(items), n, items if len(items) < 20 else "...")
    return items


def test_hover_real_and_generated_points_show_thumbnails(app: Explorer, cli_demo_lake: Path) -> None:
    total, _, _ = sample_counts(cli_demo_lake)
    assert app.in_view() == (total, total)
    for source in ("real", "generated"):
        point = app.free_point(lambda p, s=source: p.source == s)
        tooltip = app.hover(point)
        src = tooltip.locator("img").get_attribute("src") or ""
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/thumb/\d+\.png", src), src  # the thumbnail server, not the app
        assert tooltip.locator("tr", has_text="source").locator("td.value").inner_text() == source
        app.screenshot(f"hover-{source}")


def test_click_real_then_generated_point_lists_neighbours(app: Explorer) -> None:
    from playwright.sync_api import expect

    for source in ("real", "generated"):
        point = app.free_point(lambda p, s=source: p.source == s)
        app.click(point)
        assert app.query()["sel"] == point.sample_id
        assert_selected(app, point.sample_id)
        # Every drawn point is still there; the selected one is drawn as such.
        app.screenshot(f"selected-{source}")
        app.button("Clear selection and manual neighbours")
        expect(app.details().get_by_text("Click a point to select it")).to_be_visible()
        assert "sel" not in app.query()


def test_manual_neighbour_toggle_export_and_clear(app: Explorer, cli_demo_lake: Path) -> None:
    from playwright.sync_api import expect

    selected = app.free_point(lambda p: p.source == "real")
    app.click(selected)
    assert_selected(app, selected.sample_id)
    key = current_ref(app).split("/")[0]
    knn = stored_neighbours(cli_demo_lake, key, selected.sample_id)
    # A second click on a point that is neither the selection nor one of its neighbours adds it ...
    highlighted = app.roles()
    other = app.free_point(lambda p: p.sample_id not in highlighted and p.source == "generated")
    app.click(other)
    assert_selected(app, selected.sample_id, manual=1)
    assert app.query()["manual"] == other.sample_id
    assert app.roles()[other.sample_id] == "manual"
    app.screenshot("manual")

    # ... and the selection export holds: selected, its k-NN by increasing distance (the lake's list), the manual one.
    exported = pd.read_csv(app.download("Export selection (CSV)"))
    assert exported["role"].tolist() == ["selected"] + ["knn"] * K + ["manual"]
    assert exported["sample_id"].tolist() == [selected.sample_id, *knn[:K], other.sample_id]
    distances = exported["distance"].to_numpy()
    assert distances[0] == 0 and (np.diff(distances[1 : K + 1]) >= 0).all() and (distances[1:] > 0).all()
    stored = xr.open_zarr(cli_demo_lake, group=f"analysis/knn/{key}")
    row = int(np.flatnonzero(np.asarray(stored["sample_id"].values, dtype=object).astype(str) == selected.sample_id)[0])
    np.testing.assert_allclose(distances[1 : K + 1], np.asarray(stored["distance"].values[row][:K], np.float64), rtol=1e-6)

    # Clicking the manual neighbour again removes it; Clear forgets the selection.
    app.click_id(other.sample_id)
    assert_selected(app, selected.sample_id, manual=0)
    assert "manual" not in app.query()
    app.button("Clear selection and manual neighbours")
    expect(app.details().get_by_text("Click a point to select it")).to_be_visible()
    app.eventually(lambda: _assert_equal(app.roles(), {}))


def test_view_export_csv_and_parquet_hold_the_rows_in_view(app: Explorer, cli_demo_lake: Path) -> None:
    app.multiselect_add("Source", "generated")
    in_view, total = app.in_view()
    table = embedding_table(cli_demo_lake, current_ref(app))
    expected = table[table["source"] == "generated"]
    assert in_view == total == len(expected) == sample_counts(cli_demo_lake)[1]
    csv = pd.read_csv(app.download("Export view as CSV"))
    parquet = pd.read_parquet(app.download("Export view as Parquet"))
    for exported in (csv, parquet):
        assert exported.columns.tolist() == VIEW_COLUMNS_2D
        assert len(exported) == in_view
        assert set(exported["source"].astype(str)) == {"generated"}
        assert sorted(exported["sample_id"].astype(str)) == sorted(expected["sample_id"])
    assert csv["sample_id"].tolist() == parquet["sample_id"].astype(str).tolist()


def test_class_search_filter(app: Explorer, cli_demo_lake: Path) -> None:
    from playwright.sync_api import expect

    table = embedding_table(cli_demo_lake, current_ref(app))
    app.type_and_enter("Add classes matching (id, wnid or name)", "tabby")
    expect(app._widget("stMultiSelect", "Classes").locator(".react-aria-ComboBox [data-tag]")).to_have_count(1)
    assert app.multiselect_values("Classes") == ["281: tabby"]
    assert app.in_view() == (int((table["class_id"] == 281).sum()),) * 2
    assert app.query()["classes"] == "281"
    app.eventually(lambda: _assert_equal({p.cls for p in app.points()}, {"281: tabby"}))
    app.screenshot("class-search")


def test_source_and_split_filters_match_the_lake(app: Explorer, cli_demo_lake: Path) -> None:
    table = embedding_table(cli_demo_lake, current_ref(app))
    assert app.in_view() == (len(table),) * 2
    app.multiselect_add("Source", "real")
    assert app.in_view() == (int((table["source"] == "real").sum()),) * 2
    splits = sorted(set(table.loc[table["source"] == "real", "split"]))
    assert len(splits) >= 2, splits  # the demo ingests both train and val images
    app.multiselect_add("Split", splits[-1])
    chosen = (table["source"] == "real") & (table["split"] == splits[-1])
    assert app.in_view() == (int(chosen.sum()),) * 2
    app.eventually(lambda: _assert_equal({p.source for p in app.points()}, {"real"}))
    assert app.query()["source"] == "real" and app.query()["split"] == splits[-1]


def test_colour_by_every_offered_option_and_a_palette(app: Explorer) -> None:
    options = app.selectbox_options("Colour by")
    assert options[:3] == ["class", "source", "split"] and len(options) > 3, options
    for option in options:
        app.choose("Colour by", option)
        ref = app.query().get("color", "class")
        title = ref if option in ("class", "source", "split") else ref.partition(".")[2]
        assert option.startswith(title), (option, ref)

        def coloured(option: str = option, title: str = title) -> None:
            fills = {p.fill for p in app.points()}
            assert len(fills) >= 2, f"colouring by {option} paints every point {fills}"
            legends = app.legend_titles()
            # One legend, titled by the colour field (it may add a note such as "(top 7 in view)").
            assert len(legends) == 1 and legends[0].startswith(title), (option, legends)

        app.eventually(coloured)
    app.choose("Colour by", "class")
    # The demo's 8 classes fit the default palette: each has its own colour, no "other".
    app.eventually(lambda: _assert_equal(app.legend_titles()[:1], ["class"]))
    app.eventually(lambda: _assert_equal(len({p.fill for p in app.points() if p.role in (None, "point")}), 8))
    before = {p.sample_id: p.fill for p in app.points()}
    app.choose("Palette", "tableau10")
    assert app.query()["palette"] == "tableau10"

    def repainted() -> None:
        after = {p.sample_id: p.fill for p in app.points()}
        assert before.keys() == after.keys() and before != after

    app.eventually(repainted)
    app.screenshot("palette")


def test_colour_these_classes_greys_the_rest(app: Explorer, cli_demo_lake: Path) -> None:
    table = embedding_table(cli_demo_lake, current_ref(app))
    classes = sorted(set(table["class_id"]))
    assert len(classes) == 8  # the demo's classes: as many as Okabe-Ito's colours
    # All 8 get a colour each, in class order (stable under filters), and no "other".
    labels = app.eventually(lambda: _assert_len(app.legend_labels(), 8))
    assert [int(label.split(":")[0]) for label in labels] == classes, labels
    pick = next(p.cls for p in app.points() if p.cls.startswith(f"{classes[-1]}:"))
    app.multiselect_add("Colour these classes (the rest grey; empty: the most frequent in view)", pick)
    app.eventually(lambda: _assert_equal(app.legend_labels(), [pick, "other"]))

    def greyed() -> None:
        fills: dict[str, set[str]] = {}
        for point in app.points():
            fills.setdefault(point.cls, set()).add(point.fill)
        rest = set().union(*(f for c, f in fills.items() if c != pick))
        assert len(fills[pick]) == 1 and len(rest) == 1 and fills[pick] != rest, fills

    app.eventually(greyed)
    app.screenshot("colour-these")


def test_box_zoom_on_the_overview_and_reset(app: Explorer) -> None:
    _, total = app.in_view()
    app.page.get_by_text("Overview and zoom").click()
    overview = app.page.locator(OVERVIEW).first
    overview.locator("g.mark-rect.role-mark path").first.wait_for(state="attached")
    overview.scroll_into_view_if_needed()
    # The density layer's cells: the largest rect mark group (the brush's own groups are empty boxes).
    box = overview.evaluate(
        """(el) => [...el.querySelectorAll('g.mark-rect.role-mark')].map((g) => g.getBoundingClientRect())
            .map((r) => ({x: r.x, y: r.y, width: r.width, height: r.height})).sort((a, b) => b.width * b.height - a.width * a.height)[0]"""
    )
    assert box["width"] > 100 and box["height"] > 50, box
    x0, y0 = box["x"] + box["width"] * 0.05, box["y"] + box["height"] * 0.45
    x1, y1 = box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.95
    with app.rerun():
        app.page.mouse.move(x0, y0)
        app.page.mouse.down()
        app.page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
        app.page.mouse.move(x1, y1, steps=5)
        app.page.mouse.up()
    in_view, total_after = app.in_view()
    assert total_after == total and 0 < in_view < total
    assert len(app.query()["win"].split(",")) == 4
    app.eventually(lambda: _assert_len({p.sample_id for p in app.points()}, in_view))
    app.screenshot("zoomed")
    app.button("Reset zoom")
    assert app.in_view() == (total, total)
    assert "win" not in app.query()
    app.eventually(lambda: _assert_len({p.sample_id for p in app.points()}, total))


def test_switching_models_and_embeddings(app: Explorer, cli_demo_lake: Path) -> None:
    label = "Embedding (layer · sigma · dims)"
    keys = imagenet_keys(cli_demo_lake)
    models = app.selectbox_options("Model")
    assert models == ["micro (the lake's first model)", "dmd2-sdxl-4step · text-to-image", "teacher-stand-in · ImageNet"]
    offered, seen = 0, set()
    for model in models:
        app.choose("Model", model)
        options = app.selectbox_options(label)
        offered += len(options)
        assert all(("teacher-stand-in." in o) == model.startswith("teacher-stand-in") for o in options)
        if "text-to-image" in model:  # its key: test_browser_t2i
            assert all(split_t2i_layer(o.split(" · ")[0]) is not None for o in options)
            continue
        for option in options:
            app.choose(label, option)
            ref = current_ref(app)
            seen.add(ref)
            key, name = ref.split("/")
            assert key.split("@")[0] in option and name in option
            assert app.in_view() == (len(embedding_table(cli_demo_lake, ref)),) * 2
            app.eventually(lambda: _assert_len({p.sample_id for p in app.points()}, sample_counts(cli_demo_lake)[0]))
            three_d = name.startswith("umap3d")
            assert (app.page.get_by_role("slider", name="Azimuth").count() == 1) == three_d
    assert offered == 2 * len(keys + t2i_keys(cli_demo_lake))  # each key has a 2D and a 3D UMAP
    assert {r.split("/")[0] for r in seen} == set(keys) == {
        "dec.8x8_in0@sigma10", "enc.8x8_block2@sigma2", "teacher-stand-in.enc.8x8_block2@sigma2"}
    app.choose("Model", models[2])
    app.screenshot("teacher_model")


def test_real_vs_generated_page(app: Explorer, cli_demo_lake: Path) -> None:
    from playwright.sync_api import expect

    app.radio("Real vs generated")
    assert app.query()["page"] == "compare"
    _, generated, real = sample_counts(cli_demo_lake)
    expect(app.page.get_by_text(re.compile(rf"{generated} generated and {real} real points"))).to_be_visible()
    chart = app.page.get_by_test_id("stMain").get_by_test_id("stVegaLiteChart")
    expect(chart.locator("g.mark-rect.role-mark path").first).to_be_attached()  # the heatmap cells
    assert chart.locator("g.mark-rect.role-mark path").count() > 10
    assert chart.locator("g.role-mark path").count() > chart.locator("g.mark-rect.role-mark path").count()  # points over the cells
    expect(app.page.get_by_role("heading", name="Comparison metrics")).to_be_visible()
    # The headline metrics, as the lake's compare group records them.
    attrs = xr.open_zarr(cli_demo_lake, group=f"analysis/compare/{current_ref(app).split('/')[0]}").attrs
    text = app.page.get_by_test_id("stMain").inner_text()
    for metric in ("precision", "recall", "coverage"):
        match = re.search(rf"{metric}\W*([0-9][0-9.e+-]*)", text, re.IGNORECASE)
        assert match, f"no {metric} on the page"
        assert float(match.group(1)) == pytest.approx(float(attrs[metric]), rel=1e-3, abs=1e-4), metric
    expect(app.page.get_by_test_id("stDataFrame").filter(visible=True).first).to_be_visible()  # the per-class table
    app.screenshot("compare")


def test_compare_models_page_draws_the_cka_heatmap(app: Explorer, cli_demo_lake: Path) -> None:
    from playwright.sync_api import expect

    app.radio("Compare models")
    assert app.query()["page"] == "models"
    stored = xr.open_zarr(cli_demo_lake, group="analysis/cka/micro~teacher-stand-in@sigma2")
    main = app.page.get_by_test_id("stMain")
    expect(main.get_by_text(re.compile(rf"on the {stored.attrs['n_shared']} samples both probed at sigma 2"))).to_be_visible()
    chart = main.get_by_test_id("stVegaLiteChart")
    cells = chart.locator("g.mark-rect.role-mark path")
    expect(cells.first).to_be_attached()
    assert cells.count() == stored["cka"].size  # one cell per layer pair
    labels = chart.locator("g.mark-text.role-mark text").all_text_contents()
    assert sorted(labels) == sorted(f"{v:.2f}" for v in stored["cka"].values.ravel())
    box = cells.first.bounding_box()
    assert box is not None and box["height"] > 20 and box["width"] > 20  # cells, not collapsed bands
    csv = app.download("Download this table (CSV)").read_text().splitlines()
    assert csv[0] == "micro,teacher-stand-in.enc.8x8_block2" and csv[1].startswith("dec.8x8_in0,")
    app.screenshot("compare-models")


def assert_point_cloud_drawn(app: Explorer) -> None:
    """The 3D page's pydeck canvas is on screen and holds many colours (points), not one blank fill."""
    from playwright.sync_api import expect

    canvas = app.page.get_by_test_id("stDeckGlJsonChart").locator("canvas").first
    expect(canvas).to_be_visible()
    box = canvas.bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 100
    pixels = read_png(canvas.screenshot())
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 8, f"the 3D canvas shows {len(colours)} colours"


def test_3d_page_follows_the_layer_and_returns(app: Explorer, cli_demo_lake: Path) -> None:
    start = current_ref(app)
    assert "/umap2d" in start
    app.radio("3D view")
    assert app.query()["page"] == "3d"
    # The page shows the 3D embedding of the same layer and sigma ...
    assert current_ref(app) == start.replace("/umap2d", "/umap3d")
    assert_point_cloud_drawn(app)
    app.screenshot("cloud-from-2d")
    # ... and leaving it goes back to the 2D one.
    app.radio("Explore")
    assert current_ref(app) == start and "page" not in app.query()
    total, _, _ = sample_counts(cli_demo_lake)
    assert app.in_view() == (total, total)


def test_3d_rotation_and_point_cloud(app: Explorer) -> None:
    label = "Embedding (layer · sigma · dims)"
    three_d = next(o for o in app.selectbox_options(label) if " 3D " in o)

    def positions() -> dict[str, tuple[float, float]]:
        return {p.sample_id: (p.data_x, p.data_y) for p in app.points()}

    two_d = positions()
    app.choose(label, three_d)

    def redrawn() -> dict[str, tuple[float, float]]:  # the 3D embedding's drawing, not the 2D one's
        now = positions()
        assert now.keys() == two_d.keys() and now != two_d
        return now

    before = app.eventually(redrawn)
    slider = app.page.get_by_role("slider", name="Azimuth")
    for step in range(1, 4):  # 15 degrees, one 5-degree key press (and rerun) at a time
        with app.rerun():
            slider.press("ArrowRight")
        assert app.query()["rot"].split(",")[0] == str(5 * step)

    def rotated() -> None:
        after = {p.sample_id: (p.data_x, p.data_y) for p in app.points()}
        assert before.keys() == after.keys()
        moved = sum(np.hypot(after[s][0] - before[s][0], after[s][1] - before[s][1]) > 1e-3 for s in before)
        assert moved > 0.9 * len(before), f"only {moved} of {len(before)} points moved when rotating"

    app.eventually(rotated)
    app.screenshot("rotated")

    app.radio("3D view")
    assert app.query()["page"] == "3d"
    assert_point_cloud_drawn(app)
    app.screenshot("cloud")


def test_copied_url_restores_the_view_and_selection(app: Explorer, browser: Any, demo_server: Any) -> None:
    app.multiselect_add("Source", "real")
    selected = app.free_point(lambda p: p.source == "real")
    app.click(selected)
    highlighted = app.roles()
    other = app.free_point(lambda p: p.sample_id not in highlighted)
    app.click(other)
    assert_selected(app, selected.sample_id, manual=1)
    url, view = app.page.url, app.in_view()
    assert "sel=" in url and "source=real" in url

    with explorer_page(browser, demo_server, "restored") as fresh:
        fresh.goto(url)
        assert_selected(fresh, selected.sample_id, manual=1)
        assert fresh.multiselect_values("Source") == ["real"]
        assert fresh.in_view() == view
        assert fresh.query() == app.query()
        roles = fresh.roles()  # assert_selected waited for the highlights
        assert roles[selected.sample_id] == "selected" and roles[other.sample_id] == "manual"
        fresh.screenshot("restored")


LINKED = ('[class*="st-key-linked-first"]', '[class*="st-key-linked-second"]')


def _linked_inputs(lake: Path) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The stored neighbourhood change, and each compared key's 2-D map as sample id -> (x, y), read with xarray."""
    [group] = open_lake(lake).results("neighbourhood")
    table = xr.open_zarr(lake, group=group)
    change = pd.DataFrame({"sample_id": table.sample_id.values.tolist(), "change": table.neighbourhood_change.values})
    maps = []
    for key in (table.attrs["first_key"], table.attrs["second_key"]):
        name = next(n for n in sorted(open_lake(lake).children(f"analysis/embeddings/{key}")) if n.startswith("umap2d"))
        emb = xr.open_zarr(lake, group=f"analysis/embeddings/{key}/{name}")
        maps.append(dict(zip(emb.sample_id.values.tolist(), emb.embedding.values.astype(np.float64), strict=True)))
    return change, maps[0], maps[1]


def _similarity_fit(reference: np.ndarray, moving: np.ndarray) -> Any:
    """Umeyama's least-squares similarity transform (rotation or reflection, scale, shift), from the SVD directly."""
    a0, b0 = reference - reference.mean(0), moving - moving.mean(0)
    u, s, vt = np.linalg.svd(b0.T @ a0)
    rotation, scale = u @ vt, s.sum() / (b0 ** 2).sum()
    return lambda points: scale * (points - moving.mean(0)) @ rotation + reference.mean(0)


def test_linked_maps_follow_a_sample_through_both_models(app: Explorer, cli_demo_lake: Path) -> None:
    change, first, second = _linked_inputs(cli_demo_lake)
    shared = [i for i in change.sample_id if i in first and i in second]
    align = _similarity_fit(np.array([first[i] for i in shared]), np.array([second[i] for i in shared]))
    app.radio("Compare models")
    label = "Follow a sample (the 50 most changed first; or click one in either map)"
    most = change.sort_values("change", ascending=False, kind="stable").sample_id.iloc[0]
    assert app.selected_option(label).split(" · ")[0] == most  # the most changed sample is followed first

    def rings(chart: str) -> dict[str, list[Any]]:
        found: dict[str, list[Any]] = {}
        for point in app.points(chart):
            if point.role in ("selected", "knn"):
                found.setdefault(point.role, []).append(point)
        return found

    def check(sample_id: str) -> None:
        # Each highlighted sample is drawn twice (its point, and the ring over it): the same datum.
        on_first, on_second = rings(LINKED[0]), rings(LINKED[1])
        assert {p.sample_id for p in on_first["selected"]} == {p.sample_id for p in on_second["selected"]} == {sample_id}
        for mark in on_first["selected"]:
            assert (mark.data_x, mark.data_y) == pytest.approx(tuple(first[sample_id]), abs=1e-5)
        for mark in on_second["selected"]:  # where it lands in the other model's map, aligned onto the first
            assert (mark.data_x, mark.data_y) == pytest.approx(tuple(align(second[sample_id][None])[0]), abs=1e-4)
        assert len({p.sample_id for p in on_first["knn"]}) == len({p.sample_id for p in on_second["knn"]}) == 10

    check(most)
    app.choose(label, app.selectbox_options(label)[5])  # the sixth most changed
    chosen = app.selected_option(label).split(" · ")[0]
    assert chosen == change.sort_values("change", ascending=False, kind="stable").sample_id.iloc[5]
    app.eventually(lambda: check(chosen))
    # A click on a point of the second map follows that sample in both.
    target = app.free_point(lambda p: p.role == "point" and p.sample_id not in (chosen, most), chart=LINKED[1])
    with app.rerun():
        app.page.mouse.click(target.x, target.y)
    assert app.selected_option(label).split(" · ")[0] == target.sample_id
    app.eventually(lambda: check(target.sample_id))
    app.screenshot("linked-maps")


def test_generated_sets_show_the_stored_comparison(app: Explorer, cli_demo_lake: Path) -> None:
    from playwright.sync_api import expect

    lake = open_lake(cli_demo_lake)
    [group] = [g for g in lake.results("sets") if lake.attrs(g).get("analysis") == "sets"]
    stored = xr.open_zarr(cli_demo_lake, group=group)
    app.radio("Compare models")
    main = app.page.get_by_test_id("stMain")
    heading = main.get_by_text("Generated sets", exact=True)
    heading.scroll_into_view_if_needed()
    expect(main.get_by_text(f"Stored in {group}")).to_be_visible()
    for name in ("frechet_distance", "precision", "recall", "density", "coverage"):  # the overall metrics, as stored
        metric = main.get_by_test_id("stMetric").filter(has_text=name.replace("_", " "))
        expect(metric.get_by_test_id("stMetricValue")).to_have_text(f"{stored.attrs[name]:.3g}")
    exported = pd.read_csv(app.download("Download the per-class table (CSV)"))
    by_class = dict(zip(stored.class_label.values.tolist(), stored.frechet_distance.values.tolist(), strict=True))
    assert exported.frechet_distance.tolist() == sorted(by_class.values(), reverse=True)  # largest distance first
    assert [by_class[c] for c in exported.class_label] == exported.frechet_distance.tolist()
    app.screenshot("generated-sets")
