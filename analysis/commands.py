"""The analysis commands as plain functions (what `python -m analysis ...` calls; usable from notebooks).

    from analysis import run_pca, run_umap, run_knn, run_compare, run_all, query, list_analyses
    from analysis import run_clusters, run_prompts
    run_all("demo_lake", layer="bottleneck", sigma=2)
    run_all("t2i_lake", layer="dmd2-sdxl-4step.mid", timestep=999)   # a text-to-image table, by site alias and step

Each `run_*` is one step (`analysis.steps`) run by `analysis.runner.run_step`: it reads
activations / earlier results from the lake, computes, and writes its result group in
one `LakeWriter` session (a failure leaves the lake as it was). Each returns an
`Outcome`; progress and notes go to `log` (default: stderr). A rerun with the same
parameters on the same inputs reuses the stored result unless `force=True`. `run_all`
is the list of steps `RunConfig.steps` gives, run by `runner.run_steps`; on a text-to-image
layer it also clusters the model's prompts (`analysis.prompts`).

`timestep` (keyword) names a text-to-image table's noise level by its step instead of `sigma`.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from .cka import BLOCK_ROWS as CKA_BLOCK_ROWS
from .errors import AnalysisError
from lake.layout import T2I_GROUP, split_t2i_layer, t2i_prompts_group, t2i_samples_group

from .keys import AnalysisKey, available_layers, available_sigmas, format_sigma, parse_key, resolve_key, t2i_site_alias, t2i_timesteps
from .metrics import METRIC_NAMES, compare_sets
from .neighbors import EXACT_BELOW, NeighborIndex
from .params import UMAP_DEFAULTS, UMAPParams
from .results import read_labels
from .runner import Context, Log, Outcome, Step, ensure_pca, execute, resolve, run_step, run_steps
from .runner import stderr_log as _stderr
from .prompts import PromptParams, is_prompts_stale, run_prompts
from .steps import ClustersConfig, ClustersStep, CompareConfig, CompareStep, KnnConfig, KnnStep, PcaStep, UmapStep
from .steps.cka import CkaStep, ModelPair, model_layers, source_rows
from .steps.neighbourhood import KeyPair, NeighbourhoodConfig, NeighbourhoodStep
from .steps.place import placed_is_stale, run_place
from .steps.sets import SetsConfig, SetsStep, resolve_set
from .steps.trajectory import TrajectoryStep, read_inputs
from .trajectory import TrajectoryParams
from .store import as_lake, pca_run_id

__all__ = [
    "METRIC_NAMES",
    "ClustersConfig",
    "CompareConfig",
    "KnnConfig",
    "NeighbourhoodConfig",
    "Neighbour",
    "Outcome",
    "PromptParams",
    "RunConfig",
    "TrajectoryParams",
    "cka_table",
    "compare_sets",
    "ensure_pca",
    "list_analyses",
    "query",
    "run_all",
    "run_cka",
    "run_clusters",
    "run_compare",
    "run_knn",
    "run_neighbourhood",
    "run_pca",
    "run_place",
    "run_prompts",
    "run_trajectory",
    "run_umap",
]


def run_pca(lake: Any, layer: str | None = None, sigma: float | None = None, *, pca_dim: int = 50,
            scheduler: str | None = None, force: bool = False, block_rows: int | None = None,
            log: Log = _stderr, progress: bool = True, timestep: int | None = None) -> Outcome:
    """Standardise + PCA one (layer, sigma) activation table out of core into ``analysis/pca/<key>`` (`steps.pca`)."""
    return run_step(PcaStep(pca_dim, block_rows), lake, layer, sigma, scheduler=scheduler, force=force, log=log, progress=progress,
                    timestep=timestep)


def run_umap(lake: Any, layer: str | None = None, sigma: float | None = None, params: UMAPParams = UMAP_DEFAULTS, *,
             scheduler: str | None = None, force: bool = False, log: Log = _stderr, progress: bool = True,
             timestep: int | None = None) -> Outcome:
    """UMAP of one key's PCA scores into ``analysis/embeddings/<key>/<name>`` (`steps.umap`)."""
    return run_step(UmapStep(params), lake, layer, sigma, scheduler=scheduler, force=force, log=log, progress=progress, timestep=timestep)


