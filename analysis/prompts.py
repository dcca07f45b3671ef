"""Prompt clustering: k-means and a 2-D map of a text-to-image model's prompts.

Reads ``t2i/<name>/prompts`` (one row per distinct prompt: text and pooled text
embedding) and writes ``analysis/prompts/<name>`` (`lake.layout.prompt_clusters_spec`):
per prompt, in the prompts table's order, its `cluster`, its 2-D `embedding`, `prompt_id`
and `prompt`.

- The pooled embeddings are L2-normalised first (`normalise_rows`): CLIP's pooled vectors
  are compared by cosine, and on unit vectors the squared euclidean distance is
  2 - 2 cos, so plain k-means on them clusters by cosine similarity.
- k-means is `analysis.clustering` (seeded k-means++ on a hash-chosen subset, then Lloyd passes
  over every prompt in fixed segments, reading the pooled table block by block): the same
  for 3 prompts or 100,000; k defaults to min(8, prompts).
- The map is UMAP with the cosine metric when there are at least `MIN_UMAP_PROMPTS`
  prompts (fitted on all of them up to `fit_size`, else on a seeded hash subset of that
  size, the rest transformed in chunks), and below that the first two principal axes of
  the normalised embeddings (`pca_map`): a neighbour graph of a handful of points says
  little, and UMAP needs at least 10.

A rerun with the same parameters on the same prompts (count and ids) reuses the result
unless `force`. Errors a user can fix raise `AnalysisError` (one line) before anything is
written.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from lake import StagedGroup
from lake.layout import T2I_GROUP, analysis_group, check_t2i_name, prompt_clusters_spec, t2i_prompts_group

from .embedding import TRANSFORM_ROWS, fit_umap, prepare_for_transform, transform_rows
from .errors import AnalysisError
from .clustering import RowSource, init_size, kmeans
from .params import UMAP_DEFAULTS, UMAPParams
from .results import WRITE_ROWS, now, to_attr
from .runner import Computed, Context, Log, Outcome, Step, execute, stderr_log
from .sampling import hash_subsample
from .steps.clusters import DEFAULT_CLUSTERS
from .store import as_lake

# Below this many prompts the map is PCA, not UMAP (see the module docstring).
MIN_UMAP_PROMPTS = 32
SUMMARY_FIELDS = ("n_rows", "n_clusters", "map_method", "inertia", "seconds")


@dataclass(frozen=True)
class PromptParams:
    """Everything that determines a prompt clustering (stored as `parameters`)."""

    clusters: int = DEFAULT_CLUSTERS
    # The map's UMAP settings: defaults of `UMAPParams` (its metric is always cosine).
    seed: int = UMAP_DEFAULTS.seed
    n_neighbors: int = UMAP_DEFAULTS.n_neighbors
    min_dist: float = UMAP_DEFAULTS.min_dist
    fit_size: int = UMAP_DEFAULTS.fit_size


def normalise_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32); all-zero rows stay zero."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def pca_map(x: np.ndarray, n_components: int = 2) -> np.ndarray:
    """Coordinates of the rows on their first principal axes (centred SVD), zero-padded when rank is short.

    Signs follow scikit-learn's `svd_flip` (each axis's largest loading positive), so the
    map does not depend on the LAPACK build.
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros((len(x), n_components), dtype=np.float32)
    if len(x) < 2:
        return out
    centred = x - x.mean(axis=0)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    keep = min(n_components, int(np.count_nonzero(s > s[0] * 1e-9)) if s[0] > 0 else 0)
    for i in range(keep):
        sign = np.sign(vt[i, np.argmax(np.abs(vt[i]))]) or 1.0
        out[:, i] = (u[:, i] * s[i] * sign).astype(np.float32)
    return out


def pooled_source(lake: Any, name: str) -> RowSource:
    """The normalised pooled text embeddings of `name`'s prompts, read by row range or by rows."""
    group = t2i_prompts_group(name)
    n, dim = (int(v) for v in lake.shape(group, "pooled"))
    return RowSource(
        n_rows=n,
        n_features=dim,
        block=lambda start, stop: normalise_rows(lake.column(group, "pooled", slice(start, stop))),
        take=lambda rows: normalise_rows(lake.column(group, "pooled", rows)),
    )


