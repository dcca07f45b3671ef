"""The documentation builds with warnings as errors, and its CLI reference holds every flag of every parser.

One Sphinx build per session (`sphinx-build -W --keep-going -n`, as `make docs` runs it):
a broken link or cross-reference, a docstring autodoc cannot read, a missing image or a
page outside every toctree fails it. The notebook page is rendered without running it
(`-D nb_execution_mode=off`): tests/examples/test_notebook.py already runs the notebook
against the CLI demo lake, and the build stays well under a minute on 2 cores.
"""
from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_docs import EXPLORER, parsers

from tests.conftest import REPO

PAGES = ("index", "getting-started", "explorer", "ingest", "text-to-image", "editing", "analysis", "notebooks",
         "notebooks/reading_the_lake", "lake", "cli", "api/index", "api/lake", "api/ingest", "api/models",
         "api/analysis", "architecture", "extending", "benchmarks", "development")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    env = {k: v for k, v in os.environ.items() if k != "DMD2VIZ_LAKE"}
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html",
               "-D", "nb_execution_mode=off", "-d", str(out / "doctrees"), "docs", str(out / "html")]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, f"sphinx-build failed ({result.returncode}):\n{result.stdout[-5000:]}\n{result.stderr[-20000:]}"
    assert "WARNING" not in result.stderr, result.stderr
    return out / "html"


def text_of(page: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page.read_text()))


@pytest.mark.timeout(600)
def test_every_page_is_built(site: Path):
    for page in PAGES:
        assert (site / f"{page}.html").is_file(), page
    # The pictures travel with the site.
    assert {"explore.png", "noise-levels.webp"} <= {p.name for p in (site / "_images").iterdir()}


def test_the_api_pages_hold_the_docstrings(site: Path):
    lake_api = text_of(site / "api" / "lake.html")
    assert "open_lake" in lake_api and "activations_spec" in lake_api
    assert "reconstruct_sample" in text_of(site / "api" / "ingest.html")
    assert "run_all" in text_of(site / "api" / "analysis.html")


def section_id(program: str, path: tuple[str, ...]) -> str:
    """The id sphinx-argparse gives a (sub)command's section; the explorer's is docs/cli.md's heading."""
    if program == EXPLORER:
        return "the-explorer"
    return re.sub(r"[^a-z0-9]+", "-", " ".join((program, *path)).lower()).strip("-")


def test_the_cli_reference_holds_every_flag_of_every_parser(site: Path):
    from bs4 import BeautifulSoup

    page = BeautifulSoup((site / "cli.html").read_text(), "html.parser")
    missing = []
    for (program, path), flags in sorted(parsers().items()):
        section = page.find("section", id=section_id(program, path))
        if section is None:
            missing.append(f"{program} {' '.join(path)}: no section")
            continue
        shown = {kbd.get_text() for kbd in section.find_all("kbd")}
        missing += [f"{program} {' '.join(path)} {flag}" for flag in sorted(flags - shown - {"--help"})]
    assert not missing, f"the built CLI reference (docs/cli.md) lacks: {missing}"
    # The check reads each command's own section: generate's lists its flags, and only those.
    section = page.find("section", id="python-m-ingest-generate")
    assert section is not None
    generate = {kbd.get_text() for kbd in section.find_all("kbd")}
    assert "--num-samples" in generate and "--sample-id" not in generate