def run_knn(lake: Any, layer: str | None = None, sigma: float | None = None, *, k: int = 10, exact: bool | None = None,
            exact_below: int = EXACT_BELOW, seed: int = 42, pca_dim: int = 50, scheduler: str | None = None,
            force: bool = False, log: Log = _stderr, progress: bool = True, timestep: int | None = None) -> Outcome:
    """The k-NN graph of one key's PCA scores into ``analysis/knn/<key>`` (`steps.knn`)."""
    step = KnnStep(KnnConfig(k=k, exact=exact, exact_below=exact_below, seed=seed, pca_dim=pca_dim))
    return run_step(step, lake, layer, sigma, scheduler=scheduler, force=force, log=log, progress=progress, timestep=timestep)


def run_compare(lake: Any, layer: str | None = None, sigma: float | None = None, config: CompareConfig = CompareConfig(), *,
                scheduler: str | None = None, force: bool = False, log: Log = _stderr, progress: bool = True,
                timestep: int | None = None) -> Outcome:
    """Real vs generated in one key's PCA space into ``analysis/compare/<key>`` (`steps.compare`)."""
    return run_step(CompareStep(config), lake, layer, sigma, scheduler=scheduler, force=force, log=log, progress=progress, timestep=timestep)


def run_sets(lake: Any, first: str, second: str, layer: str | None = None, sigma: float | None = None,
             config: SetsConfig | None = None, *, scheduler: str | None = None, force: bool = False, log: Log = _stderr,
             progress: bool = True, timestep: int | None = None) -> Outcome:
    """Two generated sets (`first`, `second`: registered model names, ``~<schedule>`` for multi-step or Heun samples)
    compared in one key's PCA space into ``analysis/sets/<key>/<first>__vs__<second>`` (`steps.sets`)."""
    opened = as_lake(lake)
    step = SetsStep(resolve_set(opened, first), resolve_set(opened, second), config or SetsConfig())
    return run_step(step, opened, layer, sigma, scheduler=scheduler, force=force, log=log, progress=progress, timestep=timestep)


def sets_table(lake: Any, group: str) -> dict[str, Any]:
    """A stored sets comparison as `print_compare` takes it: the overall metrics and one record per class."""
    lake = as_lake(lake)
    attrs = lake.attrs(group)
    columns = {name: lake.column(group, name).tolist() for name in ("class_label", "n_first", "n_second", *METRIC_NAMES)}
    classes = [{name: values[i] for name, values in columns.items()} for i in range(len(columns["class_label"]))]
    overall = {"n_first": attrs.get("n_first"), "n_second": attrs.get("n_second"), "k": attrs.get("parameters", {}).get("k"),
               **{name: attrs.get(name) for name in METRIC_NAMES}}
    return {"key": attrs.get("key"), "space": attrs.get("space"), "first": attrs.get("first"), "second": attrs.get("second"),
            "overall": overall, "classes": classes}


def run_clusters(lake: Any, layer: str | None = None, sigma: float | None = None, config: ClustersConfig | None = None, *,
                 block_rows: int | None = None, force: bool = False, log: Log = _stderr, progress: bool = True,
                 timestep: int | None = None) -> Outcome:
    """k-means clusters of one key's PCA scores into ``analysis/clusters/<key>`` (`steps.clusters`).

    `block_rows` sets how many scores are read at once; the clusters do not depend on it.
    """
    return run_step(ClustersStep(config or ClustersConfig(), block_rows), lake, layer, sigma, force=force, log=log, progress=progress, timestep=timestep)


def run_trajectory(lake: Any, layer: str | None = None, params: TrajectoryParams | None = None, *,
                   scheduler: str | None = None, force: bool = False, log: Log = _stderr, progress: bool = True) -> Outcome:
    """One embedding of every sigma of a layer (and its multi-step samples' steps) into ``analysis/trajectory/<layer>`` (`steps.trajectory`)."""
    lake = as_lake(lake)
    key, notes = resolve_key(lake, layer, None)
    for note in notes[:-1]:  # the last note is about the single sigma the other steps take; this one takes them all
        log(note)
    return run_step(TrajectoryStep(params or TrajectoryParams()), lake, key.layer, key.sigma, scheduler=scheduler, force=force, log=log, progress=progress)


