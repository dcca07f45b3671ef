"""The explorer in Chromium on a text-to-image lake built by our own CLI.

The module builds tiny SDXL-topology components with seeded random weights
(`models.t2i.build_tiny_base`, a tiny "DMD2 UNet" checkpoint beside it), then runs
`python -m ingest generate-t2i` (4 steps, previews stored) and `python -m analysis run`
as a user would, and drives the explorer on the result: the hover shows a sample's prompt
over its thumbnail, a click shows its details with one x0 preview per step, and the
prompt colouring and search work on the page. What the page should say is read from the
lake with xarray. Screenshots land in $DMD2VIZ_SCREENSHOTS/<test>/ when it is set.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from browser import Explorer, chromium, explorer_page, register_log_plugin, require_chromium, start_explorer

require_chromium()
pytestmark = pytest.mark.timeout(1200)  # the module's first test also builds the lake (tiny models on a shared CPU)

REPO = Path(__file__).resolve().parents[2]
NAME = "dmd2-sdxl-4step"  # the job's default name for a 4-step SDXL model
PROMPTS = ("a photo of a red cat on a sofa", "a cat in the snow", "a mountain lake at dawn")
CLASS_PROMPT = "a photo of a goldfish"  # --prompts-from-classes goldfish, the job's default template
PER_PROMPT = 3
TIMESTEPS = (999, 749, 499, 249)


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{what} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-6000:]}"


@pytest.fixture(scope="module")
def t2i_cli_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake made by `ingest generate-t2i` on tiny components, then `analysis run` (PCA, UMAP, k-NN, clusters, prompt map)."""
    from models.t2i import build_tiny_base, save_tiny_dmd2_unet

    root = tmp_path_factory.mktemp("t2i_cli")
    base = build_tiny_base(root / "base", family="sdxl", seed=0, size=64)
    checkpoint = save_tiny_dmd2_unet(base, root / "dmd2_tiny_4step_unet.bin", seed=1)
    prompts = root / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    lake = root / "lake"
    _run([sys.executable, "-m", "ingest", "generate-t2i", "--lake", str(lake), "--base", str(base), "--checkpoint", str(checkpoint),
          "--prompts", str(prompts), "--prompts-from-classes", "goldfish", "--samples-per-prompt", str(PER_PROMPT), "--steps", "4",
          "--no-progress"], "ingest generate-t2i")  # fmt: skip
    _run([sys.executable, "-m", "analysis", "run", "--lake", str(lake)], "analysis run")
    return lake


def t2i_table(lake: Path) -> pd.DataFrame:
    """sample_id -> prompt of the model's samples, straight from the lake."""
    ds = xr.open_zarr(lake, group=f"t2i/{NAME}/samples")
    return pd.DataFrame({name: np.asarray(ds[name].values, dtype=object).astype(str) for name in ("sample_id", "prompt")}).set_index("sample_id")


