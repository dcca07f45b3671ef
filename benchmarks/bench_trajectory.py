"""Benchmark of `python -m analysis trajectory`; prints one JSON document on stdout (progress on stderr).

Every run measures, in the same process run and on the same cells, three embeddings:
- aligned (the default method): umap.AlignedUMAP across the sigma slices of a balanced fit
  sample, every other cell placed within its sigma slice from its nearest fitted cells
  (`analysis.placement`), in chunks;
- joint: one PCA + one UMAP fitted on the same fit sample, the rest placed by chunked
  `transform`;
- independent: one UMAP per sigma fitted on the same fit cells (the anchor's approach;
  its scores are stored by every run beside the method's own).
On a lake with multi-step samples (the demo lake built by `make demo`), it also measures
where the steps land when placed among the fitted cells of the nearest probe sigma in log
sigma (what `aligned` does) against among all fitted cells in the joint PCA space.
Per run: wall time, peak RSS (a subprocess reading its own VmHWM), the step's own timings,
and per-sigma trustworthiness, jump and local jump for the method and for independent
per-sigma UMAPs.

Lakes: a copy of the demo lake (--demo-lake, default /work/scratch/demo_lake_new); a small
synthetic lake where every cell fits; and a large synthetic lake (--samples x 4 sigmas x
--channels, written through the lake API with the ingest layout) for the fit-sample +
chunked-placement path at scale, whose per-cell placement throughput is extrapolated to
1.28M samples x 4 sigmas (the JSON says so).

    python benchmarks/bench_trajectory.py --quick             # smoke run, a few minutes
    python benchmarks/bench_trajectory.py --samples 200000    # the issue's size (long on 2 cores)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LAYER = "enc.8x8_block2"
SIGMAS = (0.5, 2.0, 10.0, 80.0)
IMAGENET_CELLS = 1_281_167 * len(SIGMAS)


def log(message: str) -> None:
    print(f"[bench_trajectory] {message}", file=sys.stderr, flush=True)


def synthetic_batch(start: int, stop: int, channels: int, classes: int, seed: int) -> dict[str, np.ndarray]:
    """Rows [start, stop): class clusters in a 32-d latent, seen through a mixing that drifts with log sigma,
    plus noise that grows with sigma (so the sigma clouds differ but keep their structure); keyed by (seed, start)."""
    centers = np.random.default_rng([seed, 0]).normal(0.0, 3.0, (classes, 32)).astype(np.float32)
    mix_low = np.random.default_rng([seed, 1]).normal(0.0, 1.0, (32, channels)).astype(np.float32) / np.sqrt(32)
    mix_high = np.random.default_rng([seed, 2]).normal(0.0, 1.0, (32, channels)).astype(np.float32) / np.sqrt(32)
    rng = np.random.default_rng([seed, 3, start])
    rows = np.arange(start, stop)
    class_id = (rows * 7919 % classes).astype(np.int16)
    latent = centers[class_id] + rng.standard_normal((len(rows), 32), dtype=np.float32)
    out = np.empty((len(rows), len(SIGMAS), channels), dtype=np.float32)
    for j, sigma in enumerate(SIGMAS):
        t = np.log(sigma / SIGMAS[0]) / np.log(SIGMAS[-1] / SIGMAS[0])
        out[:, j] = latent @ ((1 - t) * mix_low + t * mix_high) + (0.1 + t) * rng.standard_normal((len(rows), channels), dtype=np.float32)
    generated = rows % 4 == 0
    return {
        "mean": out,
        "probed": np.ones((len(rows), len(SIGMAS)), dtype=bool),
        "sample_id": np.array([f"{'gen/bench/s0' if g else 'in64/bench'}/{i}" for i, g in zip(rows, generated)], dtype=object),
        "source": np.where(generated, "generated", "real").astype(object),
        "class_id": class_id,
    }


def write_synthetic(lake: Path, samples: int, channels: int, classes: int, seed: int) -> float:
    """activations/<layer> with the ingest layout (`lake.layout.activations_spec`), written block by block."""
    from lake import LakeWriter, Provenance
    from lake.layout import LayerShape, activations_spec

    spec = activations_spec(LAYER, LayerShape(channels, 8, 8), SIGMAS, False, {"model_id": "bench", "weights": "synthetic", "noise_seed": 0})
    started = time.perf_counter()
    batch = max(1024, (128 << 20) // (len(SIGMAS) * channels * 4))
    with LakeWriter.open(lake, Provenance(job="bench_trajectory table")) as writer:
        table = writer.table(spec)
        for start in range(0, samples, batch):
            table.append(synthetic_batch(start, min(start + batch, samples), channels, classes, seed))
            writer.commit()
    log(f"  wrote {samples:,} x {len(SIGMAS)} x {channels} in {time.perf_counter() - started:.0f} s")
    return time.perf_counter() - started


# ru_maxrss survives exec on Linux (a child reports at least its parent's peak), so the
# child reads its own high-water mark, VmHWM, from /proc.
CHILD = """
import json, sys, time
sys.path.insert(0, {repo!r})

