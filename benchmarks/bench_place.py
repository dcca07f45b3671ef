"""Benchmark of placing new samples on a stored map (``python -m analysis place``); one JSON document on stdout.

For every key of the lake with a PCA and every current embedding of it (2-D and 3-D):

- hold-out vs full refit: for each seed, hold out a seeded share of the fitted rows, fit
  UMAP on the rest with the embedding's stored parameters, place the held-out rows in
  that map, and compare them with their coordinates in a full refit on every row (the
  rest-map aligned to the full one by orthogonal Procrustes with a uniform scale on the
  shared rows). Figure: median displacement / median nearest-neighbour distance of the
  full refit (1.0 = one typical neighbour spacing); ``alignment_residual`` is the same
  figure for the shared (fitted) rows themselves, i.e. how much the two UMAP runs differ
  anyway. ``local`` is the same figure with each placed point carried over by the
  similarity fitted on its own k neighbours only (does it land right among them,
  whatever the refit did to the global layout). Placements, same run:
  ``weighted_mean`` (the shipped method: fit-time membership weights),
  ``weighted_mean+optimise`` (umap's transform epochs on top of it),
  ``weighted_mean_transform_weights`` (transform's weights, local connectivity 0),
  ``umap_transform`` (those plus the epochs: what ``UMAP.transform`` does) and the
  trivial baseline ``nearest_neighbour`` (the nearest fitted row's coordinates).
  ``refit_vs_refit``: the held-out rows in a second full refit with another seed vs the
  first, after alignment: how far UMAP itself moves a point.
- fitted rows vs their stored coordinates: placing a fitted row with itself among its
  neighbours (must be exactly on itself) and leave-one-out (without itself).
- agreement with umap-learn: the weighted mean equals ``init_graph_transform`` of the
  graph umap's own ``transform`` builds (largest coordinate difference), and the
  refined placement vs ``UMAP.transform`` itself.

Reads the lake only (writes nothing). Timings are wall clock on a shared machine.

    python benchmarks/bench_place.py --lake /work/scratch/demo_lake > place.json
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analysis.embedding import fit_umap  # noqa: E402
from analysis.params import UMAPParams  # noqa: E402
from analysis.keys import parse_key  # noqa: E402
from analysis.placement import (  # noqa: E402
    map_spacing,
    membership_weights,
    nearest_fitted,
    nearest_neighbour_placement,
    place,
    procrustes_fit,
    refine_placement,
    relative_displacement,
    weighted_mean_placement,
)
from analysis.store import as_lake, load_scores, pca_run_id  # noqa: E402


METHODS = ("weighted_mean", "weighted_mean+optimise", "weighted_mean_transform_weights", "umap_transform", "nearest_neighbour")


def log(message: str) -> None:
    print(f"[bench_place] {message}", file=sys.stderr, flush=True)


def stored_params(attrs: dict[str, Any]) -> UMAPParams:
    """The embedding's parameters as stored in its attrs."""
    return UMAPParams(**{k: v for k, v in attrs["parameters"].items() if k in UMAPParams.__dataclass_fields__})


