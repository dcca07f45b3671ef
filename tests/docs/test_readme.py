"""The README stays short and true, and the pictures and pages it points to exist.

- under 200 lines, with exactly the two newcomer commands (`make demo`, `make test`, which
  .ci/run calls) and links into the docs;
- every relative link or image of the README and of docs/*.md resolves to a file;
- the explorer screenshots are real PNGs of a browser window, and the Noise levels animation
  is an animated image of several frames under 1.5 MB;
- every benchmark script is on the benchmarks page, and the notebook page is the example notebook.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import REPO

README = REPO / "README.md"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
SCREENSHOTS = ("explore.png", "sidebar.png", "compare.png", "cloud-3d.png", "noise-levels.png", "t2i-sample.png", "prompts.png")
ANIMATION = "noise-levels.webp"


def relative_links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    return [t.split("#")[0] for t in LINK.findall(text) if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


def test_readme_is_short_and_keeps_the_two_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    block = re.search(r"## Two commands\s+```bash\n(.*?)```", text, flags=re.DOTALL)
    assert block, "README has no 'Two commands' block"
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    assert "make test" in (REPO / ".ci" / "run").read_text()
    assert "docs/images/explore.png" in text and f"docs/images/{ANIMATION}" in text


@pytest.mark.parametrize("page", [README, *sorted(p for p in (REPO / "docs").rglob("*.md") if "_build" not in p.parts)],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path):
    broken = [t for t in relative_links(page) if t and not (page.parent / t).exists()]
    assert not broken, f"{page.relative_to(REPO)} links to missing files: {broken}"


@pytest.mark.parametrize("name", SCREENSHOTS)
def test_screenshots_are_pictures_of_the_explorer(name: str):
    with Image.open(REPO / "docs" / "images" / name) as image:
        assert image.format == "PNG"
        assert min(image.size) >= 300, image.size
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is None or len(colours) > 50, "a near-blank picture"


def test_noise_levels_animation_has_a_frame_per_noise_level():
    path = REPO / "docs" / "images" / ANIMATION
    assert path.stat().st_size < 1.5e6
    with Image.open(path) as image:
        assert image.format == "WEBP" and getattr(image, "is_animated", False)
        assert image.n_frames >= 4  # the demo's probes: sigma 80, 10, 2 and 0.5


def test_every_benchmark_is_on_the_benchmarks_page():
    page = (REPO / "docs" / "benchmarks.md").read_text()
    missing = [p.name for p in sorted((REPO / "benchmarks").glob("bench_*.py")) if p.name not in page]
    assert not missing, f"docs/benchmarks.md does not list {missing}"


def test_the_notebook_page_is_the_example_notebook():
    page = REPO / "docs" / "notebooks" / "reading_the_lake.ipynb"
    assert page.is_symlink() and page.resolve() == (REPO / "examples" / "reading_the_lake.ipynb").resolve()