def prompt_map(source: RowSource, prompt_ids: np.ndarray, params: PromptParams, log: Log) -> tuple[np.ndarray, dict[str, Any]]:
    """The 2-D map of the prompts (UMAP cosine, or PCA below `MIN_UMAP_PROMPTS`) and attributes saying how."""
    n = source.n_rows
    if n < MIN_UMAP_PROMPTS:
        log(f"map of {n} prompts: PCA of the normalised embeddings (UMAP from {MIN_UMAP_PROMPTS} prompts)")
        embedding = pca_map(source.block(0, n))
        return embedding, {"map_method": "pca", "map_description": "first two principal axes of the L2-normalised pooled embeddings "
                           f"(fewer than {MIN_UMAP_PROMPTS} prompts)", "fit_rows": n}
    umap_params = UMAPParams(n_components=2, n_neighbors=params.n_neighbors, min_dist=params.min_dist, metric="cosine",
                             seed=params.seed, fit_size=params.fit_size)
    fit_rows = hash_subsample(prompt_ids, params.fit_size, params.seed, salt="prompt-map-fit")
    partial = len(fit_rows) < n
    log(f"map of {n} prompts: UMAP (cosine) fitted on " + (f"a seeded subset of {len(fit_rows)}, the rest transformed" if partial else "all of them"))
    model = fit_umap(source.take(fit_rows), umap_params, will_transform=partial)
    embedding = np.full((n, 2), np.nan, dtype=np.float32)
    embedding[fit_rows] = model.embedding_
    if partial:
        prepare_for_transform(model)
        rest = np.ones(n, dtype=bool)
        rest[fit_rows] = False
        for start in range(0, n, TRANSFORM_ROWS):
            stop = min(start + TRANSFORM_ROWS, n)
            keep = rest[start:stop]
            if keep.any():
                embedding[np.flatnonzero(keep) + start] = transform_rows(model, source.block(start, stop), keep)
    return embedding, {"map_method": "umap", "map_description": f"UMAP, cosine metric, n_neighbors {int(model.n_neighbors)}, "
                       f"min_dist {params.min_dist:g}, seed {params.seed}" + (f"; fitted on {len(fit_rows)} prompts chosen by "
                       "a seeded hash of their ids, the rest transformed" if partial else ""),
                       "fit_rows": int(len(fit_rows))}


def prompts_fingerprint(prompt_ids: np.ndarray) -> dict[str, Any]:
    """What reuse compares: the prompts' count and a digest of their ids in order."""
    digest = hashlib.sha256("\n".join(str(p) for p in prompt_ids).encode("utf-8")).hexdigest()[:16]
    return {"source_rows": int(len(prompt_ids)), "source_digest": digest}


def models_with_prompts(lake: Any, name: str | None) -> list[str]:
    """The model names to cluster: `name` (checked) or every model with a prompts table.

    One-line AnalysisError naming the lake's models when there is none or `name` is unknown.
    """
    models = lake.children(T2I_GROUP)
    if not models:
        raise AnalysisError(f"{lake.path}: holds no text-to-image models (t2i/<name>); run `python -m ingest generate-t2i` first")
    if name is None:
        found = [m for m in models if lake.has(t2i_prompts_group(m))]
        if not found:
            raise AnalysisError(f"{lake.path}: no text-to-image model has a prompts table (t2i/<name>/prompts); models: {', '.join(models)}")
        return found
    try:
        check_t2i_name(name)
    except ValueError as exc:
        raise AnalysisError(f"--name {exc}") from None
    if name not in models:
        raise AnalysisError(f"{lake.path}: no text-to-image model {name!r}; the lake has: {', '.join(models)}")
    if not lake.has(t2i_prompts_group(name)):
        raise AnalysisError(f"{lake.path}: {t2i_prompts_group(name)} is missing (model {name} has no prompts table); "
                            "rerun `python -m ingest generate-t2i` for it")
    return [name]


def is_prompts_stale(lake: Any, name: str) -> bool:
    """Whether ``analysis/prompts/<name>`` was computed from other prompts than the table holds now."""
    attrs = lake.attrs(analysis_group("prompts", name))
    if not lake.has(t2i_prompts_group(name)):
        return True
    current = prompts_fingerprint(lake.column(t2i_prompts_group(name), "prompt_id"))
    return any(attrs.get(k) != v for k, v in current.items())


def _check(params: PromptParams) -> None:
    for flag, value in (("--clusters", params.clusters), ("--n-neighbors", params.n_neighbors), ("--fit-size", params.fit_size)):
        if value < 1:
            raise AnalysisError(f"{flag} {value}: must be at least 1")
    if params.min_dist < 0:
        raise AnalysisError(f"--min-dist {params.min_dist}: must not be negative")


