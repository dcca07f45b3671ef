"""The analysis commands as plain functions (what `python -m analysis ...` calls; usable from notebooks).

    from analysis import run_pca, run_umap, run_knn, run_compare, run_all, query, list_analyses
    run_all("demo_lake", layer="bottleneck", sigma=2)

Each reads activations / earlier results from the lake, computes, and writes its result
group in one `LakeWriter` session (see results.StagedGroup: a failure leaves the lake
as it was). Each returns a small record of what it did; progress and notes go to `log`
(default: stderr). A rerun with the same parameters on the same inputs reuses the
stored result unless `force=True`.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from .embedding import (
    TRANSFORM_ROWS,
    TRUSTWORTHINESS_SAMPLE,
    UMAPParams,
    check_metric,
    fit_umap,
    prepare_for_transform,
    transform_rows,
    trustworthiness,
)
from .errors import AnalysisError
from .inputs import SampleLookup, open_activations, probed_count
from .keys import (
    COMPARE_PREFIX,
    EMBEDDINGS_PREFIX,
    KNN_PREFIX,
    PCA_PREFIX,
    AnalysisKey,
    available_layers,
    available_sigmas,
    format_sigma,
    parse_key,
    resolve_key,
)
from .metrics import first_real_distance, frechet_distance_of, prdc, real_fraction
from .neighbors import EXACT_BELOW, NeighborIndex, brute_force_query, build_knn_graph, exact_neighbors, nndescent_index, recall_at_k
from .pca import compute_moments, fit_from_moments, score_blocks
from .results import (
    LabelColumns,
    StagedGroup,
    base_attrs,
    group_attrs,
    label_column_specs,
    read_labels,
    to_attr,
    write_fixed,
)
from .sampling import balanced_subsample, group_labels, hash_subsample
from .scheduler import compute_with_progress, dask_scheduler
from .store import as_lake, is_current, load_scores, pca_run_id, pca_scores

Log = Callable[[str], None]

# Rows per appended block when copying per-sample results into the lake.
WRITE_ROWS = 65536
RECALL_SAMPLE = 500


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _writer(lake: Any, job: str, parameters: dict[str, Any]) -> Any:
    from lake import LakeWriter, Provenance

    return LakeWriter.open(lake.path, Provenance(job=job, parameters=to_attr(parameters)), create=False)


def _resolve(lake_path: Any, layer: str | None, sigma: float | None, log: Log) -> tuple[Any, AnalysisKey]:
    lake = as_lake(lake_path)
    key, notes = resolve_key(lake, layer, sigma)
    for note in notes:
        log(note)
    return lake, key


@dataclass
class Outcome:
    """What a command did: the result group, whether it was reused, and its headline numbers."""

    analysis: str
    key: str
    group: str
    reused: bool
    summary: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return to_attr(asdict(self))


# --------------------------------------------------------------------------- PCA


def _pca_spec(path: str, n_components: int, attrs: dict[str, Any]) -> Any:
    from lake import ColumnSpec, TableSpec

    scores = ColumnSpec(
        "scores",
        "float32",
        (n_components,),
        ("component",),
        coord=False,
        attrs={"description": "PCA scores of the standardised activations"},
    )
    return TableSpec(
        path=path,
        row_dim="sample",
        columns=(scores, *label_column_specs()),
        fixed_coords={"component": np.arange(n_components, dtype=np.int32)},
        attrs=attrs,
    )


def run_pca(
    lake: Any,
    layer: str | None = None,
    sigma: float | None = None,
    *,
    pca_dim: int = 50,
    scheduler: str | None = None,
    force: bool = False,
    block_rows: int | None = None,
    log: Log = _stderr,
    progress: bool = True,
) -> Outcome:
    """Standardise + PCA one (layer, sigma) activation table out of core; store scores and transform.

    Writes ``analysis/pca/<key>``: `scores` (sample, component) for every row without NaN,
    and the transform `mean`, `scale` (feature), `components` (component, feature),
    `explained_variance[_ratio]` (component) so `project()` can place new activations.
    """
    lake, key = _resolve(lake, layer, sigma, log)
    if pca_dim < 1:
        raise AnalysisError(f"--pca-dim {pca_dim}: must be at least 1")
    table = open_activations(lake, key, block_rows)
    probed = probed_count(lake, key)
    existing = group_attrs(lake, key.pca_group)
    if (
        not force
        and existing.get("parameters", {}).get("pca_dim") == pca_dim
        and existing.get("source_rows") == table.num_rows
        and existing.get("source_probed") == probed
    ):
        log(f"reusing {key.pca_group} (same parameters and input rows; --force recomputes)")
        return Outcome("pca", key.name, key.pca_group, True, _pca_summary(existing))

    with dask_scheduler(scheduler) as where:
        log(f"PCA of {key.activations_group} at sigma {format_sigma(key.sigma)}: {table.num_rows} rows x {table.num_features} channels, on {where}")
        moments = compute_moments(table.values, progress=progress)
        if moments.count < 2:
            raise AnalysisError(
                f"{lake.path}: {key.activations_group} has {moments.count} probed rows at sigma {format_sigma(key.sigma)}; PCA needs at least 2"
            )
        model = fit_from_moments(moments, pca_dim)
        scores = score_blocks(table.values, model, moments.block_counts)
        lookup = SampleLookup.from_lake(lake)
        parameters = {"pca_dim": pca_dim}
        attrs = base_attrs(
            key,
            "",
            "pca",
            parameters,
            method="standardise (population std), covariance by Dask reductions, np.linalg.eigh",
            source_rows=table.num_rows,
            source_probed=probed,
            n_rows=moments.count,
            excluded_rows=table.num_rows - moments.count,
            n_components=model.n_components,
            n_features=table.num_features,
            explained_variance_ratio_total=float(model.explained_variance_ratio.sum()),
            scheduler=where,
        )
        with _writer(lake, "analysis pca", {"key": key.name, **parameters, "scheduler": scheduler or "threads"}) as writer:
            attrs["run_id"] = writer.provenance.run_id
            staged = StagedGroup(writer, key.pca_group)
            out = staged.table(_pca_spec(staged.staging_path, model.n_components, attrs))
            offsets = np.concatenate([[0], np.cumsum(table.values.chunks[0])])
            batch = max(2, 2 * (os.cpu_count() or 1))
            from tqdm.auto import tqdm

            with tqdm(total=moments.count, desc=f"PCA scores {key.name}", unit="row", disable=not progress, leave=False) as bar:
                for first in range(0, table.values.numblocks[0], batch):
                    blocks = list(range(first, min(first + batch, table.values.numblocks[0])))
                    results = compute_with_progress([scores.blocks[i] for i in blocks], "scores", show=False)
                    for i, block_scores in zip(blocks, results):
                        start, stop = int(offsets[i]), int(offsets[i + 1])
                        valid = moments.valid[start:stop]
                        if not valid.any():
                            continue
                        labels = table.labels(start, stop)
                        ids = labels["sample_id"][valid]
                        rows = lookup.rows(ids)
                        out.append(
                            {
                                "scores": block_scores,
                                "sample_id": ids,
                                "source": labels["source"][valid],
                                "class_id": labels["class_id"][valid],
                                "split": lookup.splits(rows),
                                "sample_row": rows,
                            }
                        )
                        bar.update(len(ids))
            group = staged.group()
            channel = np.asarray(table.channel)
            write_fixed(group, "feature", channel, ("feature",), {"description": "activation channel index"})
            write_fixed(group, "mean", model.mean, ("feature",), {"description": "per-channel mean of the valid rows"})
            write_fixed(group, "scale", model.scale, ("feature",), {"description": "per-channel population std (1 for constant channels)"})
            write_fixed(group, "components", model.components, ("component", "feature"), {"description": "unit principal axes in standardised space"})
            write_fixed(group, "explained_variance", model.explained_variance, ("component",))
            write_fixed(group, "explained_variance_ratio", model.explained_variance_ratio, ("component",))
            staged.publish()
    log(
        f"wrote {key.pca_group}: {moments.count} rows x {model.n_components} components "
        f"({table.num_rows - moments.count} rows without activations left out), "
        f"explained variance {float(model.explained_variance_ratio.sum()):.1%}"
    )
    return Outcome("pca", key.name, key.pca_group, False, _pca_summary(attrs))


def _pca_summary(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: attrs.get(k) for k in ("n_rows", "excluded_rows", "n_components", "explained_variance_ratio_total")}


def ensure_pca(lake: Any, key: AnalysisKey, pca_dim: int, scheduler: str | None, log: Log, progress: bool) -> Any:
    """The lake with a PCA for `key` holding at least `pca_dim` components (computed if missing)."""
    attrs = group_attrs(lake, key.pca_group)
    if attrs:
        stored = int(attrs.get("n_components", 0))
        possible = min(int(attrs.get("n_features", stored)), int(attrs.get("n_rows", stored)))
        if stored >= min(pca_dim, possible):
            return lake
        log(f"{key.pca_group} has {stored} components; recomputing with {pca_dim}")
    run_pca(lake, key.layer, key.sigma, pca_dim=pca_dim, scheduler=scheduler, force=bool(attrs), log=log, progress=progress)
    return as_lake(lake)


def _components(lake: Any, key: AnalysisKey, requested: int | None) -> int:
    stored = int(group_attrs(lake, key.pca_group)["n_components"])
    return stored if requested is None else min(requested, stored)


# --------------------------------------------------------------------------- UMAP


def run_umap(
    lake: Any,
    layer: str | None = None,
    sigma: float | None = None,
    params: UMAPParams = UMAPParams(),
    *,
    scheduler: str | None = None,
    force: bool = False,
    log: Log = _stderr,
    progress: bool = True,
) -> Outcome:
    """Embed the PCA scores of one key with UMAP; store under ``analysis/embeddings/<key>/<name>``.

    Fits on everything when the table has at most `params.fit_size` rows (or
    `params.full_fit`); otherwise fits on a seeded, source-and-class-balanced sample and
    transforms the rest in parallel chunks on the Dask scheduler.
    """
    lake, key = _resolve(lake, layer, sigma, log)
    check_metric(params.metric)
    lake = ensure_pca(lake, key, params.pca_dim, scheduler, log, progress)
    group_path = key.embedding_group(params.name)
    if not force and is_current(lake, group_path, key) and group_attrs(lake, group_path).get("parameters") == to_attr(params.as_dict()):
        attrs = group_attrs(lake, group_path)
        log(f"reusing {group_path} (same parameters and PCA; --force recomputes)")
        return Outcome("umap", key.name, group_path, True, _umap_summary(attrs))

    dims = _components(lake, key, params.pca_dim)
    labels = read_labels(lake, key.pca_group)
    n = len(labels)
    full = params.full_fit or n <= params.fit_size
    import time

    started = time.perf_counter()
    with dask_scheduler(scheduler) as where:
        if full:
            log(f"UMAP {params.name} of {key.name}: fitting on all {n} rows ({dims} PCA components)")
            model = fit_umap(load_scores(lake, key, dims), params)
            embedding = np.asarray(model.embedding_, dtype=np.float32)
            fit_rows = np.arange(n)
        else:
            import dask

            fit_rows = balanced_subsample(
                labels.sample_id, group_labels(labels.source, labels.class_id), params.fit_size, params.seed, salt="umap-fit"
            )
            log(f"UMAP {params.name} of {key.name}: fitting on a balanced sample of {len(fit_rows)} of {n} rows, then transforming the rest on {where}")
            scores = pca_scores(lake, key, dims)
            model = fit_umap(np.asarray(scores[fit_rows].compute(), dtype=np.float32), params, will_transform=True)
            embedding = np.full((n, params.n_components), np.nan, dtype=np.float32)
            embedding[fit_rows] = model.embedding_
            prepare_for_transform(model)
            rest = np.ones(n, dtype=bool)
            rest[fit_rows] = False
            shared_model = dask.delayed(model, pure=True, traverse=False)
            starts = list(range(0, n, TRANSFORM_ROWS))
            tasks = [
                dask.delayed(transform_rows, pure=True)(shared_model, scores[s : s + TRANSFORM_ROWS], rest[s : s + TRANSFORM_ROWS])
                for s in starts
            ]
            for s, chunk in zip(starts, compute_with_progress(tasks, f"UMAP transform {key.name}", unit="chunk", show=progress)):
                keep = np.flatnonzero(rest[s : s + TRANSFORM_ROWS]) + s
                embedding[keep] = chunk
        seconds = time.perf_counter() - started
        trust_rows = hash_subsample(labels.sample_id, TRUSTWORTHINESS_SAMPLE, params.seed, salt="trustworthiness")
        trust = trustworthiness(np.asarray(pca_scores(lake, key, dims)[trust_rows].compute()), embedding[trust_rows])

    axes = ["x", "y", "z"][: params.n_components]
    attrs = base_attrs(
        key,
        "",
        "umap",
        params.as_dict(),
        name=params.name,
        pca_run_id=pca_run_id(lake, key),
        pca_components_used=dims,
        n_rows=n,
        fit_rows=int(len(fit_rows)),
        fit_mode="all rows" if full else "balanced sample + transform",
        effective_n_neighbors=int(model.n_neighbors),
        trustworthiness=trust,
        trustworthiness_sample=int(len(trust_rows)),
        trustworthiness_neighbors=10,
        seconds=round(seconds, 2),
        scheduler=where,
    )
    with _writer(lake, "analysis umap", {"key": key.name, **params.as_dict()}) as writer:
        from lake import ColumnSpec, TableSpec

        attrs["run_id"] = writer.provenance.run_id
        staged = StagedGroup(writer, group_path)
        spec = TableSpec(
            path=staged.staging_path,
            row_dim="sample",
            columns=(
                ColumnSpec("embedding", "float32", (params.n_components,), ("axis",), coord=False, attrs={"description": "UMAP coordinates"}),
                *label_column_specs(),
            ),
            fixed_coords={"axis": np.array(axes, dtype=np.dtypes.StringDType())},
            attrs=attrs,
        )
        _write_rows(staged.table(spec), labels, {"embedding": embedding})
        staged.publish()
    log(f"wrote {group_path}: {n} rows, trustworthiness {trust:.3f} ({seconds:.1f} s)")
    return Outcome("umap", key.name, group_path, False, _umap_summary(attrs))


def _umap_summary(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: attrs.get(k) for k in ("name", "n_rows", "fit_rows", "fit_mode", "trustworthiness", "seconds")}


def _write_rows(table: Any, labels: LabelColumns, values: dict[str, np.ndarray]) -> None:
    for start in range(0, len(labels), WRITE_ROWS):
        stop = min(start + WRITE_ROWS, len(labels))
        columns = labels.slice(start, stop).as_columns()
        columns.update({name: array[start:stop] for name, array in values.items()})
        table.append(columns)


# --------------------------------------------------------------------------- k-NN


@dataclass(frozen=True)
class KnnConfig:
    """Parameters of the k-NN graph (what `run_knn` takes and stores as `parameters`)."""

    k: int = 10
    exact: bool | None = None
    exact_below: int = EXACT_BELOW
    seed: int = 42
    pca_dim: int = 50


def run_knn(
    lake: Any,
    layer: str | None = None,
    sigma: float | None = None,
    *,
    k: int = 10,
    exact: bool | None = None,
    exact_below: int = EXACT_BELOW,
    seed: int = 42,
    pca_dim: int = 50,
    scheduler: str | None = None,
    force: bool = False,
    log: Log = _stderr,
    progress: bool = True,
) -> Outcome:
    """The k-NN graph of one key's PCA scores (self excluded); store under ``analysis/knn/<key>``.

    Exact (brute force) below `exact_below` rows or with `exact=True`; NN-descent
    (pynndescent, seeded) otherwise, with recall@k estimated on a sample of rows.
    """
    import time

    from lake import ColumnSpec, TableSpec
    from lake.schema import STRING

    lake, key = _resolve(lake, layer, sigma, log)
    if k < 1:
        raise AnalysisError(f"--k {k}: must be at least 1")
    lake = ensure_pca(lake, key, pca_dim, scheduler, log, progress)
    dims = _components(lake, key, pca_dim)
    parameters = {"k": k, "exact": exact, "exact_below": exact_below, "seed": seed, "pca_dim": pca_dim}
    attrs_now = group_attrs(lake, key.knn_group)
    if not force and is_current(lake, key.knn_group, key) and attrs_now.get("parameters") == to_attr(parameters):
        log(f"reusing {key.knn_group} (same parameters and PCA; --force recomputes)")
        return Outcome("knn", key.name, key.knn_group, True, _knn_summary(attrs_now))

    scores = load_scores(lake, key, dims)
    labels = read_labels(lake, key.pca_group)
    n = len(scores)
    started = time.perf_counter()
    method_hint = "exact" if (exact if exact is not None else n < exact_below) else "NN-descent"
    log(f"k-NN graph of {key.name}: {n} rows x {dims} components, k={k}, {method_hint}")
    graph = build_knn_graph(scores, k, exact=exact, exact_below=exact_below, seed=seed)
    seconds = time.perf_counter() - started
    recall = 1.0
    if graph.method != "exact":
        sample = hash_subsample(labels.sample_id, RECALL_SAMPLE, seed, salt="knn-recall")
        norms = np.einsum("ij,ij->i", scores, scores)
        truth, _ = brute_force_query(scores, norms, scores[sample], graph.indices.shape[1], exclude=sample)
        recall = recall_at_k(graph.indices[sample], truth)
    k_used = graph.indices.shape[1]
    attrs = base_attrs(
        key,
        "",
        "knn",
        parameters,
        pca_run_id=pca_run_id(lake, key),
        components=dims,
        method=graph.method,
        metric="euclidean",
        k=k_used,
        n_rows=n,
        recall_estimate=recall,
        recall_sample=0 if graph.method == "exact" else min(RECALL_SAMPLE, n),
        seconds=round(seconds, 2),
        description="neighbour_row indexes the rows of this key's analysis tables (the PCA table's order); self excluded",
    )
    with _writer(lake, "analysis knn", {"key": key.name, **parameters}) as writer:
        attrs["run_id"] = writer.provenance.run_id
        staged = StagedGroup(writer, key.knn_group)
        spec = TableSpec(
            path=staged.staging_path,
            row_dim="sample",
            columns=(
                ColumnSpec("neighbor_id", STRING, (k_used,), ("k",), coord=False, attrs={"description": "sample ids of the neighbours, nearest first"}),
                ColumnSpec("neighbor_row", "int64", (k_used,), ("k",), coord=False, attrs={"description": "rows of the neighbours in this key's tables"}),
                ColumnSpec("distance", "float32", (k_used,), ("k",), coord=False, attrs={"description": "euclidean distance in PCA space"}),
                *label_column_specs(),
            ),
            fixed_coords={"k": np.arange(1, k_used + 1, dtype=np.int32)},
            attrs=attrs,
        )
        table = staged.table(spec)
        for start in range(0, n, WRITE_ROWS):
            stop = min(start + WRITE_ROWS, n)
            columns = labels.slice(start, stop).as_columns()
            rows = graph.indices[start:stop]
            columns.update({"neighbor_id": labels.sample_id[rows], "neighbor_row": rows, "distance": graph.distances[start:stop]})
            table.append(columns)
        staged.publish()
    log(f"wrote {key.knn_group}: {n} rows x {k_used} neighbours ({graph.method}, recall@{k_used} {recall:.3f}, {seconds:.1f} s)")
    return Outcome("knn", key.name, key.knn_group, False, _knn_summary(attrs))


def _knn_summary(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: attrs.get(k) for k in ("k", "method", "n_rows", "recall_estimate", "seconds")}


# --------------------------------------------------------------------------- real vs generated


@dataclass(frozen=True)
class CompareConfig:
    """Parameters of the real-vs-generated comparison."""

    k: int = 5
    max_per_set: int = 10000
    seed: int = 42
    pca_dim: int = 50
    exact_below: int = EXACT_BELOW


METRIC_NAMES = ("frechet_distance", "precision", "recall", "density", "coverage")


def compare_sets(real: np.ndarray, generated: np.ndarray, k: int) -> dict[str, float]:
    """Frechet distance and PRDC of two sets of rows (NaN where a set is too small)."""
    out = {name: float("nan") for name in METRIC_NAMES}
    if len(real) >= 2 and len(generated) >= 2:
        out["frechet_distance"] = frechet_distance_of(real, generated)
    if len(real) > k and len(generated) > k:
        out.update(asdict(prdc(real, generated, k)))
    return out


def run_compare(
    lake: Any,
    layer: str | None = None,
    sigma: float | None = None,
    config: CompareConfig = CompareConfig(),
    *,
    scheduler: str | None = None,
    force: bool = False,
    log: Log = _stderr,
    progress: bool = True,
) -> Outcome:
    """Real vs generated in PCA space: overall and per class, plus a memorisation check per sample.

    Frechet distance uses every row; precision/recall/density/coverage (k-NN balls) use
    up to `max_per_set` rows per source (a seeded, class-balanced sample). Per sample:
    `real_fraction` of its k nearest neighbours and `nearest_real_distance` (self excluded).
    """
    lake, key = _resolve(lake, layer, sigma, log)
    lake = ensure_pca(lake, key, config.pca_dim, scheduler, log, progress)
    parameters = asdict(config)
    attrs_now = group_attrs(lake, key.compare_group)
    if not force and is_current(lake, key.compare_group, key) and attrs_now.get("parameters") == to_attr(parameters):
        log(f"reusing {key.compare_group} (same parameters and PCA; --force recomputes)")
        return Outcome("compare", key.name, key.compare_group, True, _compare_summary(attrs_now))

    dims = _components(lake, key, config.pca_dim)
    scores = load_scores(lake, key, dims)
    labels = read_labels(lake, key.pca_group)
    is_real = labels.source == "real"
    is_generated = labels.source == "generated"
    if not is_real.any() or not is_generated.any():
        have = "real" if is_real.any() else "generated"
        raise AnalysisError(f"{lake.path}: {key.name} holds only {have} samples; compare needs both real and generated")
    k = config.k
    log(f"real vs generated for {key.name}: {int(is_real.sum())} real, {int(is_generated.sum())} generated, k={k}, {dims} PCA components")

    def capped(mask: np.ndarray, salt: str) -> np.ndarray:
        rows = np.flatnonzero(mask)
        chosen = balanced_subsample(labels.sample_id[rows], labels.class_id[rows], config.max_per_set, config.seed, salt=salt)
        return rows[chosen]

    real_rows, generated_rows = capped(is_real, "compare-real"), capped(is_generated, "compare-generated")
    overall = compare_sets(scores[real_rows], scores[generated_rows], k)
    overall["frechet_distance"] = frechet_distance_of(scores[is_real], scores[is_generated])

    classes = np.unique(labels.class_id)
    per_class = {name: np.full(len(classes), np.nan) for name in METRIC_NAMES}
    n_real = np.zeros(len(classes), dtype=np.int64)
    n_generated = np.zeros(len(classes), dtype=np.int64)
    from tqdm.auto import tqdm

    for i, class_id in enumerate(tqdm(classes, desc="per-class metrics", unit="class", disable=not progress, leave=False)):
        in_class = labels.class_id == class_id
        n_real[i], n_generated[i] = int((in_class & is_real).sum()), int((in_class & is_generated).sum())
        if n_real[i] < 2 or n_generated[i] < 2:
            continue
        values = compare_sets(
            scores[capped(in_class & is_real, "compare-real")], scores[capped(in_class & is_generated, "compare-generated")], k
        )
        values["frechet_distance"] = frechet_distance_of(scores[in_class & is_real], scores[in_class & is_generated])
        for name in METRIC_NAMES:
            per_class[name][i] = values[name]

    neighbor_rows, neighbor_distances, source_of_lists = _neighbour_lists(lake, key, scores, k, config, dims)
    fraction = real_fraction(neighbor_rows, is_real)
    nearest_real = _nearest_real_distance(scores, is_real, neighbor_rows, neighbor_distances, config)

    from lake import ColumnSpec, TableSpec, imagenet_classes

    class_table = imagenet_classes()
    class_labels = np.array([class_table.label(int(c)) if 0 <= int(c) < 1000 else str(int(c)) for c in classes], dtype=object)
    attrs = base_attrs(
        key,
        "",
        "compare",
        parameters,
        pca_run_id=pca_run_id(lake, key),
        space=f"PCA scores of the standardised activations ({dims} components)",
        components=dims,
        explained_variance_ratio_total=group_attrs(lake, key.pca_group).get("explained_variance_ratio_total"),
        n_real=int(is_real.sum()),
        n_generated=int(is_generated.sum()),
        prdc_real_rows=int(len(real_rows)),
        prdc_generated_rows=int(len(generated_rows)),
        neighbour_lists=source_of_lists,
        **overall,
    )
    with _writer(lake, "analysis compare", {"key": key.name, **parameters}) as writer:
        attrs["run_id"] = writer.provenance.run_id
        staged = StagedGroup(writer, key.compare_group)
        spec = TableSpec(
            path=staged.staging_path,
            row_dim="sample",
            columns=(
                ColumnSpec("real_fraction", "float32", coord=False, attrs={"description": f"share of real samples among the {k} nearest other samples"}),
                ColumnSpec("nearest_real_distance", "float32", coord=False, attrs={"description": "distance to the nearest other real sample (PCA space)"}),
                *label_column_specs(),
            ),
            attrs=attrs,
        )
        _write_rows(staged.table(spec), labels, {"real_fraction": fraction, "nearest_real_distance": nearest_real})
        group = staged.group()
        write_fixed(group, "class", classes.astype(np.int16), ("class",), {"description": "ImageNet-1k class id"})
        write_fixed(group, "class_label", class_labels, ("class",), {"description": "'<id>: <name>'"})
        write_fixed(group, "n_real", n_real, ("class",))
        write_fixed(group, "n_generated", n_generated, ("class",))
        for name in METRIC_NAMES:
            write_fixed(
                group,
                f"class_{name}",
                per_class[name],
                ("class",),
                {"description": f"{name} within the class (NaN: too few samples)", "coordinates": "class_label"},
            )
        staged.publish()
    log(f"wrote {key.compare_group}")
    return Outcome("compare", key.name, key.compare_group, False, _compare_summary(attrs))


def _compare_summary(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: attrs.get(k) for k in ("n_real", "n_generated", "k", *METRIC_NAMES)} | {"k": attrs.get("parameters", {}).get("k")}


def _neighbour_lists(lake: Any, key: AnalysisKey, scores: np.ndarray, k: int, config: CompareConfig, dims: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Each row's k nearest other rows: from the stored k-NN graph when it is current and deep enough."""
    attrs = group_attrs(lake, key.knn_group)
    if is_current(lake, key.knn_group, key) and int(attrs.get("k", 0)) >= k and attrs.get("components") == dims:
        rows = np.asarray(lake.root[f"{key.knn_group}/neighbor_row"][:, :k], dtype=np.int64)
        distances = np.asarray(lake.root[f"{key.knn_group}/distance"][:, :k], dtype=np.float32)
        return rows, distances, f"stored {key.knn_group} ({attrs.get('method')})"
    graph = build_knn_graph(scores, k, exact_below=config.exact_below, seed=config.seed)
    return graph.indices, graph.distances, f"computed ({graph.method})"


