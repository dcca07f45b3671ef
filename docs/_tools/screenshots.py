"""The documentation's pictures of the explorer, taken in headless Chromium on a lake (`make docs`).

    python docs/_tools/screenshots.py --lake .data/docs/demo_lake --out docs/images

Starts `streamlit run explorer/app.py` on the lake (debug switch on, so a failure is an
exception element, not a quiet message), drives Debian's /usr/bin/chromium through
Playwright (never `playwright install`) and saves, under --out:

    explore.png        the Explore page, a real photograph selected (details, neighbours)
    sidebar.png        the sidebar alone
    sets.png           two sets of points drawn on the map, compared
    compare.png        Real vs generated
    cloud-3d.png       the 3D view
    noise-levels.png   Noise levels, a multi-step sample's path and its per-step images
    noise-levels.webp  the Noise levels map at every noise level in turn (animated, Pillow)
    t2i-sample.png     a text-to-image sample selected, coloured by prompt cluster
    prompts.png        the Prompts page
    compare-models.png the Compare models page: the CKA heatmap of the demo's two models

Each view is opened from a URL (the explorer keeps its whole view state in the query) and
waited for by condition: the script run finished (a page-side counter of Streamlit's
script-state changes: tests/explorer/browser.py's Explorer, shared with the browser tests), the chart's marks drawn, the images
loaded. Any error box, exception element or uncaught JavaScript error aborts with the
server's log, so a broken page never becomes a picture.
"""
from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# The suite's browser driver: the same server start, run counter, waits and error checks as the browser tests.
from tests.explorer.browser import CHROMIUM, Explorer, chromium, read_png, start_explorer  # noqa: E402

TIMEOUT_MS = 120_000
# The Explore page's WebGL scatter has drawn and applied the page's last message (its page hook).
GL_DRAWN = "() => { const s = document.querySelector('.dmd2-scatter')?.__dmd2scatter; return !!s && s.pending === 0 && !!s.n; }"
NOISE_MAP = '[class*="st-key-noise-map"]'
PROMPT_MAP = '[class*="st-key-prompt-map"] g.role-mark path'
CKA_CELLS = '[data-testid="stMain"] [data-testid="stVegaLiteChart"] g.mark-rect.role-mark path'  # the page's one chart
IMAGES_LOADED = """(selector) => {
  const imgs = [...document.querySelectorAll(selector)];
  return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);
}"""


class Shooter:
    """The pictures taken from one browser page on the explorer (an `Explorer`: every action waits and checks for errors)."""

    def __init__(self, explorer: Explorer, out: Path) -> None:
        self.explorer, self.page, self.out = explorer, explorer.page, out
        self.page.set_default_timeout(TIMEOUT_MS)

    def open(self, **query: str) -> None:
        self.explorer.goto(self.explorer.server.url + ("?" + urllib.parse.urlencode(query) if query else ""))

    def act(self, action: Any) -> None:
        self.explorer.act(action)

    def images_loaded(self, selector: str = '[data-testid="stImage"] img') -> None:
        self.page.wait_for_function(IMAGES_LOADED, arg=selector)

    def calm(self) -> None:
        """No tooltip, no hover state, and two animation frames for Vega to finish drawing."""
        self.page.mouse.move(1, 1)
        self.page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
        self.explorer.assert_no_errors()

    def save(self, name: str, element: str | None = None) -> Path:
        self.calm()
        path = self.out / name
        data = self.page.locator(element).first.screenshot() if element else self.page.screenshot()
        save_png(data, path)
        print(f"wrote {path}", flush=True)
        return path


def save_png(data: bytes, path: Path) -> None:
    from PIL import Image

    Image.open(io.BytesIO(data)).convert("RGB").save(path, optimize=True)