def run_prompts(lake: Any, name: str | None = None, params: PromptParams = PromptParams(), *, force: bool = False,
                log: Log = stderr_log, progress: bool = True) -> list[Outcome]:
    """Cluster and map the prompts of model `name` (or of every model with prompts) into ``analysis/prompts/<name>``.

    Returns one Outcome per model; each result is written in its own locked session,
    staged and swapped in, so a failure leaves the lake and earlier results unchanged
    (`PromptsStep`, run by `analysis.runner.execute`).
    """
    _check(params)
    lake = as_lake(lake)
    names = models_with_prompts(lake, name)
    if name is None:
        log(f"--name not given; clustering the prompts of {', '.join(names)}")
    return [execute(PromptsStep(model, params), Context(lake, model, None, log, progress), force) for model in names]


@dataclass(frozen=True)
class PromptsStep(Step):
    """k-means and a 2-D map of model `name`'s prompts with `params`; its key is the model name."""

    kind: ClassVar[str] = "prompts"
    summary_fields: ClassVar[tuple[str, ...]] = SUMMARY_FIELDS
    reads_pca: ClassVar[bool] = False
    reuse_reason: ClassVar[str] = "same parameters and prompts"

    name: str
    params: PromptParams = field(default_factory=PromptParams)

    def group(self, key: Any) -> str:
        return analysis_group("prompts", self.name)

    def label(self, key: Any) -> str:
        return self.name

    def parameters(self) -> dict[str, Any]:
        return asdict(self.params)

    def check(self, lake: Any) -> None:
        _check(self.params)

    def provenance(self, ctx: Context) -> dict[str, Any]:
        return {"name": self.name, **self.parameters()}

    def _prompt_ids(self, ctx: Context) -> np.ndarray:
        if "prompt_ids" not in ctx.cache:
            ctx.cache["prompt_ids"] = ctx.lake.column(t2i_prompts_group(self.name), "prompt_id")
        return ctx.cache["prompt_ids"]

    def reusable(self, ctx: Context, stored: dict[str, Any]) -> bool:
        fingerprint = prompts_fingerprint(self._prompt_ids(ctx))
        return stored.get("parameters") == to_attr(self.parameters()) and all(stored.get(k) == v for k, v in fingerprint.items())

    def attributes(self, ctx: Context, computed: Computed) -> dict[str, Any]:
        return to_attr({"analysis": self.kind, "key": self.name, "name": self.name, "family": ctx.lake.t2i_model(self.name).get("family"),
                        "source_group": t2i_prompts_group(self.name), "parameters": self.parameters(), "run_id": "",
                        "created": now(), **computed.attrs})

    def compute(self, ctx: Context) -> Computed:
        lake, name, params = ctx.lake, self.name, self.params
        source_group, prompt_ids = t2i_prompts_group(name), self._prompt_ids(ctx)
        n = len(prompt_ids)
        if n == 0:
            raise AnalysisError(f"{lake.path}: {source_group} has no prompts")
        source = pooled_source(lake, name)
        k = min(params.clusters, n)
        if k < params.clusters:
            ctx.log(f"{name} has {n} prompts, fewer than the {params.clusters} clusters asked; using {k} clusters")
        started = time.perf_counter()
        init_rows = hash_subsample(prompt_ids, init_size(n, k), params.seed, salt="kmeans-init")
        ctx.log(f"k-means of {n} prompts of {name}: {k} clusters of the normalised pooled embeddings ({source.n_features} features)")
        result = kmeans(source, k, params.seed, init_rows, progress=ctx.progress, desc=f"k-means prompts {name}")
        embedding, map_attrs = prompt_map(source, prompt_ids, params, ctx.log)
        seconds = time.perf_counter() - started
        zero_rows = sum(int(np.count_nonzero(~source.block(s, min(s + WRITE_ROWS, n)).any(axis=1))) for s in range(0, n, WRITE_ROWS))

        def write(staged: StagedGroup, attrs: dict[str, Any]) -> None:
            table = staged.table(prompt_clusters_spec(name, attrs))
            texts = lake.column(source_group, "prompt")
            for start in range(0, n, WRITE_ROWS):
                stop = min(start + WRITE_ROWS, n)
                table.append({"cluster": result.labels[start:stop].astype(np.int32), "embedding": embedding[start:stop],
                              "prompt_id": np.asarray(prompt_ids[start:stop], dtype=object),
                              "prompt": np.asarray(texts[start:stop], dtype=object)})

        return Computed(
            attrs={"space": "L2-normalised pooled text embeddings", "n_rows": n, "n_clusters_requested": params.clusters,
                   "zero_embeddings": zero_rows, "seconds": round(seconds, 2), **prompts_fingerprint(prompt_ids), **result.attrs(),
                   **map_attrs},
            write=write,
            message=lambda attrs: f"wrote {self.group(name)}: {n} prompts in {k} clusters, {map_attrs['map_method']} map ({seconds:.1f} s)",
        )
