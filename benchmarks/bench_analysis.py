"""Benchmark of the analysis package; prints one JSON document on stdout (progress on stderr).

Each measurement is paired with a baseline from the same run:
- UMAP: fit on a balanced sample + chunked transform vs a full fit (wall time and
  trustworthiness of each). When the full fit on every point is estimated to exceed
  --full-fit-budget seconds (from the measured sample fit, assuming n^1.1 scaling), it runs
  on the largest hash-chosen subset that fits the budget, and the JSON says so.
- UMAP transform on local threads vs a local process pool (and whether the coordinates match).
- k-NN graph: NN-descent build time and recall@10 vs the exact brute-force graph (time ratio).
- Single-query latency on --query-points x 50 scores: NeighborIndex vs a naive numpy scan.
- Peak RSS of the PCA step on an activation table larger than a third of RAM, in a
  subprocess (resource.getrusage): bounded memory vs the table's size.

    python benchmarks/bench_analysis.py --quick          # smoke run, ~3 minutes
    python benchmarks/bench_analysis.py                  # full sizes (200k x 768, 1.28M queries, ~8.5 GB PCA)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LAYER = "enc.8x8_block2"
SIGMA = 2.0
KEY = f"{LAYER}@sigma2"


@dataclass(frozen=True)
class Sizes:
    points: int
    dim: int
    classes: int
    fit_size: int
    query_points: int
    pca_gigabytes: float
    full_fit_budget_s: float


FULL = Sizes(points=200_000, dim=768, classes=100, fit_size=20_000, query_points=1_280_000, pca_gigabytes=8.5, full_fit_budget_s=900)
QUICK = Sizes(points=20_000, dim=128, classes=20, fit_size=4_000, query_points=200_000, pca_gigabytes=0.3, full_fit_budget_s=120)


def log(message: str) -> None:
    print(f"[bench_analysis] {message}", file=sys.stderr, flush=True)


def clustered_batch(start: int, stop: int, dim: int, classes: int, seed: int) -> dict[str, np.ndarray]:
    """Rows [start, stop) of a clustered table; every draw keyed by (seed, row block)."""
    centers = np.random.default_rng([seed, 0]).normal(0.0, 3.0, (classes, dim)).astype(np.float32)
    mixing = np.random.default_rng([seed, 1]).normal(0.0, 1.0, (32, dim)).astype(np.float32) / np.sqrt(32)
    rng = np.random.default_rng([seed, 2, start])
    rows = np.arange(start, stop)
    class_id = (rows * 7919 % classes).astype(np.int16)
    generated = rows % 5 == 0
    n = stop - start
    values = centers[class_id] + rng.standard_normal((n, 32), dtype=np.float32) @ mixing
    values += 0.3 * rng.standard_normal((n, dim), dtype=np.float32)
    values[generated] += 0.25
    return {
        "mean": values[:, None, :],
        "sample_id": np.array([f"{'gen/bench/s0' if g else 'in64/bench'}/{i}" for i, g in zip(rows, generated)], dtype=object),
        "source": np.where(generated, "generated", "real").astype(object),
        "class_id": class_id,
    }


def write_table(lake: Path, rows: int, dim: int, classes: int, seed: int, rows_per_chunk: int = 4096) -> float:
    """An activations/<layer> table of `rows` x `dim` float32 (one sigma), written block by block."""
    from lake import ColumnSpec, LakeWriter, Provenance, TableSpec
    from lake.layout import activations_group
    from lake.schema import STRING

    # The layout's columns minus `probed` (every row is probed), with a chunking chosen here.
    spec = TableSpec(
        path=activations_group(LAYER),
        row_dim="sample",
        columns=(
            ColumnSpec("mean", "float32", (1, dim), ("sigma", "channel"), rows_per_chunk=rows_per_chunk, coord=False),
            ColumnSpec("sample_id", STRING),
            ColumnSpec("source", STRING),
            ColumnSpec("class_id", "int16"),
        ),
        fixed_coords={"sigma": np.array([SIGMA], dtype=np.float32), "channel": np.arange(dim, dtype=np.int32)},
        attrs={"layer": LAYER, "model_id": "bench", "weights": "random", "noise_seed": 0, "probe": "synthetic"},
    )
    started = time.perf_counter()
    batch = rows_per_chunk * max(1, (64 << 20) // (rows_per_chunk * dim * 4))
    with LakeWriter.open(lake, Provenance(job="bench_analysis table")) as writer:
        table = writer.table(spec)
        for start in range(0, rows, batch):
            table.append(clustered_batch(start, min(start + batch, rows), dim, classes, seed))
            if (start // batch) % 20 == 0:
                writer.commit()
                log(f"  wrote {min(start + batch, rows):,} / {rows:,} rows")
    return time.perf_counter() - started


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- UMAP + k-NN


def bench_umap_knn(sizes: Sizes, workdir: Path) -> dict[str, Any]:
    from analysis import UMAPParams, run_knn, run_pca, run_umap
    from analysis.embedding import fit_umap, trustworthiness
    from analysis.neighbors import brute_force_query, build_knn_graph, recall_at_k
    from analysis.sampling import hash_subsample
    from analysis.store import as_lake, load_scores

    quiet = {"log": log, "progress": False}
    lake = workdir / "umap_lake"
    log(f"writing {sizes.points:,} x {sizes.dim} clustered activations")
    write_seconds = write_table(lake, sizes.points, sizes.dim, sizes.classes, seed=1)
    started = time.perf_counter()
    run_pca(lake, LAYER, SIGMA, pca_dim=50, **quiet)
    pca_seconds = time.perf_counter() - started
    scores = load_scores(as_lake(lake), KEY)
    ids = as_lake(lake).column(f"analysis/pca/{KEY}", "sample_id")

    # JIT warm-up (numba compiles umap / pynndescent once per process): timed separately.
    started = time.perf_counter()
    warm = fit_umap(scores[:5000], UMAPParams(fit_size=5000), will_transform=True)
    warm.transform(scores[5000:5100])
    build_knn_graph(scores[:3000], 10, exact=False)
    jit_seconds = time.perf_counter() - started

    log("UMAP: fit on a balanced sample + transform (threads)")
    params = UMAPParams(fit_size=sizes.fit_size)
    sample_fit = run_umap(lake, LAYER, SIGMA, params, scheduler="threads", **quiet)
    emb_threads = np.asarray(as_lake(lake).root[f"analysis/embeddings/{KEY}/{params.name}/embedding"][:])
    attrs = dict(as_lake(lake).root[f"analysis/embeddings/{KEY}/{params.name}"].attrs)

    log("UMAP: the same on a local process pool")
    started = time.perf_counter()
    run_umap(lake, LAYER, SIGMA, params, scheduler="processes", force=True, **quiet)
    processes_seconds = time.perf_counter() - started
    emb_processes = np.asarray(as_lake(lake).root[f"analysis/embeddings/{KEY}/{params.name}/embedding"][:])

    # Time of the sample fit alone (same rows the command used), to size the full fit.
    from analysis.results import read_labels
    from analysis.sampling import balanced_subsample, group_labels

    labels = read_labels(as_lake(lake), f"analysis/pca/{KEY}")
    fit_rows = balanced_subsample(labels.sample_id, group_labels(labels.source, labels.class_id), sizes.fit_size, params.seed, salt="umap-fit")
    started = time.perf_counter()
    fit_umap(scores[fit_rows], params, will_transform=True)
    fit_only_seconds = time.perf_counter() - started
    estimate = fit_only_seconds * (sizes.points / sizes.fit_size) ** 1.1
    if estimate <= sizes.full_fit_budget_s:
        full_rows_count = sizes.points
        note = "full fit on every point, through `run_umap(full_fit=True)`"
        log(f"UMAP: full fit on all {sizes.points:,} points (estimated {estimate:.0f} s)")
        full = run_umap(lake, LAYER, SIGMA, UMAPParams(full_fit=True), **quiet)
        full_seconds, full_trust = float(full.summary["seconds"]), float(full.summary["trustworthiness"])
    else:
        full_rows_count = int(sizes.fit_size * (sizes.full_fit_budget_s / fit_only_seconds) ** (1 / 1.1)) // 10000 * 10000
        full_rows_count = max(sizes.fit_size, min(full_rows_count, sizes.points))
        note = (
            f"a full fit on all {sizes.points:,} points was estimated at {estimate:.0f} s (> budget {sizes.full_fit_budget_s:.0f} s) "
            f"from the {sizes.fit_size:,}-point fit ({fit_only_seconds:.0f} s) with n^1.1 scaling; the full fit ran on a "
            f"hash-chosen subset of {full_rows_count:,} points instead"
        )
        log(f"UMAP: {note}")
        subset = hash_subsample(ids, full_rows_count, 42, salt="bench-full")
        started = time.perf_counter()
        model = fit_umap(scores[subset], UMAPParams(full_fit=True))
        full_seconds = time.perf_counter() - started
        trust_rows = hash_subsample(ids[subset], 2000, 42, salt="trustworthiness")
        full_trust = trustworthiness(scores[subset][trust_rows], model.embedding_[trust_rows])

    umap_result = {
        "points": sizes.points,
        "input_dim": sizes.dim,
        "pca_dim": 50,
        "sample_fit": {
            "fit_rows": sizes.fit_size,
            "wall_s_threads": sample_fit.summary["seconds"],
            "wall_s_processes": round(processes_seconds, 2),
            "fit_only_s": round(fit_only_seconds, 2),
            "trustworthiness": sample_fit.summary["trustworthiness"],
            "identical_threads_vs_processes": bool(np.array_equal(emb_threads, emb_processes)),
        },
        "full_fit": {"rows": full_rows_count, "wall_s": round(full_seconds, 2), "trustworthiness": full_trust, "note": note},
        "full_fit_estimate_all_points_s": round(estimate, 1),
        "trustworthiness_sample": attrs.get("trustworthiness_sample"),
        "jit_warmup_s": round(jit_seconds, 2),
        "pca_s": round(pca_seconds, 2),
        "table_write_s": round(write_seconds, 2),
    }
    per_point_full = full_seconds / full_rows_count
    per_point_sample = float(sample_fit.summary["seconds"]) / sizes.points
    umap_result["ratio_full_fit_per_point_vs_sample_fit_per_point"] = round(per_point_full / per_point_sample, 2)

    log("k-NN: NN-descent graph vs exact brute force")
    started = time.perf_counter()
    knn = run_knn(lake, LAYER, SIGMA, k=10, exact=False, **quiet)
    nndescent_seconds = time.perf_counter() - started
    stored = np.asarray(as_lake(lake).root[f"analysis/knn/{KEY}/neighbor_row"][:])
    sample = hash_subsample(ids, 1000, 7, salt="bench-recall")
    norms = np.einsum("ij,ij->i", scores, scores)
    truth, _ = brute_force_query(scores, norms, scores[sample], 10, exclude=sample)
    started = time.perf_counter()
    exact_graph = build_knn_graph(scores, 10, exact=True)
    exact_seconds = time.perf_counter() - started
    knn_result = {
        "points": sizes.points,
        "dim": int(scores.shape[1]),
        "nndescent_build_s": knn.summary["seconds"],
        "nndescent_command_s": round(nndescent_seconds, 2),
        "recall_at_10_vs_exact_1000_rows": recall_at_k(stored[sample], truth),
        "exact_brute_force_s": round(exact_seconds, 2),
        "exact_graph_self_check_recall": recall_at_k(exact_graph.indices[sample], truth),
        "speedup_vs_exact": round(exact_seconds / max(float(knn.summary["seconds"]), 1e-9), 2),
    }
    shutil.rmtree(lake, ignore_errors=True)
    return {"umap": umap_result, "knn": knn_result}


# --------------------------------------------------------------------------- query latency


def bench_query(sizes: Sizes) -> dict[str, Any]:
    from analysis import NeighborIndex

    n, d = sizes.query_points, 50
    log(f"query latency on {n:,} x {d} scores")
    rng = np.random.default_rng([5, 0])
    centers = rng.normal(0, 4, (1000, d)).astype(np.float32)
    scores = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, 100_000):
        block = np.random.default_rng([5, 1, start])
        stop = min(start + 100_000, n)
        scores[start:stop] = centers[np.arange(start, stop) % 1000] + block.standard_normal((stop - start, d), dtype=np.float32)
    ids = np.array([f"s{i}" for i in range(n)], dtype=object)
    started = time.perf_counter()
    index = NeighborIndex(key="bench", scores=scores, sample_ids=ids)
    open_seconds = time.perf_counter() - started
    queries = np.random.default_rng([5, 2]).choice(n, 50, replace=False)

    def timed(fn: Any) -> list[float]:
        out = []
        for q in queries:
            t = time.perf_counter()
            fn(q)
            out.append((time.perf_counter() - t) * 1000)
        return out

    index.query([int(queries[0])], k=10)  # warm caches
    ours = timed(lambda q: index.query([int(q)], k=10))
    by_id = timed(lambda q: index.query([ids[q]], k=10))

    def naive(q: int) -> None:
        distances = np.linalg.norm(scores - scores[q], axis=1)
        np.argsort(distances)[:11]

    baseline = timed(naive)
    check_rows, _ = index.query([int(queries[0])], k=10)
    naive_rows = np.argsort(np.linalg.norm(scores - scores[queries[0]], axis=1))[1:11]
    return {
        "points": n,
        "dim": d,
        "k": 10,
        "index_open_s": round(open_seconds, 2),
        "latency_ms_p50": round(float(np.median(ours)), 2),
        "latency_ms_p95": round(float(np.percentile(ours, 95)), 2),
        "latency_by_sample_id_ms_p50": round(float(np.median(by_id)), 2),
        "baseline_naive_norm_argsort_ms_p50": round(float(np.median(baseline)), 2),
        "speedup_vs_naive": round(float(np.median(baseline) / np.median(ours)), 2),
        "same_neighbours_as_naive": bool(set(check_rows[0].tolist()) == set(naive_rows.tolist())),
        "index_memory_mb": round(scores.nbytes / 2**20, 1),
    }


# --------------------------------------------------------------------------- PCA memory


# ru_maxrss survives exec on Linux (a child reports at least its parent's peak), so the
# child reads its own high-water mark, VmHWM, from /proc (falling back to ru_maxrss).
PCA_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})

def peak_mb():
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

from analysis import run_pca
import dask.array, xarray, zarr  # imported up front so the baseline below includes them
baseline = peak_mb()
started = time.perf_counter()
outcome = run_pca({lake!r}, {layer!r}, {sigma!r}, pca_dim=50, scheduler={scheduler!r}, log=lambda m: print(m, file=sys.stderr), progress=False)
print(json.dumps({{"seconds": time.perf_counter() - started, "peak_rss_mb": peak_mb(), "baseline_rss_mb": baseline,
                   "summary": outcome.summary}}))
"""


