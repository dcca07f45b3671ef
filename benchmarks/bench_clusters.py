"""Benchmark of the k-means clusters step (``python -m analysis clusters``); one JSON document on stdout.

Builds a lake in a temporary folder with one synthetic activation table (default 200,000
rows x 64 channels: a mixture of 16 Gaussian clusters with unequal spreads), computes its
PCA (64 components, not timed in the ratio), then:

- ``step``: the clusters step (`analysis.commands.run_clusters`) as users run it, reading the
  scores from the lake (kept in memory: 200k x 64 float32 is 51 MB, under
  ``analysis.clustering.CACHE_BYTES``), wall clock including reading and writing the result;
- ``step_streamed``: the same with the in-memory cache off, so every Lloyd pass reads the
  scores from the lake block by block (the out-of-core path of tables above 256 MB), and
  whether its labels are bit-identical to the cached run's (they must be);
- ``sklearn``: ``sklearn.cluster.KMeans(n_clusters=k, random_state=seed)`` (its defaults:
  lloyd, k-means++, n_init auto = 1) fitted on the same scores already in memory (reading
  them is not timed);
- ``ratio`` = step seconds / sklearn seconds (``kmeans_ratio``: the step's k-means alone, its
  ``seconds`` attribute, without reading labels, hashing ids and writing), ``inertia_ratio`` = step inertia / sklearn
  inertia (below 1: the step found a better partition), ``agreement`` = adjusted Rand index
  of the two labelings, and the same for the streamed run.

``--prompts N`` (default 0: skipped) also times `analysis.prompts.run_prompts` on N synthetic
prompts with ``--pooled-dim`` features (k-means + the cosine UMAP map), the 100k-prompt case.

Timings are wall clock on a machine shared with other jobs: noisy.

    python benchmarks/bench_clusters.py > clusters.json
    python benchmarks/bench_clusters.py --rows 20000 --clusters 8 16   # quick
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import analysis.clustering as clustering  # noqa: E402
from analysis.commands import ClustersConfig, run_clusters, run_pca  # noqa: E402
from analysis.prompts import PromptParams, run_prompts  # noqa: E402
from analysis.store import load_scores  # noqa: E402
from lake import LakeWriter, Provenance, open_lake  # noqa: E402
from lake.layout import LayerShape, activations_spec, prompt_id, t2i_prompts_spec, t2i_samples_spec  # noqa: E402

LAYER = "enc.8x8_block2"


def log(message: str) -> None:
    print(f"[bench_clusters] {message}", file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mixture(rows: int, dims: int, centres: int, seed: int) -> np.ndarray:
    """Rows from `centres` Gaussian clusters (spreads 0.5-3) around centres drawn with std 4."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 4, (centres, dims))
    spreads = rng.uniform(0.5, 3.0, centres)
    which = rng.integers(0, centres, rows)
    out = np.empty((rows, dims), dtype=np.float32)
    for start in range(0, rows, 65536):
        part = which[start : start + 65536]
        out[start : start + 65536] = means[part] + spreads[part, None] * rng.normal(0, 1, (len(part), dims))
    return out


def build_lake(path: Path, values: np.ndarray) -> None:
    n, dims = values.shape
    spec = activations_spec(LAYER, LayerShape(dims, 1, 1), [1.0], False, {"model_id": "bench", "noise_seed": 0})
    with LakeWriter.open(path, Provenance(job="bench_clusters activations")) as writer:
        table = writer.table(spec)
        for start in range(0, n, 65536):
            part = values[start : start + 65536]
            m = len(part)
            table.append({"mean": part[:, None, :], "probed": np.ones((m, 1), bool),
                          "sample_id": np.array([f"bench/{i}" for i in range(start, start + m)], dtype=object),
                          "source": np.full(m, "generated", dtype=object), "class_id": np.zeros(m, np.int16)})
        writer.commit()


