"""End to end in a real browser: `streamlit run explorer/app.py` driven by Playwright + Debian's Chromium.

Hover shows a thumbnail served by the app's thumbnail server, a click selects a point and
lists its neighbours with thumbnails, a second click adds a manual neighbour, and the
selection export downloads a CSV with exactly those rows.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]

if not CHROMIUM.exists():
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{CHROMIUM} is missing; CI must install Debian's chromium (apt-get install -y chromium)", pytrace=False)
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@pytest.fixture
def explorer_url(small_lake, tmp_path):
    port = _free_port()
    log = (tmp_path / "streamlit.log").open("w")
    command = [
        sys.executable, "-m", "streamlit", "run", "explorer/app.py",
        "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
        "--", "--lake", str(small_lake.path),
    ]  # fmt: skip
    proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/_stcore/health", proc)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_hover_click_neighbours_and_export_in_chromium(explorer_url, small_lake, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1100}, accept_downloads=True)
            page.set_default_timeout(30_000)
            page.goto(explorer_url)
            points = page.locator(".st-key-scatter-0 g.mark-symbol.role-mark path")
            expect(points).to_have_count(len(small_lake.sample_ids))
            assert page.locator('[data-testid="stException"]').count() == 0

            # Hover: a tooltip with the thumbnail (served by URL, loaded by the browser) and the labels.
            target = points.nth(5)
            target.hover()
            tooltip = page.locator("#vg-tooltip-element")
            expect(tooltip).to_be_visible()
            thumb = tooltip.locator("img")
            expect(thumb).to_have_attribute("src", __import__("re").compile(r"^http://127\.0\.0\.1:\d+/thumb/\d+\.png$"))
            page.wait_for_function("() => { const i = document.querySelector('#vg-tooltip-element img'); return i && i.complete && i.naturalWidth === 64; }")
            selected_id = tooltip.locator("tr", has_text="sample id").locator("td.value").inner_text()
            assert selected_id in set(small_lake.sample_ids)
            page.screenshot(path=str(tmp_path / "hover.png"))

            # Click: the point is selected; its neighbours are listed with thumbnails.
            target.click()
            expect(page.get_by_text("10 nearest neighbours")).to_be_visible()
            expect(page.locator(".st-key-scatter-1 g.mark-symbol.role-mark path")).to_have_count(len(small_lake.sample_ids))
            assert selected_id in page.url.replace("%2F", "/")
            details = page.locator('[data-testid="stImage"] img')
            expect(details).to_have_count(1 + 10)

            # A second click on another class toggles a manual neighbour in.
            other = page.locator(".st-key-scatter-1 g.mark-symbol.role-mark path").nth(200)
            other.hover()
            other_id = page.locator("#vg-tooltip-element tr", has_text="sample id").locator("td.value").inner_text()
            other.click()
            expect(page.get_by_text("1 manual neighbours")).to_be_visible()
            page.mouse.move(5, 5)
            page.screenshot(path=str(tmp_path / "selected.png"), full_page=True)
            if os.environ.get("DMD2VIZ_SCREENSHOTS"):
                page.screenshot(path=os.path.join(os.environ["DMD2VIZ_SCREENSHOTS"], "explorer-selected.png"), full_page=True)

            # Export: the CSV holds the selected point, its 10 neighbours and the manual one.
            with page.expect_download() as info:
                page.get_by_role("button", name="Export selection (CSV)").click()
            exported = pd.read_csv(info.value.path())
            assert exported["role"].tolist() == ["selected"] + ["knn"] * 10 + ["manual"]
            assert exported["sample_id"].iloc[0] == selected_id
            assert exported["sample_id"].iloc[-1] == other_id
            assert (exported["distance"].iloc[1:11].diff().dropna() >= 0).all()
            assert page.locator('[data-testid="stException"]').count() == 0
        finally:
            browser.close()