@pytest.fixture(scope="module")
def server(t2i_cli_lake: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Any:
    register_log_plugin(request.config)
    started = start_explorer(t2i_cli_lake, tmp_path_factory.mktemp("t2i_explorer") / "streamlit.log")
    yield started
    started.stop()


@pytest.fixture(scope="module")
def browser() -> Any:
    with chromium() as b:
        yield b


@pytest.fixture
def app(browser: Any, server: Any, request: pytest.FixtureRequest) -> Any:
    with explorer_page(browser, server, request.node.name) as explorer:
        explorer.goto()
        yield explorer


def test_the_lake_holds_what_the_cli_made(t2i_cli_lake: Path) -> None:
    table = t2i_table(t2i_cli_lake)
    assert sorted(set(table["prompt"])) == sorted([*PROMPTS, CLASS_PROMPT]) and len(table) == PER_PROMPT * 4


def test_hover_shows_the_prompt_over_the_thumbnail(app: Explorer, t2i_cli_lake: Path) -> None:
    prompts = t2i_table(t2i_cli_lake)["prompt"]
    for wanted in (PROMPTS[0], CLASS_PROMPT):
        point = app.free_point(lambda p, w=wanted: prompts[p.sample_id] == w)
        tooltip = app.hover(point)
        assert tooltip.locator("tr", has_text="prompt").locator("td.value").inner_text() == wanted
        src = tooltip.locator("img").get_attribute("src") or ""
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/thumb/\d+\.png", src), src  # the 64x64 thumbnail from the samples table
        expected_class = "no class" if wanted != CLASS_PROMPT else "1: goldfish"
        assert tooltip.locator("tr", has_text="class").locator("td.value").inner_text() == expected_class
        app.screenshot(f"hover-{wanted.replace(' ', '-')}")


def test_click_shows_the_prompt_model_and_every_step(app: Explorer, t2i_cli_lake: Path) -> None:
    from playwright.sync_api import expect

    prompts = t2i_table(t2i_cli_lake)["prompt"]
    point = app.free_point(lambda p: prompts[p.sample_id] == PROMPTS[1])
    app.click(point)
    assert app.query()["sel"] == point.sample_id
    details = app.details()
    for fact in (f"prompt: {PROMPTS[1]}", "UNet: dmd2_tiny_4step_unet.bin", "timesteps: 999, 749, 499, 249", "family: sdxl", "class: no class"):
        expect(details).to_contain_text(fact)
    # One preview per step, captioned with its timestep, and every image of the panel loaded.
    for t in TIMESTEPS:
        expect(details.get_by_text(re.compile(rf"^t={t} · σ=")).first).to_be_visible()
    loaded = app.details_images_loaded(1 + len(TIMESTEPS))
    assert loaded >= 1 + len(TIMESTEPS)  # the native image, the steps, then the neighbours
    app.screenshot("details")
    details.get_by_text(re.compile(rf"^t={TIMESTEPS[-1]} · σ=")).first.scroll_into_view_if_needed()
    app.screenshot("details-steps")


def test_colour_by_prompt_and_search_prompts(app: Explorer, t2i_cli_lake: Path) -> None:
    total = len(t2i_table(t2i_cli_lake))
    assert app.in_view() == (total, total)
    options = app.selectbox_options("Colour by")
    assert {"prompt", "prompt cluster", "activation cluster (k-means)", "model"} <= set(options)
    app.choose("Colour by", "prompt")
    app.eventually(lambda: _assert_equal(sorted(app.legend_labels()), sorted([*PROMPTS, CLASS_PROMPT])))
    app.type_and_enter("Prompt contains", "CAT")
    cats = [p for p in PROMPTS if "cat" in p]
    assert app.in_view() == (PER_PROMPT * len(cats), PER_PROMPT * len(cats))
    prompts = t2i_table(t2i_cli_lake)["prompt"]
    app.eventually(lambda: _assert_equal(sorted({prompts[p.sample_id] for p in app.points()}), sorted(cats)))
    # Four prompts fit the palette: each keeps its colour (and legend entry) whatever the search, as classes do.
    assert sorted(app.legend_labels()) == sorted([*PROMPTS, CLASS_PROMPT])
    assert app.query()["prompt"] == "CAT"
    app.screenshot("search-cat")
    app.choose("Colour by", "prompt cluster")
    app.eventually(lambda: _assert_equal(all(label.startswith("cluster ") for label in app.legend_labels()), True))
    app.screenshot("prompt-clusters")


def _assert_equal(a: Any, b: Any) -> None:
    assert a == b, (a, b)


def test_prompts_page_maps_every_prompt(app: Explorer, t2i_cli_lake: Path) -> None:
    from playwright.sync_api import expect

    app.radio("Prompts")
    ds = xr.open_zarr(t2i_cli_lake, group=f"analysis/prompts/{NAME}")
    clusters = sorted({f"cluster {int(c)}" for c in ds["cluster"].values})
    chart = '[class*="st-key-prompt-map"]'
    app.eventually(lambda: _assert_equal(len(app.points(chart)), len(PROMPTS) + 1))  # one point per prompt
    app.eventually(lambda: _assert_equal(sorted(app.legend_labels(chart)), clusters))
    expect(app.page.get_by_text("Prompts by cluster")).to_be_visible()
    app.screenshot("prompts-page")