def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

from analysis.commands import TrajectoryParams, run_trajectory
import dask.array, xarray, zarr, umap, sklearn.manifold  # imported up front so the baseline includes them
from lake import open_lake
baseline = peak_mb()
started = time.perf_counter()
outcome = run_trajectory({lake!r}, {layer!r}, TrajectoryParams(method={method!r}, fit_size={fit_size!r}), scheduler={scheduler!r},
                         force=True, log=lambda m: print(m, file=sys.stderr), progress=False)
seconds = time.perf_counter() - started
ds = open_lake({lake!r}).joint_embedding({layer!r})
arrays = {{name: [None if v != v else round(float(v), 4) for v in ds[name].values]
          for name in ("trustworthiness", "jump", "jump_local", "trustworthiness_independent", "jump_independent", "jump_local_independent")}}
print(json.dumps({{"seconds": seconds, "peak_rss_mb": peak_mb(), "rss_after_imports_mb": baseline, "summary": outcome.summary,
                   "timings": ds.attrs["timings"], "sigmas": ds.attrs["sigmas"], "per_sigma": arrays,
                   "probed_cells": ds.attrs["probed_cells"], "fit_rows": ds.attrs["fit_rows"]}}))
"""

# Where multi-step trajectory steps land under the two candidate placements of method aligned
# (run on a lake holding a stored aligned result): among the fitted cells of the probe sigma
# nearest in log sigma, or among all fitted cells (every sigma) in the joint PCA space.
STEPS_CHILD = """
import json, sys
sys.path.insert(0, {repo!r})
import numpy as np
from analysis.placement import map_spacing, nearest_fitted
from analysis.steps.trajectory import read_cells, read_inputs
from analysis.trajectory import FitSample, SlicePlacer, fit_pca, nearest_slices
from lake import open_lake