def _nearest_real_distance(
    scores: np.ndarray, is_real: np.ndarray, rows: np.ndarray, distances: np.ndarray, config: CompareConfig
) -> np.ndarray:
    """Distance from each row to its nearest *other* real row.

    Rows whose neighbour list already holds a real sample take its distance; the others
    are queried against an index of the real rows (exact below `exact_below`).
    """
    nearest = first_real_distance(rows, distances, is_real)
    missing = np.flatnonzero(np.isnan(nearest))
    real_rows = np.flatnonzero(is_real)
    if missing.size == 0 or real_rows.size == 0:
        return nearest
    if real_rows.size < config.exact_below:
        found, found_distances = exact_neighbors(scores[real_rows], scores[missing], min(2, real_rows.size))
    else:
        index = nndescent_index(scores[real_rows], config.seed)
        found, found_distances = index.query(scores[missing], k=2)
    found_rows = real_rows[found]
    not_self = found_rows != missing[:, None]
    has_other = not_self.any(axis=1)
    first = np.argmax(not_self, axis=1)
    values = found_distances[np.arange(len(missing)), first].astype(np.float32)
    values[~has_other] = np.nan
    nearest[missing] = values
    return nearest


# --------------------------------------------------------------------------- run, query, list


@dataclass(frozen=True)
class RunConfig:
    """Every parameter of `run_all`, named as the `python -m analysis run` flags (without dashes).

    Each step takes its parameters from here *by name* (`step_fields`): a step parameter
    without a field here is an error, not a silent default, so a flag of `run` reaches
    every step whose own command has it. The only renaming: compare's `k` is `compare_k`
    (the k-NN graph's `k` is `k`), as the flags are named.
    """

    pca_dim: int = 50
    n_neighbors: int = 15
    min_dist: float = 0.1
    metric: str = "euclidean"
    seed: int = 42
    fit_size: int = 20000
    full_fit: bool = False
    k: int = 10
    exact: bool | None = None
    exact_below: int = EXACT_BELOW
    compare_k: int = 5
    max_per_set: int = 10000

    def step_fields(self, step_type: type, renamed: dict[str, str] | None = None, **given: Any) -> dict[str, Any]:
        """The fields of dataclass `step_type` filled from this config by name (`renamed`: step name -> ours)."""
        renamed = renamed or {}
        return {f.name: given[f.name] if f.name in given else getattr(self, renamed.get(f.name, f.name)) for f in fields(step_type)}

    def umap(self, n_components: int) -> UMAPParams:
        return UMAPParams(**self.step_fields(UMAPParams, n_components=n_components))

    def knn(self) -> KnnConfig:
        return KnnConfig(**self.step_fields(KnnConfig))

    def compare(self) -> CompareConfig:
        return CompareConfig(**self.step_fields(CompareConfig, renamed={"k": "compare_k"}))