def holdout_case(scores: np.ndarray, full: np.ndarray, params: UMAPParams, share: float, seed: int) -> dict[str, Any]:
    """One hold-out split: fit on the rest, place the held-out rows every way, compare with the full refit."""
    n = len(scores)
    held = np.sort(np.random.default_rng(seed).choice(n, max(1, int(round(share * n))), replace=False))
    rest = np.setdiff1d(np.arange(n), held)
    started = time.perf_counter()
    rest_map = np.asarray(fit_umap(scores[rest], params).embedding_, dtype=np.float32)
    fit_s = time.perf_counter() - started
    k = min(params.n_neighbors, len(rest) - 1)
    started = time.perf_counter()
    near = nearest_fitted(scores[rest], scores[held], k, params.metric)
    weights = membership_weights(near.distances)
    shipped = weighted_mean_placement(near, weights, rest_map)
    place_s = time.perf_counter() - started
    transform_weights = membership_weights(near.distances, 0.0)
    transform_init = weighted_mean_placement(near, transform_weights, rest_map)
    placements = {
        "weighted_mean": shipped,
        "weighted_mean+optimise": refine_placement(shipped, rest_map, near, weights, params.min_dist, params.seed),
        "weighted_mean_transform_weights": transform_init,
        "umap_transform": refine_placement(transform_init, rest_map, near, transform_weights, params.min_dist, params.seed),
        "nearest_neighbour": nearest_neighbour_placement(near, rest_map),
    }
    align = procrustes_fit(rest_map, full[rest])
    spacing = map_spacing(full)
    return {
        "seed": seed,
        "held_out": int(len(held)),
        "fitted": int(len(rest)),
        "alignment_residual": relative_displacement(align.apply(rest_map), full[rest], spacing),
        **{name: relative_displacement(align.apply(points), full[held], spacing) for name, points in placements.items()},
        "local": {name: local_displacement(points, rest_map, full[rest], near, full[held], spacing)
                  for name, points in placements.items()},
        "fit_rest_s": round(fit_s, 2),
        "place_s": round(place_s, 4),
    }


def local_displacement(placed: np.ndarray, rest_map: np.ndarray, full_rest: np.ndarray, near: Any,
                       reference: np.ndarray, spacing: float) -> float:
    """Like the global figure, but each placed point is carried over by the similarity that best maps
    *its own* neighbours (the fitted rows it was placed from) from the rest-map onto the full refit:
    whether it lands right among its neighbours, whatever the refit did to the map's global layout."""
    carried = np.empty_like(np.asarray(reference, dtype=np.float64))
    for i, rows in enumerate(near.rows):
        carried[i] = procrustes_fit(rest_map[rows], full_rest[rows]).apply(placed[i : i + 1])[0]
    return relative_displacement(carried, reference, spacing)


def umap_agreement(scores: np.ndarray, params: UMAPParams, share: float, seed: int) -> dict[str, Any]:
    """Our weighted mean vs umap-learn's own transform graph + init, and refined vs ``UMAP.transform``."""
    from umap.umap_ import init_graph_transform

    n = len(scores)
    held = np.sort(np.random.default_rng(seed).choice(n, max(1, int(round(share * n))), replace=False))
    rest = np.setdiff1d(np.arange(n), held)
    model = fit_umap(scores[rest], params)
    coords = np.asarray(model.embedding_, dtype=np.float32)
    ours = place(scores[rest], coords, scores[held], int(model.n_neighbors), params.metric, local_connectivity=0.0)
    model.transform_mode = "graph"
    graph = model.transform(scores[held]).tocsr()
    graph.eliminate_zeros()
    library = init_graph_transform(graph, coords)
    model.transform_mode = "embedding"
    transformed = np.asarray(model.transform(scores[held]), dtype=np.float32)
    spacing = map_spacing(coords)
    return {
        "max_abs_diff_weighted_mean_vs_init_graph_transform": float(np.max(np.abs(ours - library))),
        "weighted_mean_vs_umap_transform": relative_displacement(ours, transformed, spacing),
    }