def bench_pca_memory(sizes: Sizes, workdir: Path) -> dict[str, Any]:
    import psutil

    dim = 768
    rows = int(sizes.pca_gigabytes * 1e9 / (dim * 4))
    lake = workdir / "pca_lake"
    log(f"PCA memory: writing {rows:,} x {dim} float32 ({rows * dim * 4 / 1e9:.1f} GB)")
    write_seconds = write_table(lake, rows, dim, 100, seed=2)
    on_disk = directory_bytes(lake)
    log("PCA memory: run_pca in a subprocess")
    child = subprocess.run(
        [sys.executable, "-c", PCA_CHILD.format(repo=str(REPO), lake=str(lake), layer=LAYER, sigma=SIGMA, scheduler="threads")],
        capture_output=True,
        text=True,
        check=False,
    )
    if child.returncode != 0:
        raise RuntimeError(f"PCA subprocess failed: {child.stderr[-2000:]}")
    measured = json.loads(child.stdout.strip().splitlines()[-1])
    shutil.rmtree(lake, ignore_errors=True)
    table_bytes = rows * dim * 4
    ram = psutil.virtual_memory().total
    return {
        "rows": rows,
        "channels": dim,
        "table_gb_float32": round(table_bytes / 1e9, 2),
        "on_disk_gb": round(on_disk / 1e9, 2),
        "machine_ram_gb": round(ram / 1e9, 1),
        "table_over_a_third_of_ram": bool(table_bytes > ram / 3),
        "write_s": round(write_seconds, 1),
        "pca_s": round(measured["seconds"], 1),
        "pca_read_mb_per_s": round(table_bytes / 2**20 / measured["seconds"], 1),
        "peak_rss_mb": round(measured["peak_rss_mb"], 1),
        "rss_after_imports_mb": round(measured["baseline_rss_mb"], 1),
        "peak_rss_over_table_size": round(measured["peak_rss_mb"] * 2**20 / table_bytes, 4),
        "summary": measured["summary"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run (a few minutes)")
    parser.add_argument("--only", default="umap,query,pca", help="comma-separated parts: umap (UMAP + k-NN), query, pca")
    parser.add_argument("--workdir", type=Path, help="where the temporary lakes go (default: a new temp dir, deleted after)")
    parser.add_argument("--points", type=int, help="override the UMAP/k-NN point count")
    parser.add_argument("--pca-gigabytes", type=float, help="override the PCA table size in GB")
    parser.add_argument("--full-fit-budget", type=float, help="seconds allowed for the full UMAP fit (default 900; 120 with --quick)")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    overrides = {
        "points": args.points,
        "pca_gigabytes": args.pca_gigabytes,
        "full_fit_budget_s": args.full_fit_budget,
    }
    sizes = Sizes(**{**asdict(sizes), **{k: v for k, v in overrides.items() if v is not None}})
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_analysis_"))
    workdir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "benchmark": "analysis",
        "mode": "quick" if args.quick else "full",
        "sizes": asdict(sizes),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average_at_start": list(os.getloadavg())},
    }
    started = time.perf_counter()
    try:
        if "pca" in parts:
            result["pca_memory"] = bench_pca_memory(sizes, workdir)
        if "query" in parts:
            result["query"] = bench_query(sizes)
        if "umap" in parts:
            result.update(bench_umap_knn(sizes, workdir))
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    result["total_s"] = round(time.perf_counter() - started, 1)
    result["machine"]["load_average_at_end"] = list(os.getloadavg())
    result["peak_rss_mb_parent"] = round(peak_rss_mb(), 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
