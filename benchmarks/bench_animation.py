"""Benchmark: the Noise levels page's animation, frames per second in headless Chromium.

The animation is the component `explorer.animation` builds (all sigma frames sent once,
interpolated and drawn in the browser). Two ways to measure it:

* default: synthetic joint embeddings of `--points` (50,000, the issue's target) and of
  `--baseline` (5,000) samples at 4 sigmas, 8 classes drifting between noise levels, each
  turned into the component's HTML exactly as the page does and opened in Chromium;
* `--explorer`: the explorer itself (`streamlit run explorer/app.py`) on the Noise levels
  page, measuring the component inside the page, on two synthetic lakes of those sizes
  (`bench_explorer.build_lake` plus a joint embedding of 4 sigmas);
* `--lake LAKE`: the same on an existing lake with a joint embedding.

For each: press Play, let it run `--warmup` seconds, then count the frames drawn in
`--seconds` (the page's `window.dmd2vizAnimation` counter) and report frames per second,
the mean time to draw one frame (ms; the headroom under the display rate, which caps the
fps at ~60) and the bytes of HTML sent. Prints JSON. Timings on a shared machine are
noisy: the JSON carries the load average.

    python benchmarks/bench_animation.py [--points 50000] [--baseline 5000] [--seconds 4]
    python benchmarks/bench_animation.py --explorer
    python benchmarks/bench_animation.py --lake /path/to/lake
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run"]
TARGET_FPS = 5.0
SIGMAS = np.array([0.5, 2.0, 10.0, 80.0])


def synthetic_embedding(points: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(points, 4 sigmas, 2) coordinates: 8 class clusters that blur into one blob as sigma grows; class codes."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 8, size=points).astype(np.uint8)
    centres = rng.normal(0, 6, size=(8, 2))
    mix = np.linspace(0.0, 0.85, len(SIGMAS))[None, :, None]  # sigma order as stored: increasing
    base = centres[codes][:, None, :] * (1 - mix)
    return (base + rng.normal(0, 1, size=(points, len(SIGMAS), 2)) * (1 + 2 * mix)).astype(np.float32), codes


def component_html(points: int) -> str:
    from explorer import animation, charts

    coords, codes = synthetic_embedding(points)
    return animation.animation_html(animation.build_frames(coords, SIGMAS, codes, charts.OKABE_ITO))


def measure(frame: Any, page: Any, warmup: float, seconds: float) -> dict[str, Any]:
    """Press Play in `frame` (the component's document) and count the frames it draws."""
    frame.wait_for_function("() => window.dmd2vizAnimation && window.dmd2vizAnimation.frames > 0")
    frame.click("#dmd2viz-play")
    page.wait_for_timeout(warmup * 1000)  # the benchmark's measuring window, not a wait for a state
    start = frame.evaluate("() => [window.dmd2vizAnimation.frames, performance.now()]")
    page.wait_for_timeout(seconds * 1000)
    end = frame.evaluate("() => [window.dmd2vizAnimation.frames, performance.now(), window.dmd2vizAnimation.drawMs, window.dmd2vizAnimation.points, window.dmd2vizAnimation.t]")
    frame.click("#dmd2viz-play")  # pause
    fps = (end[0] - start[0]) / ((end[1] - start[1]) / 1000)
    return {"points": int(end[3]), "fps": round(fps, 2), "draw_ms": round(float(end[2]), 2), "frames_counted": int(end[0] - start[0]),
            "meets_target": fps >= TARGET_FPS}


def run_standalone(sizes: list[int], warmup: float, seconds: float) -> list[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    results = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            for points in sizes:
                started = time.perf_counter()
                html = component_html(points)
                build_s = time.perf_counter() - started
                path = Path(tmp) / f"animation-{points}.html"
                path.write_text(html, encoding="utf-8")
                page = browser.new_page(viewport={"width": 900, "height": 700})
                started = time.perf_counter()
                page.goto(path.as_uri())
                result = measure(page.main_frame, page, warmup, seconds)
                result.update(html_bytes=len(html.encode()), build_s=round(build_s, 3))
                result["open_and_measure_s"] = round(time.perf_counter() - started, 2)
                results.append(result)
                page.close()
        finally:
            browser.close()
    return results


def build_joint_lake(path: Path, points: int) -> None:
    """`bench_explorer`'s synthetic lake of `points` samples plus a joint embedding of its layer at 4 sigmas."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_explorer import KEY, build_lake

    from lake import LakeWriter, Provenance, open_lake, parse_key
    from lake.layout import joint_embedding_spec

    build_lake(path, points)
    lake = open_lake(path)
    coords, _ = synthetic_embedding(points)
    columns = {name: lake.column("samples", name) for name in ("sample_id", "source", "class_id", "split")}
    with LakeWriter.open(path, Provenance(job="bench animation")) as writer:
        writer.table(joint_embedding_spec(parse_key(KEY).layer, SIGMAS.tolist(), 2, {"method": "synthetic"})).append(
            {"embedding": coords, **columns, "class_id": columns["class_id"].astype(np.int16), "sample_row": np.arange(points, dtype=np.int64)}
        )


def run_in_explorer(lake: Path, warmup: float, seconds: float) -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "tests" / "explorer"))
    from browser import chromium, explorer_page, start_explorer

    with tempfile.TemporaryDirectory() as tmp:
        server = start_explorer(lake, Path(tmp) / "streamlit.log")
        try:
            with chromium() as browser, explorer_page(browser, server, "bench") as app:
                app.goto()
                app.radio("Noise levels")
                frame = next_animation_frame(app.page)
                frame.locator("#dmd2viz-canvas").scroll_into_view_if_needed()
                return measure(frame, app.page, warmup, seconds)
        finally:
            server.stop()


def next_animation_frame(page: Any, timeout_s: float = 60.0) -> Any:
    """The iframe that holds the animation component, once its script has run."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for frame in page.frames:
            try:
                if frame.evaluate("() => !!window.dmd2vizAnimation"):
                    return frame
            except Exception:  # a frame navigating or detached: look again
                continue
        page.wait_for_timeout(100)
    raise TimeoutError("no animation component on the page")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=50_000, help="drawn points of the measured animation (default 50,000)")
    parser.add_argument("--baseline", type=int, default=5_000, help="drawn points of the baseline in the same run (default 5,000)")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds of playing counted per measurement (default 4)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of playing before counting (default 1)")
    parser.add_argument("--explorer", action="store_true", help="measure inside the explorer's Noise levels page, on synthetic lakes of both sizes")
    parser.add_argument("--lake", type=Path, help="measure inside the explorer's Noise levels page on this lake instead")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        parser.error(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    report: dict[str, Any] = {"benchmark": "animation", "target_fps": TARGET_FPS, "load_average": list(os.getloadavg()), "cpus": os.cpu_count()}
    if args.lake is not None:
        if not args.lake.exists():
            parser.error(f"--lake {args.lake}: no such directory")
        report["explorer"] = run_in_explorer(args.lake, args.warmup, args.seconds)
    elif args.explorer:
        report["explorer_runs"] = []
        with tempfile.TemporaryDirectory() as tmp:
            for points in (args.baseline, args.points):
                lake = Path(tmp) / f"lake-{points}"
                started = time.perf_counter()
                build_joint_lake(lake, points)
                result = run_in_explorer(lake, args.warmup, args.seconds)
                result["lake_build_s"] = round(time.perf_counter() - started, 1)
                report["explorer_runs"].append(result)
    else:
        report["runs"] = run_standalone([args.baseline, args.points], args.warmup, args.seconds)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