def build_prompts(path: Path, rows: int, dims: int, seed: int) -> None:
    """A text-to-image model with `rows` prompts whose pooled embeddings are a mixture (no samples, no activations)."""
    pooled = mixture(rows, dims, 24, seed) + 6.0  # off-centre, as CLIP's pooled vectors are
    texts = np.array([f"synthetic prompt {i}" for i in range(rows)], dtype=object)
    with LakeWriter.open(path, Provenance(job="bench_clusters prompts"), create=False) as writer:
        writer.table(t2i_samples_spec("bench-t2i", 64, 64, [999], {"family": "sdxl"}, step_previews=False))
        table = writer.table(t2i_prompts_spec("bench-t2i", dims, {"family": "sdxl"}))
        for start in range(0, rows, 8192):
            stop = min(start + 8192, rows)
            table.append({"pooled": pooled[start:stop], "prompt_id": np.array([prompt_id(t) for t in texts[start:stop]], dtype=object),
                          "prompt": texts[start:stop], "negative_prompt": np.full(stop - start, "", dtype=object),
                          "class_id": np.full(stop - start, -1, np.int16)})
            writer.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows of the synthetic table (default 200000)")
    parser.add_argument("--dims", type=int, default=64, help="channels = PCA components (default 64)")
    parser.add_argument("--clusters", type=int, nargs="+", default=[8, 32], help="k values to time (default 8 32)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--prompts", type=int, default=0, help="also time run_prompts on this many synthetic prompts (default 0: skip)")
    parser.add_argument("--pooled-dim", type=int, default=1280, help="features of the synthetic pooled embeddings (default 1280, SDXL's)")
    parser.add_argument("--workdir", help="where to build the lake (default: a temporary folder)")
    args = parser.parse_args()

    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    quiet = {"log": lambda _: None, "progress": False}
    result: dict[str, Any] = {"rows": args.rows, "dims": args.dims, "seed": args.seed, "machine": platform.processor() or platform.machine(),
                              "note": "wall clock on a shared machine; noisy", "runs": []}
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        lake = Path(tmp) / "lake"
        log(f"building a {args.rows} x {args.dims} table")
        build_lake(lake, mixture(args.rows, args.dims, 16, args.seed))
        started = time.perf_counter()
        outcome = run_pca(lake, LAYER, 1.0, pca_dim=args.dims, **quiet)
        result["pca_seconds"] = round(time.perf_counter() - started, 2)
        scores = load_scores(open_lake(lake), outcome.key)
        for k in args.clusters:
            log(f"k={k}: clusters step (cached)")
            started = time.perf_counter()
            step = run_clusters(lake, LAYER, 1.0, ClustersConfig(clusters=k, seed=args.seed, pca_dim=args.dims), force=True, **quiet)
            step_seconds = time.perf_counter() - started
            labels = open_lake(lake).column(step.group, "cluster")
            attrs = open_lake(lake).attrs(step.group)
            log(f"k={k}: clusters step (streamed)")
            saved, clustering.CACHE_BYTES = clustering.CACHE_BYTES, 0
            try:
                started = time.perf_counter()
                run_clusters(lake, LAYER, 1.0, ClustersConfig(clusters=k, seed=args.seed, pca_dim=args.dims), force=True, **quiet)
                streamed_seconds = time.perf_counter() - started
            finally:
                clustering.CACHE_BYTES = saved
            streamed_labels = open_lake(lake).column(step.group, "cluster")
            log(f"k={k}: sklearn KMeans")
            started = time.perf_counter()
            reference = KMeans(n_clusters=k, random_state=args.seed).fit(scores)
            sklearn_seconds = time.perf_counter() - started
            run = {
                "k": k,
                "step": {"seconds": round(step_seconds, 2), "kmeans_seconds": attrs["seconds"], "inertia": attrs["inertia"], "iterations": attrs["iterations"],
                         "converged": attrs["converged"], "init_rows": attrs["init_rows"]},
                "step_streamed": {"seconds": round(streamed_seconds, 2), "labels_identical_to_cached": bool(np.array_equal(labels, streamed_labels))},
                "sklearn": {"seconds": round(sklearn_seconds, 2), "inertia": float(reference.inertia_), "iterations": int(reference.n_iter_)},
            }
            run["ratio"] = round(step_seconds / sklearn_seconds, 2)
            run["kmeans_ratio"] = round(attrs["seconds"] / sklearn_seconds, 2)
            run["ratio_streamed"] = round(streamed_seconds / sklearn_seconds, 2)
            run["inertia_ratio"] = round(attrs["inertia"] / float(reference.inertia_), 4)
            run["agreement"] = round(float(adjusted_rand_score(labels, reference.labels_)), 4)
            log(json.dumps(run))
            result["runs"].append(run)
        if args.prompts:
            log(f"{args.prompts} prompts x {args.pooled_dim}: building")
            build_prompts(lake, args.prompts, args.pooled_dim, args.seed)
            started = time.perf_counter()
            [prompts] = run_prompts(lake, "bench-t2i", PromptParams(seed=args.seed), **quiet)
            seconds = time.perf_counter() - started
            attrs = open_lake(lake).attrs(prompts.group)
            result["prompts"] = {"prompts": args.prompts, "pooled_dim": args.pooled_dim, "seconds": round(seconds, 1),
                                 "map_method": attrs["map_method"], "fit_rows": attrs["fit_rows"], "n_clusters": attrs["n_clusters"],
                                 "kmeans_iterations": attrs["iterations"], "converged": attrs["converged"]}
            log(json.dumps(result["prompts"]))
        result["peak_rss_mb"] = round(peak_rss_mb())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
