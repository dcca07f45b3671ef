"""Benchmark: an edit job from the explorer, click to points visible, against the bare job on the command line.

On two copies of a lake built with the tiny preset (`make demo` builds one: `demo_lake/`),
for N variations of one generated sample (default N=8), on CPU:

* bare job: the exact argument lists the explorer runs (`python -m ingest edit variations
  ... --probe KEY`, then `python -m analysis place --key KEY`, from `explorer.jobs.build_commands`)
  run one after the other from this script, wall time of each;
* click to points visible: in headless Chromium on `streamlit run explorer/app.py`, from
  the click on "Variations" to the N new samples drawn on the map (diamonds whose datum
  says placed), with the job's own driver time from its status file.

The ratio click / bare is the explorer's overhead factor: starting the driver, polling the
job folder (1 s), the page rerun that loads the lake's new commit, and drawing;
`page_overhead_s` (click to visible minus the driver's own time for the commands) is that
overhead alone, less sensitive to a busy machine than the ratio of two separate runs. Each repeat
uses a new seed (so new samples) on both copies; the JSON reports every repeat and the
medians. Timings on a shared machine are noisy: the JSON carries the load average.

    python benchmarks/bench_jobs.py --lake demo_lake [--n 8] [--repeat 3] [--out result.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "explorer"))

_PLACED_JS = """
(selector) => [...document.querySelectorAll(selector)]
  .filter((p) => p.__data__ && p.__data__.datum && p.__data__.datum.placement).length
"""


def commands_for(lake: Path, parent: str, key: str, n: int, seed: int) -> list[Any]:
    """The explorer's own argument lists for this job (validated against the lake as the explorer does)."""
    from explorer import job_commands
    from explorer.session import LakeSession
    from explorer.jobs_panel import lake_facts

    request = job_commands.JobRequest("variations", (parent,), key, n=n, seed=seed)
    return job_commands.build_commands(request, lake_facts(LakeSession(lake)))


def bare_job(lake: Path, parent: str, key: str, n: int, seed: int) -> dict[str, float]:
    """Run the job's commands here, one after the other; wall seconds of each and in all."""
    times: dict[str, float] = {}
    for command in commands_for(lake, parent, key, n, seed):
        start = time.perf_counter()
        result = subprocess.run(list(command.argv), cwd=REPO, capture_output=True, text=True)
        times[f"{command.name}_s"] = round(time.perf_counter() - start, 3)
        if result.returncode != 0:
            raise SystemExit(f"bench_jobs: {' '.join(command.argv[1:5])} failed ({result.returncode}): {(result.stderr or result.stdout).strip()[-500:]}")
    times["total_s"] = round(sum(times.values()), 3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lake", type=Path, default=REPO / "demo_lake", help="a lake built with the tiny preset, e.g. by `make demo` (default: ./demo_lake); it is copied, never written")
    parser.add_argument("--n", type=int, default=8, help="variations per job (1..64; default 8)")
    parser.add_argument("--repeat", type=int, default=1, help="jobs per side, each with a new seed; the JSON reports medians (default 1)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for one job's points in the browser (default 900)")
    args = parser.parse_args()
    if not (args.lake / "zarr.json").exists():
        parser.error(f"--lake {args.lake}: not a lake (no zarr.json); `make demo-lake` builds one")
    if not 1 <= args.n <= 64:
        parser.error(f"--n {args.n}: must be between 1 and 64")
    if args.repeat < 1:
        parser.error(f"--repeat {args.repeat}: must be at least 1")

    from browser import SCATTER, chromium, explorer_page, start_explorer

    from explorer import jobs
    from explorer.lake_status import list_embeddings
    from lake import open_lake

    work = Path(tempfile.mkdtemp(prefix="bench_jobs-"))
    os.environ[jobs.JOBS_DIR_ENV] = str(work / "jobs")
    try:
        bare_lake, ui_lake = work / "bare", work / "ui"
        shutil.copytree(args.lake, bare_lake)
        shutil.copytree(args.lake, ui_lake)
        key = list_embeddings(open_lake(ui_lake))[0].key  # the embedding the explorer opens on
        samples_before = int(open_lake(ui_lake).num_samples)
        server = start_explorer(ui_lake, work / "streamlit.log")
        runs: list[dict[str, Any]] = []
        try:
            with chromium() as browser, explorer_page(browser, server, "bench_jobs") as app:
                app.goto()
                parent = app.free_point(lambda p: p.source == "generated")
                app.click(parent)
                for seed in range(args.repeat):
                    bare = bare_job(bare_lake, parent.sample_id, key, args.n, seed)
                    app.page.get_by_test_id("stNumberInput").filter(has=app.page.get_by_text("N", exact=True)).locator("input").fill(str(args.n))
                    app.page.get_by_test_id("stNumberInput").filter(has=app.page.get_by_text("seed", exact=True)).locator("input").fill(str(seed))
                    expected = args.n * (seed + 1)
                    start = time.perf_counter()
                    app.page.get_by_role("button", name="Variations", exact=True).click()
                    app.page.wait_for_function(
                        f"(sel) => ({_PLACED_JS})(sel) >= {expected}", arg=f"{SCATTER} g.mark-symbol.role-mark path",
                        timeout=args.timeout * 1000, polling="raf",
                    )
                    visible = time.perf_counter() - start
                    app.settle()  # and no error box anywhere
                    job = jobs.list_jobs(ui_lake, limit=1)[0]
                    driver = (job.finished or time.time()) - job.started
                    runs.append({
                        "seed": seed, "bare_job": bare, "click_to_points_visible_s": round(visible, 3),
                        "driver_job_s": round(driver, 3), "ratio": round(visible / bare["total_s"], 3),
                        "overhead_s": round(visible - bare["total_s"], 3),
                        # What the page adds after the job's own commands: driver start, the 1 s poll, the rerun, drawing.
                        "page_overhead_s": round(visible - driver, 3),
                    })  # fmt: skip
        finally:
            server.stop()
        samples = int(open_lake(ui_lake).num_samples)
        result = {
            "benchmark": "explorer edit job: click to points visible vs the bare job",
            "lake": str(args.lake), "samples_before": samples_before, "samples_after": samples, "key": key, "n": args.n,
            "preset": "tiny", "device": "cpu", "repeat": args.repeat, "runs": runs,
            "median": {
                name: round(statistics.median(r[name] for r in runs), 3)
                for name in ("click_to_points_visible_s", "driver_job_s", "ratio", "overhead_s", "page_overhead_s")
            } | {"bare_job_s": round(statistics.median(r["bare_job"]["total_s"] for r in runs), 3)},
            "load_average": os.getloadavg(), "cpus": os.cpu_count(),
        }  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