def run_all(
    lake: Any,
    layer: str | None = None,
    sigma: float | None = None,
    config: RunConfig = RunConfig(),
    *,
    scheduler: str | None = None,
    force: bool = False,
    log: Log = _stderr,
    progress: bool = True,
) -> list[Outcome]:
    """PCA, UMAP 2D and 3D, the k-NN graph and real-vs-generated for one (layer, sigma).

    Each step gets its parameters from `config` (`RunConfig.umap/knn/compare`) and
    commits on its own; a step whose result is current is reused unless `force`.
    `compare` is skipped (with a note) when the table lacks real or generated samples.
    """
    lake, key = _resolve(lake, layer, sigma, log)
    steps = dict(scheduler=scheduler, log=log, progress=progress)
    outcomes = [run_pca(lake, key.layer, key.sigma, pca_dim=config.pca_dim, force=force, **steps)]
    # A PCA recomputed by this run already makes every derived result stale.
    derived_force = force and outcomes[0].reused
    for n_components in (2, 3):
        outcomes.append(run_umap(lake, key.layer, key.sigma, config.umap(n_components), force=derived_force, **steps))
    outcomes.append(run_knn(lake, key.layer, key.sigma, **asdict(config.knn()), force=derived_force, **steps))
    sources = set(read_labels(as_lake(lake), key.pca_group).source.tolist())
    if {"real", "generated"} <= sources:
        outcomes.append(run_compare(lake, key.layer, key.sigma, config.compare(), force=derived_force, **steps))
    else:
        log(f"skipping compare: {key.name} holds only {', '.join(sorted(sources)) or 'no'} samples")
    return outcomes