def embedding_cases(lake: Any, key_name: str, name: str, share: float, seeds: list[int]) -> dict[str, Any]:
    key = parse_key(key_name)
    group = key.embedding_group(name)
    attrs = lake.attrs(group)
    params = stored_params(attrs)
    dims = int(attrs.get("pca_components_used", params.pca_dim))
    scores = load_scores(lake, key, dims)
    stored = np.asarray(lake.column(group, "embedding"), dtype=np.float32)
    k = int(attrs.get("effective_n_neighbors", params.n_neighbors))
    log(f"{group}: {len(scores)} rows, k={k}, {params.metric}")
    spacing = map_spacing(stored)
    rows = np.arange(len(scores))
    with_self = place(scores, stored, scores, k, params.metric)
    loo = place(scores, stored, scores, k, params.metric, exclude=rows)
    loo_transform = place(scores, stored, scores, k, params.metric, exclude=rows, local_connectivity=0.0)
    loo_nearest = nearest_neighbour_placement(nearest_fitted(scores, scores, 1, params.metric, exclude=rows), stored)
    started = time.perf_counter()
    full = np.asarray(fit_umap(scores, params).embedding_, dtype=np.float32)
    full_s = time.perf_counter() - started
    other = np.asarray(fit_umap(scores, UMAPParams(**{**params.as_dict(), "seed": params.seed + 1})).embedding_, dtype=np.float32)
    cases = [holdout_case(scores, full, params, share, seed) for seed in seeds]
    held_all = [np.sort(np.random.default_rng(seed).choice(len(scores), max(1, int(round(share * len(scores)))), replace=False)) for seed in seeds]
    align_other = procrustes_fit(other, full)
    full_spacing = map_spacing(full)
    refit_vs_refit = [relative_displacement(align_other.apply(other[h]), full[h], full_spacing) for h in held_all]
    methods = METHODS
    return {
        "key": key_name,
        "embedding": name,
        "rows": int(len(scores)),
        "n_neighbors": k,
        "stored_equals_full_refit": bool(np.array_equal(stored, full)),
        "fitted_with_self_vs_stored": relative_displacement(with_self, stored, spacing),
        "fitted_leave_one_out_vs_stored": relative_displacement(loo, stored, spacing),
        "fitted_leave_one_out_vs_stored_transform_weights": relative_displacement(loo_transform, stored, spacing),
        "fitted_leave_one_out_vs_stored_nearest_neighbour": relative_displacement(loo_nearest, stored, spacing),
        "holdout_share": share,
        "holdout": cases,
        "holdout_median": {m: float(np.median([c[m] for c in cases])) for m in methods},
        "holdout_local_median": {m: float(np.median([c["local"][m] for c in cases])) for m in methods},
        "holdout_alignment_residual_median": float(np.median([c["alignment_residual"] for c in cases])),
        "refit_vs_refit_other_seed": float(np.median(refit_vs_refit)),
        "full_fit_s": round(full_s, 2),
        "umap_agreement": umap_agreement(scores, params, share, seeds[0]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", default="/work/scratch/demo_lake", help="lake with PCA and UMAP results (read only)")
    parser.add_argument("--holdout", type=float, default=0.1, help="share of rows held out per seed (default 0.1)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated hold-out seeds (default 0,1,2)")
    parser.add_argument("--key", action="append", help="only this key (repeatable; default: every key with a PCA)")
    args = parser.parse_args(argv)
    lake = as_lake(args.lake)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    keys = args.key or [lake.attrs(g)["key"] for g in lake.results("pca") if lake.attrs(g).get("analysis") == "pca"]
    started = time.perf_counter()
    results = []
    for key_name in keys:
        key = parse_key(key_name)
        for name in lake.children(key.embeddings_group):
            if lake.attrs(key.embedding_group(name)).get("pca_run_id") != pca_run_id(lake, key):
                continue
            results.append(embedding_cases(lake, key_name, name, args.holdout, seeds))
    methods = METHODS
    summary = {m: float(np.median([r["holdout_median"][m] for r in results])) for m in methods} if results else {}
    print(json.dumps({
        "benchmark": "place",
        "lake": str(lake.path),
        "machine": f"{platform.machine()}, {platform.python_version()} (shared, noisy timings)",
        "metric": "median displacement / median nearest-neighbour distance of the reference map",
        "summary_holdout_vs_full_refit": summary,
        "summary_holdout_vs_full_refit_local": {m: float(np.median([r["holdout_local_median"][m] for r in results])) for m in methods} if results else {},
        "summary_fitted_leave_one_out": {
            "weighted_mean": float(np.median([r["fitted_leave_one_out_vs_stored"] for r in results])),
            "weighted_mean_transform_weights": float(np.median([r["fitted_leave_one_out_vs_stored_transform_weights"] for r in results])),
            "nearest_neighbour": float(np.median([r["fitted_leave_one_out_vs_stored_nearest_neighbour"] for r in results])),
        } if results else {},
        "summary_refit_vs_refit": float(np.median([r["refit_vs_refit_other_seed"] for r in results])) if results else None,
        "embeddings": results,
        "seconds": round(time.perf_counter() - started, 1),
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