def run_cka(lake: Any, first: str, second: str, sigma: float | None = None, first_layers: tuple[str, ...] = (),
            second_layers: tuple[str, ...] = (), *, block_rows: int = CKA_BLOCK_ROWS, scheduler: str | None = None,
            force: bool = False, log: Log = _stderr, progress: bool = True) -> Outcome:
    """CKA of every (chosen) layer of registered model `first` against every layer of `second` on their shared
    samples at `sigma` (default: the one sigma all their tables share) into ``analysis/cka/<first>~<second>@sigma<s>``."""
    lake = as_lake(lake)
    if sigma is None:
        per_table = [set(available_sigmas(lake, layer)) for model in (first, second) for layer in model_layers(lake, model)]
        common = set.intersection(*per_table) if per_table else set()
        if len(common) != 1:
            found = ", ".join(format_sigma(s) for s in sorted(common)) or "none"
            raise AnalysisError(f"{lake.path}: give --sigma; the sigmas both {first} and {second} were probed at: {found}")
        sigma = common.pop()
    pair = ModelPair(first, second, float(np.float32(sigma)))
    step = CkaStep(tuple(first_layers), tuple(second_layers), block_rows).resolved(lake, pair)
    return execute(step, Context(lake, pair, scheduler, log, progress), force)


def run_neighbourhood(lake: Any, first: str, second: str, config: NeighbourhoodConfig | None = None, *,
                      scheduler: str | None = None, force: bool = False, log: Log = _stderr, progress: bool = True) -> Outcome:
    """Per sample both keys hold, the share of its k nearest (shared) samples in `first`'s PCA space that are not
    among its k nearest in `second`'s, into ``analysis/neighbourhood/<first>~<second>`` (keys as `list` prints them,
    layer aliases allowed; each key's PCA is computed first when missing)."""
    config = config or NeighbourhoodConfig()
    keys = []
    for text in (first, second):
        given = parse_key(text)
        lake, key = resolve(lake, given.layer, given.sigma, log)
        lake = ensure_pca(lake, key, config.pca_dim, scheduler, log, progress)
        keys.append(key)
    return execute(NeighbourhoodStep(config), Context(as_lake(lake), KeyPair(keys[0], keys[1]), scheduler, log, progress), force)


def cka_table(lake: Any, group: str) -> tuple[list[str], list[str], np.ndarray]:
    """A stored CKA table: the first model's layers (rows), the second's (columns) and the matrix."""
    lake = as_lake(lake)
    return ([str(v) for v in lake.column(group, "first_layer")], [str(v) for v in lake.column(group, "second_layer")],
            np.asarray(lake.column(group, "cka"), dtype=np.float64))


@dataclass(frozen=True)
class RunConfig:
    """Every parameter of `run_all`, named as the `python -m analysis run` flags (without dashes).

    Each step takes its parameters from here *by name* (`step_fields`): a step parameter
    without a field here is an error, not a silent default, so a flag of `run` reaches
    every step whose own command has it. The only renaming: compare's `k` is `compare_k`
    (the k-NN graph's `k` is `k`), as the flags are named.
    """

    # The UMAP flags: defaults of `UMAPParams` (declared once, in analysis.params).
    pca_dim: int = UMAP_DEFAULTS.pca_dim
    n_neighbors: int = UMAP_DEFAULTS.n_neighbors
    min_dist: float = UMAP_DEFAULTS.min_dist
    metric: str = UMAP_DEFAULTS.metric
    seed: int = UMAP_DEFAULTS.seed
    fit_size: int = UMAP_DEFAULTS.fit_size
    full_fit: bool = UMAP_DEFAULTS.full_fit
    k: int = 10
    exact: bool | None = None
    exact_below: int = EXACT_BELOW
    compare_k: int = 5
    max_per_set: int = 10000
    # k-means clusters (the `clusters` step, and prompts on text-to-image layers). None: 8 on
    # text-to-image layers and no clusters on ImageNet layers (`run` there is what it was).
    clusters: int | None = None

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

    def clusters_config(self) -> ClustersConfig:
        return ClustersConfig(**self.step_fields(ClustersConfig, clusters=self.clusters or ClustersConfig().clusters))

    def prompts(self) -> PromptParams:
        return PromptParams(**self.step_fields(PromptParams, clusters=self.clusters or PromptParams().clusters))

    def steps(self, layer: str | None = None) -> list[Step]:
        """What `run` does on `layer`, in order: PCA, UMAP 2D and 3D, the k-NN graph, [k-means clusters,]
        real vs generated. Clusters come on text-to-image layers, or on any layer when `clusters` is set."""
        steps: list[Step] = [PcaStep(self.pca_dim), UmapStep(self.umap(2)), UmapStep(self.umap(3)), KnnStep(self.knn())]
        if self.clusters is not None or (layer is not None and split_t2i_layer(layer) is not None):
            steps.append(ClustersStep(self.clusters_config()))
        return [*steps, CompareStep(self.compare())]