lake = open_lake({lake!r})
ds = lake.joint_embedding({layer!r})
p = ds.attrs["parameters"]
inputs = read_inputs(lake, {layer!r}, None)
mask = np.asarray(ds["fit_cell"].values, dtype=bool)
fit = FitSample([np.flatnonzero(mask[:, j]) for j in range(mask.shape[1])])
values = read_cells(lake, inputs.group, fit, inputs.positions)
pca = fit_pca(values, p["pca_dim"])  # the same cells, so the same PCA as the run's
scores = pca.transform(values)
embedding = np.asarray(ds["embedding"].values)
coords = [embedding[rows, j] for j, rows in enumerate(fit.rows)]
fitted = tuple(np.ascontiguousarray(scores[fit.slice(j)]) for j in range(len(fit.rows)))
spacing = map_spacing(embedding.reshape(-1, 2))
out = {{}}
for schedule in lake.schedules():
    if {layer!r} not in lake.trajectory_layers(schedule):
        continue
    steps = lake.trajectory(schedule, {layer!r})
    step_values = np.asarray(steps["mean"].values, dtype=np.float32)
    step_sigmas = [float(s) for s in steps["sigma"].values]
    targets = nearest_slices(step_sigmas, inputs.sigmas)
    keep = ~np.isnan(step_values).any(axis=2)
    nearest = SlicePlacer(pca, fitted, tuple(coords), targets, p["n_neighbors"], p["metric"])(step_values, keep)
    pooled = SlicePlacer(pca, (scores,), (np.concatenate(coords),), (0,) * len(step_sigmas), p["n_neighbors"], p["metric"])(step_values, keep)
    slice_of = np.concatenate([np.full(len(r), j) for j, r in enumerate(fit.rows)])
    per_step = []
    for i, sigma in enumerate(step_sigmas):
        near = nearest_fitted(scores, pca.transform(step_values[keep[:, i], i]), p["n_neighbors"], p["metric"])
        share = np.mean(slice_of[near.rows] == targets[i])
        per_step.append({{"sigma": round(sigma, 3), "nearest_probe_sigma": inputs.sigmas[targets[i]],
                         "pooled_neighbours_from_that_sigma": round(float(share), 3),
                         "pooled_neighbours_sigmas": {{str(inputs.sigmas[j]): round(float(np.mean(slice_of[near.rows] == j)), 3) for j in range(len(fit.rows))}},
                         "nearest_vs_pooled_distance_spacings": round(float(np.median(np.linalg.norm(nearest[keep[:, i], i] - pooled[keep[:, i], i], axis=1)) / spacing), 2)}})

    def step_jump(e):
        moves = np.linalg.norm(np.diff(e, axis=1), axis=2)
        return [round(float(np.nanmedian(moves[:, i]) / spacing), 2) for i in range(moves.shape[1])]

    out[schedule] = {{"samples": int(len(step_values)), "per_step": per_step,
                     "step_jump_nearest_slice": step_jump(nearest), "step_jump_pooled": step_jump(pooled)}}