def views(lake_path: Path) -> dict[str, str]:
    """The embeddings and samples the pictures show, read from the lake."""
    from lake import open_lake

    lake = open_lake(lake_path)
    keys = lake.children("analysis/embeddings")
    t2i_names = tuple(f"{name}." for name in lake.t2i_models())
    imagenet = sorted(k for k in keys if k.startswith(("enc.", "dec.")))  # the lake's first model's layers
    t2i = sorted(k for k in keys if k.startswith(t2i_names)) if t2i_names else []
    if not imagenet or not t2i:
        raise SystemExit(f"{lake_path}: expected ImageNet and text-to-image embeddings, found {keys}")
    key = "enc.8x8_block2@sigma2" if "enc.8x8_block2@sigma2" in imagenet else imagenet[0]
    t2i_key = t2i[0]
    names = lake.children(f"analysis/embeddings/{key}")
    emb2d = next(n for n in names if n.startswith("umap2d"))
    emb3d = next(n for n in names if n.startswith("umap3d"))
    t2i_emb = next(n for n in lake.children(f"analysis/embeddings/{t2i_key}") if n.startswith("umap2d"))
    emb = lake.result("embeddings", key, emb2d)
    ids, classes, sources = (emb[c].values for c in ("sample_id", "class_id", "source"))
    real = [str(i) for i, c, s in zip(ids, classes, sources) if s == "real" and int(c) == 281]  # a tabby cat
    real = real or [str(i) for i, s in zip(ids, sources) if s == "real"]
    layer = key.split("@")[0]
    schedule = next(s for s in lake.schedules() if s in lake.children(f"analysis/trajectory/{layer}"))  # placed in the map
    multi = str(lake.joint_embedding(layer, schedule)["sample_id"].values[3])
    t2i_ids = [str(i) for i in lake.result("embeddings", t2i_key, t2i_emb)["sample_id"].values]
    return {"emb": f"{key}/{emb2d}", "emb3d": f"{key}/{emb3d}", "t2i": f"{t2i_key}/{t2i_emb}",
            "real": real[len(real) // 2], "multi": multi, "t2i_sample": t2i_ids[len(t2i_ids) // 2],
            "sets": two_sets(f"{key}/{emb2d}", emb["embedding"].values)}


def two_sets(ref: str, coords: Any) -> str:
    """A `sets=` URL value: the left and the right third of the map, as a lasso would keep them."""
    from explorer.state import PointSet, ViewState, encode_query_params

    (x0, y0), (x1, y1) = coords.min(axis=0), coords.max(axis=0)
    third = (x1 - x0) / 3

    def box(left: float) -> tuple[tuple[float, float], ...]:
        return ((left, y0), (left + third, y0), (left + third, y1), (left, y1))

    view = ViewState(embedding=ref, sets=(PointSet("set 1", ref, box(float(x0))), PointSet("set 2", ref, box(float(x1 - third)))))
    return encode_query_params(view)["sets"]


def explore_pages(shot: Shooter, v: dict[str, str]) -> None:
    """Explore (a photograph selected), the sidebar, Real vs generated and the 3D view."""
    shot.open(emb=v["emb"], sel=v["real"])
    shot.page.wait_for_function(GL_DRAWN)
    shot.images_loaded()
    shot.save("explore.png")
    shot.save("sidebar.png", '[data-testid="stSidebar"]')

    shot.open(emb=v["emb"], sets=v["sets"])
    shot.page.wait_for_function(GL_DRAWN)
    shot.page.get_by_role("tab", name="Compare two sets").click()
    compared = shot.page.locator("p", has_text="Frechet distance")
    compared.wait_for()
    compared.evaluate("(e) => e.scrollIntoView({block: 'center'})")  # the sets on the map above, their comparison below
    shot.save("sets.png")

    shot.open(emb=v["emb"], page="compare")
    shot.page.get_by_role("heading", name="Comparison metrics").wait_for()
    shot.page.locator('[data-testid="stVegaLiteChart"] g.role-mark path').first.wait_for(state="attached")
    shot.save("compare.png")

    shot.open(emb=v["emb3d"], page="3d")
    canvas = shot.page.get_by_test_id("stDeckGlJsonChart").locator("canvas").first
    canvas.wait_for(state="visible")
    _wait_for_colours(shot, canvas)
    shot.save("cloud-3d.png")


def _wait_for_colours(shot: Shooter, canvas: Any, least: int = 8) -> None:
    """deck.gl draws after the script has finished: poll its canvas until it holds points."""
    import numpy as np

    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        pixels = read_png(canvas.screenshot())
        if len(np.unique(pixels.reshape(-1, 3), axis=0)) > least:
            return
        if time.monotonic() > deadline:
            raise SystemExit("the 3D view's canvas stayed blank")
        shot.page.wait_for_timeout(200)  # a polling interval


def noise_pages(shot: Shooter, v: dict[str, str]) -> None:
    """Noise levels with a multi-step sample's path, then the map at every noise level (the animation)."""
    from explorer import charts

    selected_line = f'{NOISE_MAP} g.mark-line path[stroke="{charts.SELECTED_FILL}"]'
    shot.open(emb=v["emb"], page="noise", sel=v["multi"])
    shot.page.locator(selected_line).first.wait_for(state="attached")
    shot.images_loaded()
    shot.page.get_by_test_id("stMain").get_by_test_id("stSelectbox").first.evaluate("(e) => e.scrollIntoView({block: 'start'})")
    shot.save("noise-levels.png")

    radio = shot.page.get_by_test_id("stRadio").filter(has=shot.page.get_by_text("every sigma", exact=True))
    labels = [t.strip() for t in radio.locator("label").all_inner_texts() if t.strip().startswith("σ=")]
    frames = []
    for label in labels:  # highest sigma first, as the page lists them
        shot.act(lambda label=label: radio.get_by_text(label, exact=True).click())
        shot.page.locator(selected_line).first.wait_for(state="attached")
        shot.calm()
        frames.append((label, shot.page.locator(NOISE_MAP).first.screenshot()))
    save_animation(frames, shot.out / "noise-levels.webp")


def save_animation(frames: list[tuple[str, bytes]], path: Path, width: int = 960) -> None:
    """Screenshots as an animated WebP, each captioned with its noise level, scaled to `width` pixels."""
    from PIL import Image, ImageDraw, ImageFont

    images = []
    for label, data in frames:
        image = Image.open(io.BytesIO(data)).convert("RGB")
        image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
        draw = ImageDraw.Draw(image)
        font = ImageFont.load_default(size=28)
        text = "points at " + label.replace("σ=", "sigma ")  # Pillow's own font has no Greek
        box = draw.textbbox((0, 0), text, font=font)
        draw.rectangle((8, 8, box[2] + 24, box[3] + 20), fill="white", outline="#888888")
        draw.text((16, 12), text, fill="black", font=font)
        images.append(image)
    images[0].save(path, save_all=True, append_images=images[1:], duration=1200, loop=0, quality=80, method=6)
    print(f"wrote {path} ({len(images)} frames, {path.stat().st_size // 1024} KiB)", flush=True)


def t2i_pages(shot: Shooter, v: dict[str, str]) -> None:
    """A text-to-image sample selected (coloured by prompt cluster), then the Prompts page."""
    shot.open(emb=v["t2i"], color="prompt_cluster", sel=v["t2i_sample"])
    shot.page.wait_for_function(GL_DRAWN)
    shot.images_loaded()
    shot.save("t2i-sample.png")

    shot.open(emb=v["t2i"], page="prompts")
    shot.page.locator(PROMPT_MAP).first.wait_for(state="attached")
    shot.save("prompts.png")


def models_pages(shot: Shooter, v: dict[str, str]) -> None:
    """The Compare models page: the stored CKA table of the demo's first model and its teacher stand-in."""
    shot.open(emb=v["emb"], page="models")
    shot.page.locator(CKA_CELLS).first.wait_for(state="attached")
    shot.save("compare-models.png", '[data-testid="stMain"]')
    maps = shot.page.locator('[class*="st-key-linked-second"]')
    maps.locator("g.mark-symbol.role-mark path").first.wait_for(state="attached")
    maps.scroll_into_view_if_needed()
    shot.save("linked-maps.png", '[class*="st-key-linked-first"] >> xpath=../../..')


def ab_pages(shot: Shooter, v: dict[str, str]) -> None:
    """The A/B page: the first pair of the demo's one-step samples and its teacher stand-in's Heun samples."""
    shot.open(emb=v["emb"], page="ab")
    shot.page.get_by_test_id("stMain").get_by_test_id("stImage").nth(1).wait_for(state="visible")
    shot.images_loaded()
    shot.save("ab.png", '[data-testid="stMain"]')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Take the documentation's screenshots of the explorer on a lake.")
    parser.add_argument("--lake", type=Path, required=True, help="the lake to show (make docs: the CLI-built demo lake)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="folder for the pictures")
    parser.add_argument("--width", type=int, default=1440, help="browser viewport width (CSS pixels)")
    parser.add_argument("--height", type=int, default=1250, help="browser viewport height (CSS pixels)")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    args.out.mkdir(parents=True, exist_ok=True)
    v = views(args.lake)
    lake = args.lake.resolve()
    with tempfile.TemporaryDirectory() as tmp, chromium(extra_args=("--hide-scrollbars",)) as browser:
        # In the lake's folder, the lake named by its folder name: the pages say `demo_lake` as after `make demo`.
        server = start_explorer(Path(lake.name), Path(tmp) / "server.log", timeout=120, cwd=lake.parent,
                                options=("--client.toolbarMode", "minimal"), scatter="webgl")
        try:
            for step in (explore_pages, noise_pages, t2i_pages, models_pages, ab_pages):
                context = browser.new_context(viewport={"width": args.width, "height": args.height})
                step(Shooter(Explorer(context.new_page(), server, None), args.out), v)
                context.close()
        except AssertionError as exc:  # an error box, an exception or a JavaScript error on a page
            raise SystemExit(f"the explorer shows an error:\n{exc}") from None
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