def run_all(lake: Any, layer: str | None = None, sigma: float | None = None, config: RunConfig = RunConfig(), *,
            scheduler: str | None = None, force: bool = False, log: Log = _stderr, progress: bool = True,
            timestep: int | None = None) -> list[Outcome]:
    """PCA, UMAP 2D and 3D, the k-NN graph, k-means clusters and real-vs-generated for one (layer, sigma).

    Each step gets its parameters from `config` (`RunConfig.steps`) and commits on its
    own; a step whose result is current is reused unless `force`. `compare` is skipped
    (with a note) when the table lacks real or generated samples: a text-to-image table
    holds generated samples only. On a text-to-image layer (``<name>.<module>``) the
    clusters are always computed and the model's prompts are clustered and mapped too
    (`run_prompts`, when the model has a prompts table); on ImageNet layers clusters only
    when `config.clusters` is set.
    """
    lake, key = resolve(lake, layer, sigma, log, timestep)
    outcomes = run_steps(config.steps(key.layer), lake, key.layer, key.sigma, scheduler=scheduler, force=force, log=log, progress=progress)
    parts = split_t2i_layer(key.layer)
    if parts is not None:
        name = parts[0]
        rows = lake.shape(t2i_prompts_group(name), "prompt_id")
        if rows and rows[0] > 0:
            outcomes += run_prompts(lake, name, config.prompts(), force=force, log=log, progress=progress)
        else:
            log(f"skipping prompts: model {name} has no prompts in {t2i_prompts_group(name)}")
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


def query(lake: Any, sample_ids: list[str], layer: str | None = None, sigma: float | None = None, *, k: int = 10, log: Log = _stderr,
          timestep: int | None = None) -> list[Neighbour]:
    """The k nearest neighbours of each given sample id in one key's PCA space."""
    lake, key = resolve(lake, layer, sigma, log, timestep)
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


# Result folders below analysis/ and what `list` calls their kind, with the step that writes them.
LISTED = (("pca", PcaStep()), ("embeddings", UmapStep()), ("knn", KnnStep()), ("compare", CompareStep()), ("clusters", ClustersStep()),
          ("sets", SetsStep()))


def list_analyses(lake: Any) -> dict[str, Any]:
    """What the lake holds: activation tables (layers, sigmas, rows), text-to-image models and every analysis result.

    A text-to-image table's record adds `model`, `site` (``<name>.<alias>`` when its module
    has a site alias, which `--layer` accepts) and `timesteps` (one per sigma).
    """
    lake = as_lake(lake)
    tables = []
    for layer in available_layers(lake):
        shape = lake.shape(AnalysisKey(layer, 0).activations_group, "sample_id")
        sigmas = available_sigmas(lake, layer)
        record: dict[str, Any] = {"layer": layer, "sigmas": [format_sigma(s) for s in sigmas], "rows": int(shape[0]) if shape else 0}
        parts = split_t2i_layer(layer)
        timesteps = t2i_timesteps(lake, layer) if parts else None
        if parts and timesteps:
            record.update(model=parts[0], site=t2i_site_alias(lake, layer) or layer,
                          timesteps=[timesteps.get(float(s)) for s in sigmas])
        tables.append(record)
    results = []
    for folder, step in LISTED:
        for group in lake.results(folder):
            attrs = lake.attrs(group)
            if attrs.get("analysis") != step.kind:
                continue  # the per-key parent groups of embeddings
            key = parse_key(attrs["key"])
            record = {"kind": step.kind, "group": group, "key": key.name, "created": attrs.get("created"), "run_id": attrs.get("run_id")}
            if step.kind != "pca":
                record["stale"] = attrs.get("pca_run_id") != pca_run_id(lake, key)
            record.update(step.summary(attrs))
            results.append(record)
    results.extend(_trajectory_listing(lake))
    results.extend(_placed_listing(lake))
    results.extend(_cka_listing(lake))
    results.extend(_neighbourhood_listing(lake))
    listing = {"lake": str(lake.path), "activations": tables, "analyses": results}
    if lake.children(T2I_GROUP):
        results.extend(_prompts_listing(lake))
        listing["t2i_models"] = _t2i_models(lake)
    return listing