@dataclass
class Neighbour:
    """One neighbour of a queried sample."""

    query: str
    rank: int
    sample_id: str
    source: str
    class_id: int
    distance: float
    row: int


def query(lake: Any, sample_ids: list[str], layer: str | None = None, sigma: float | None = None, *, k: int = 10, log: Log = _stderr) -> list[Neighbour]:
    """The k nearest neighbours of each given sample id in one key's PCA space."""
    lake, key = _resolve(lake, layer, sigma, log)
    if not lake.has(key.pca_group):
        raise AnalysisError(f"{lake.path}: no PCA for {key.name}; run `python -m analysis run --lake {lake.path} --layer {key.layer} --sigma {key.sigma:g}` first")
    index = NeighborIndex.open(lake, key)
    rows, distances = index.query(list(sample_ids), k)
    labels = read_labels(lake, key.pca_group)
    out = []
    for sample_id, row_list, dist_list in zip(sample_ids, rows, distances):
        for rank, (row, dist) in enumerate(zip(row_list, dist_list), start=1):
            out.append(Neighbour(sample_id, rank, str(labels.sample_id[row]), str(labels.source[row]), int(labels.class_id[row]), float(dist), int(row)))
    return out


def list_analyses(lake: Any) -> dict[str, Any]:
    """What the lake holds: activation tables (layers, sigmas, rows) and every analysis result."""
    lake = as_lake(lake)
    tables = []
    for layer in available_layers(lake):
        group = f"activations/{layer}"
        tables.append(
            {
                "layer": layer,
                "sigmas": [format_sigma(s) for s in available_sigmas(lake, layer)],
                "rows": int(lake.root[f"{group}/sample_id"].shape[0]) if lake.has(f"{group}/sample_id") else 0,
            }
        )
    results = []
    for prefix, kind in ((PCA_PREFIX, "pca"), (EMBEDDINGS_PREFIX, "umap"), (KNN_PREFIX, "knn"), (COMPARE_PREFIX, "compare")):
        for group in lake.groups(prefix):
            attrs = dict(lake.root[group].attrs)
            if attrs.get("analysis") != kind:
                continue  # the per-key parent groups of embeddings
            key = parse_key(attrs["key"])
            record = {"kind": kind, "group": group, "key": key.name, "created": attrs.get("created"), "run_id": attrs.get("run_id")}
            if kind == "pca":
                record.update(_pca_summary(attrs))
            else:
                record["stale"] = attrs.get("pca_run_id") != pca_run_id(lake, key)
                record.update({"umap": _umap_summary, "knn": _knn_summary, "compare": _compare_summary}[kind](attrs))
            results.append(record)
    return {"lake": str(lake.path), "activations": tables, "analyses": results}