print(json.dumps(out))
"""


def run_method(lake: Path, method: str, fit_size: int, scheduler: str) -> dict[str, Any]:
    """One `run_trajectory` in a fresh subprocess (so peak RSS and numba compilation are its own)."""
    code = CHILD.format(repo=str(REPO), lake=str(lake), layer=LAYER, method=method, fit_size=fit_size, scheduler=scheduler)
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if child.returncode != 0:
        raise RuntimeError(f"{method} on {lake} failed: {child.stderr[-2000:]}")
    measured = json.loads(child.stdout.strip().splitlines()[-1])
    s = measured["summary"]
    log(f"  {method}: {measured['seconds']:.0f} s, peak RSS {measured['peak_rss_mb']:.0f} MB, median jump {s['jump_median']} "
        f"(independent {s['jump_independent_median']}), local jump {s['jump_local_median']} ({s['jump_local_independent_median']}), "
        f"trustworthiness {s['trustworthiness_median']} ({s['trustworthiness_independent_median']})")
    return {key: (round(v, 2) if isinstance(v, float) else v) for key, v in measured.items()}


def compare_methods(lake: Path, fit_size: int, scheduler: str, steps: bool = False) -> dict[str, Any]:
    """joint, then aligned (each in its own process); with `steps`, the step-placement comparison on the aligned result."""
    out: dict[str, Any] = {"joint": run_method(lake, "joint", fit_size, scheduler), "aligned": run_method(lake, "aligned", fit_size, scheduler)}
    if steps:
        code = STEPS_CHILD.format(repo=str(REPO), lake=str(lake), layer=LAYER)
        child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
        if child.returncode != 0:
            raise RuntimeError(f"step placement on {lake} failed: {child.stderr[-2000:]}")
        out["step_placement"] = json.loads(child.stdout.strip().splitlines()[-1])
        log(f"  step placement: {json.dumps(out['step_placement'])}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo-lake", default="/work/scratch/demo_lake_new", help="demo lake to copy (never written); '' skips it")
    parser.add_argument("--samples", type=int, default=200_000, help="samples of the large synthetic lake (x 4 sigmas; default 200000; 0 skips it)")
    parser.add_argument("--small-samples", type=int, default=2500, help="samples of the small synthetic lake where every cell fits (default 2500; 0 skips it)")
    parser.add_argument("--channels", type=int, default=768, help="channels of the synthetic tables (default 768, the full model's bottleneck)")
    parser.add_argument("--classes", type=int, default=50, help="clusters of the synthetic tables (default 50)")
    parser.add_argument("--fit-size", type=int, default=20000, help="--fit-size of the runs (default 20000)")
    parser.add_argument("--scheduler", default="threads", help="Dask scheduler of the runs (default threads)")
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run (20k samples, 128 channels)")
    parser.add_argument("--workdir", help="where the lakes go (default a temporary folder, removed)")
    parser.add_argument("--out", help="also write the JSON document here, after every stage (a long run keeps what it measured)")
    args = parser.parse_args()
    if args.quick:
        args.samples, args.small_samples, args.channels = 20_000, 1000, 128

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_trajectory_"))
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_average_at_start": os.getloadavg()},
        "parameters": {k: v for k, v in vars(args).items() if k not in ("workdir", "out")},
    }

    def save() -> None:
        if args.out:
            Path(args.out).write_text(json.dumps(result, indent=2))

    try:
        if args.demo_lake:
            lake = workdir / "demo_lake"
            shutil.copytree(args.demo_lake, lake)
            log(f"demo lake copy: {lake}")
            result["demo"] = compare_methods(lake, args.fit_size, args.scheduler, steps=True)
            shutil.rmtree(lake)
            save()

        if args.small_samples:
            lake = workdir / "small"
            cells = args.small_samples * len(SIGMAS)
            log(f"small synthetic lake: {args.small_samples:,} samples x {len(SIGMAS)} sigmas x {args.channels} "
                f"({'every cell fitted' if cells <= args.fit_size else f'{args.fit_size:,} of {cells:,} cells fitted'})")
            write_synthetic(lake, args.small_samples, args.channels, args.classes, seed=1)
            result["synthetic_small"] = {"samples": args.small_samples, **compare_methods(lake, args.fit_size, args.scheduler)}
            shutil.rmtree(lake)
            save()

        if args.samples:
            lake = workdir / "large"
            log(f"large synthetic lake: {args.samples:,} samples x {len(SIGMAS)} sigmas x {args.channels}")
            write_s = write_synthetic(lake, args.samples, args.channels, args.classes, seed=2)
            table_bytes = args.samples * len(SIGMAS) * args.channels * 4
            large = compare_methods(lake, args.fit_size, args.scheduler)
            main_run = large["aligned"]  # the default method
            placed = main_run["probed_cells"] - main_run["fit_rows"]
            timings = main_run["timings"]
            # What does not grow with the table: the fits on the fit sample and the scores on the score sample.
            constant = timings["fit"] + timings["scores"] + timings["independent"] + timings["trajectories"]
            linear = main_run["seconds"] - constant  # reading labels, hashing ids, the placement, writing the result
            result["synthetic_large"] = {
                "samples": args.samples,
                "cells": main_run["probed_cells"],
                "table_gb_float32": round(table_bytes / 1e9, 2),
                "write_s": round(write_s, 1),
                **large,
                "aligned_placed_cells_per_s": round(placed / max(timings["transform"], 1e-9), 1),
                "joint_transform_cells_per_s": round(placed / max(large["joint"]["timings"]["transform"], 1e-9), 1),
                "peak_rss_over_table_size": round(main_run["peak_rss_mb"] * 2**20 / table_bytes, 4),
                "extrapolated_1_28M_x_4": {
                    "cells": IMAGENET_CELLS,
                    "note": "extrapolated, not run, for the default method (aligned): the measured fits and scores (which do not "
                            "grow with the table) plus everything else (labels, id hashing, the chunked placement, the write) scaled "
                            "linearly by cells; placement runs in blocks of 2,500 samples, at most 2 x cores in flight, so its memory "
                            "does not grow",
                    "seconds": round(constant + linear * IMAGENET_CELLS / main_run["probed_cells"], 0),
                    "table_gb_float32": round(IMAGENET_CELLS * args.channels * 4 / 1e9, 1),
                },
            }
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    result["machine"]["load_average_at_end"] = os.getloadavg()
    save()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