def _t2i_models(lake: Any) -> list[dict[str, Any]]:
    """`list` records of the text-to-image models: family, samples, prompts and activation layers."""
    records = []
    layers = available_layers(lake)
    for name in lake.children(T2I_GROUP):
        samples = lake.shape(t2i_samples_group(name), "sample_id")
        prompts = lake.shape(t2i_prompts_group(name), "prompt_id")
        attrs = lake.t2i_model(name)
        records.append({"name": name, "family": attrs.get("family"), "timesteps": attrs.get("timesteps"),
                        "samples": int(samples[0]) if samples else 0, "prompts": int(prompts[0]) if prompts else 0,
                        "layers": [layer for layer in layers if (split_t2i_layer(layer) or ("",))[0] == name]})
    return records


def _prompts_listing(lake: Any) -> list[dict[str, Any]]:
    """`list` records of the prompt clusterings (analysis/prompts/<name>); stale when the prompts changed."""
    records = []
    for group in lake.results("prompts"):
        attrs = lake.attrs(group)
        if attrs.get("analysis") != "prompts":
            continue
        name = str(attrs.get("name"))
        records.append({"kind": "prompts", "group": group, "key": name, "created": attrs.get("created"), "run_id": attrs.get("run_id"),
                        "stale": is_prompts_stale(lake, name), "n_rows": attrs.get("n_rows"), "n_clusters": attrs.get("n_clusters"),
                        "map_method": attrs.get("map_method")})
    return records


def _placed_listing(lake: Any) -> list[dict[str, Any]]:
    """`list` records of the placed samples (analysis/placed/<key>); stale when the PCA or an embedding changed."""
    records = []
    for group in lake.results("placed"):
        attrs = lake.attrs(group)
        if attrs.get("analysis") != "placed" or "name" in attrs:
            continue  # one record per key; its per-embedding children share its state
        key = parse_key(attrs["key"])
        records.append({"kind": "placed", "group": group, "key": key.name, "created": attrs.get("created"),
                        "run_id": attrs.get("run_id"), "stale": placed_is_stale(lake, key), "n_rows": attrs.get("n_rows"),
                        "method": attrs.get("method"), "embeddings": sorted(attrs.get("embedding_run_ids", {}))})
    return records


def _cka_listing(lake: Any) -> list[dict[str, Any]]:
    """`list` records of the CKA tables (analysis/cka/<first>~<second>@sigma<s>); stale when a table gained rows."""
    records = []
    for group in lake.results("cka"):
        attrs = lake.attrs(group)
        if attrs.get("analysis") != CkaStep.kind:
            continue
        stored = attrs.get("source_rows", {})
        records.append(_pair_record(group, attrs, stale=source_rows(lake, list(stored)) != stored))
    return records


def _neighbourhood_listing(lake: Any) -> list[dict[str, Any]]:
    """`list` records of the neighbourhood changes (analysis/neighbourhood/<first>~<second>); stale when either PCA changed."""
    records = []
    for group in lake.results("neighbourhood"):
        attrs = lake.attrs(group)
        if attrs.get("analysis") != NeighbourhoodStep.kind:
            continue
        stale = any(attrs.get(f"{side}_pca_run_id") != pca_run_id(lake, parse_key(attrs[f"{side}_key"])) for side in ("first", "second"))
        records.append(_pair_record(group, attrs, stale))
    return records


def _pair_record(group: str, attrs: dict[str, Any], stale: bool) -> dict[str, Any]:
    """The `list` record of a result comparing two models or keys (cka, neighbourhood): its rows are the shared samples."""
    return {"kind": attrs["analysis"], "group": group, "key": attrs.get("key"), "created": attrs.get("created"),
            "run_id": attrs.get("run_id"), "stale": stale, "n_rows": attrs.get("n_shared")}


def _trajectory_listing(lake: Any) -> list[dict[str, Any]]:
    """`list` records of the joint embeddings (analysis/trajectory/<layer>); stale when the input rows changed."""
    records = []
    for layer in lake.joint_embedding_layers():
        group = TrajectoryStep().group(AnalysisKey(layer, 0.0))
        attrs = lake.attrs(group)
        if attrs.get("analysis") != TrajectoryStep.kind:
            continue
        record = {"kind": TrajectoryStep.kind, "group": group, "key": layer, "created": attrs.get("created"), "run_id": attrs.get("run_id")}
        try:
            sigmas = attrs.get("parameters", {}).get("sigmas")
            current = read_inputs(lake, layer, None if sigmas is None else tuple(sigmas)).fingerprint
            record["stale"] = any(attrs.get(name) != value for name, value in current.items())
        except AnalysisError:
            record["stale"] = True  # its input table or sigmas are gone
        record.update(TrajectoryStep().summary(attrs))
        records.append(record)
    return records
