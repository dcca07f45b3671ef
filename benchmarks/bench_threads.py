"""Benchmark: a CPU job's speed alone and beside a CPU-bound process, with torch's old thread setup and ours.

The job: the tiny ImageNet generator (`models.load_generator("tiny")`) making --samples samples
in blocks of --batch (`one_step_generate`), timed after loading, in a fresh process per run
(libgomp reads OMP_WAIT_POLICY once, when torch loads it). The modes:

- old: what every job did before `models.configure_threads`: torch imported first with no
  OMP_* variables (torch's default threads, libgomp's default wait: spin, then sleep);
- new: the jobs' path today: `import models` first (OMP_WAIT_POLICY=PASSIVE), threads from
  the affinity mask (`models.threads`);
- one-thread: new with OMP_NUM_THREADS=1 (the README's old advice for busy machines).

Each mode runs alone, then beside a busy process (a Python process multiplying 256x256 numpy
matrices on one thread, started before the run and killed after it). Runs are interleaved over
--repeats rounds and the median kept, so a change in the machine's other load hits every mode.
Prints JSON: seconds per mode and condition, busy/alone slowdown per mode and old/new ratios.

    python benchmarks/bench_threads.py                  # 16 samples, 2 rounds
    python benchmarks/bench_threads.py --samples 64 --repeats 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

WORKER = """
import json, sys, time
if sys.argv[1] == "old":
    import torch  # before models: libgomp starts with the default wait policy, torch with its default threads
import models, torch
samples, batch = int(sys.argv[2]), int(sys.argv[3])
generator = models.load_generator("tiny", device="cpu")
noise, classes = models.sample_batch(seed=0, indices=range(samples))
start = time.perf_counter()
with torch.inference_mode():
    for i in range(0, samples, batch):
        models.one_step_generate(generator.module, noise[i:i + batch], classes[i:i + batch])
print(json.dumps({"seconds": time.perf_counter() - start, "threads": torch.get_num_threads()}))
"""

BUSY = """
import numpy as np
a = np.random.default_rng(0).random((256, 256))
while True:
    a = a @ a
    a /= np.abs(a).max()
"""

OMP_VARIABLES = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS")
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def mode_env(mode: str) -> dict[str, str]:
    """The environment a run of `mode` starts with: no OMP_* variables but those the mode sets."""
    env = {k: v for k, v in os.environ.items() if k not in OMP_VARIABLES}
    env["PYTHONPATH"] = str(REPO)
    if mode == "one-thread":
        env["OMP_NUM_THREADS"] = "1"
    return env


def run_once(mode: str, samples: int, batch: int, busy: bool) -> dict[str, float]:
    """One timed run of `mode`, alone or beside a one-thread busy process (killed after)."""
    spinner = None
    if busy:
        spinner = subprocess.Popen([sys.executable, "-c", BUSY], env={**os.environ, **ONE_THREAD},
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # let it reach its loop
    try:
        out = subprocess.run([sys.executable, "-c", WORKER, "old" if mode == "old" else "new", str(samples), str(batch)],
                             cwd=REPO, env=mode_env(mode), capture_output=True, text=True, check=True, timeout=1800)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--modes", default="old,new,one-thread")
    args = parser.parse_args()
    modes = args.modes.split(",")

    load_before = os.getloadavg()
    times: dict[str, dict[str, list[float]]] = {m: {"alone": [], "busy": []} for m in modes}
    threads: dict[str, int] = {}
    for _ in range(args.repeats):
        for mode in modes:
            for condition in ("alone", "busy"):
                found = run_once(mode, args.samples, args.batch, condition == "busy")
                times[mode][condition].append(found["seconds"])
                threads[mode] = int(found["threads"])
    results = {}
    for mode in modes:
        alone, busy = (statistics.median(times[mode][c]) for c in ("alone", "busy"))
        results[mode] = {"threads": threads[mode], "alone_s": round(alone, 3), "busy_s": round(busy, 3),
                         "busy_over_alone": round(busy / alone, 2),
                         "runs_s": {c: [round(t, 3) for t in times[mode][c]] for c in ("alone", "busy")}}
    report = {
        "workload": {"preset": "tiny", "samples": args.samples, "batch": args.batch, "device": "cpu",
                     "repeats": args.repeats, "statistic": "median"},
        "machine": {"cpus_affinity": len(os.sched_getaffinity(0)), "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
        "results": results,
    }
    if "old" in results and "new" in results:
        report["old_over_new"] = {c: round(results["old"][f"{c}_s"] / results["new"][f"{c}_s"], 2)
                                  for c in ("alone", "busy")}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
