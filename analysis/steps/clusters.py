"""Clusters step: k-means of one key's PCA scores, out of core.

Reads ``analysis/pca/<key>`` (computed first when missing) block by block; writes
``analysis/clusters/<key>`` (`lake.layout.clusters_spec`): `cluster` (int32, 0..k-1) per
row plus the label columns, the rows and order of the PCA table. k-means is
`analysis.clustering`: initial centres by scikit-learn's k-means++ on a subset of rows chosen
by a seeded hash of the sample ids, then Lloyd passes over every row in fixed segments,
so the result depends on the scores, k and the seed only (not on `block_rows`). k is
capped at the number of rows. Reused while the parameters and the PCA are unchanged.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from lake import StagedGroup
from lake.layout import clusters_spec

from ..clustering import RowSource, init_size, kmeans
from ..results import read_labels, write_rows
from .base import Computed, Context, Step, pca_components, require
from ..sampling import hash_subsample
from ..store import pca_run_id

DEFAULT_CLUSTERS = 8


@dataclass(frozen=True)
class ClustersConfig:
    """Parameters of the k-means clusters (what the step stores as `parameters`)."""

    clusters: int = DEFAULT_CLUSTERS
    seed: int = 42
    pca_dim: int = 50


def scores_source(lake: Any, group: str, dims: int) -> RowSource:
    """The first `dims` PCA scores of `group`, read by row range or by rows (float32)."""
    n = int(lake.shape(group, "scores")[0])
    columns = slice(0, dims)
    return RowSource(
        n_rows=n,
        n_features=dims,
        block=lambda start, stop: lake.column(group, "scores", slice(start, stop), cols=columns),
        take=lambda rows: lake.column(group, "scores", rows, cols=columns),
    )


@dataclass(frozen=True)
class ClustersStep(Step):
    """k-means with `config`; `block_rows` only sets how many scores are read at once."""

    kind: ClassVar[str] = "clusters"
    summary_fields: ClassVar[tuple[str, ...]] = ("n_clusters", "n_rows", "inertia", "iterations", "converged", "seconds")

    config: ClustersConfig = ClustersConfig()
    block_rows: int | None = None

    def group(self, key: Any) -> str:
        return str(key.group("clusters"))

    def parameters(self) -> dict[str, Any]:
        return asdict(self.config)

    def check(self, lake: Any) -> None:
        require(self.config.clusters >= 1, f"--clusters {self.config.clusters}: must be at least 1")

    def compute(self, ctx: Context) -> Computed:
        lake, key, config = ctx.lake, ctx.key, self.config
        dims = pca_components(lake, key, config.pca_dim)
        labels = read_labels(lake, key.pca_group)
        n = len(labels)
        k = min(config.clusters, n)
        if k < config.clusters:
            ctx.log(f"{key.name} has {n} rows, fewer than the {config.clusters} clusters asked; using {k} clusters")
        init_rows = hash_subsample(labels.sample_id, init_size(n, k), config.seed, salt="kmeans-init")
        ctx.log(f"k-means of {key.name}: {k} clusters of {n} rows x {dims} PCA components (initial centres from {len(init_rows)} rows)")
        started = time.perf_counter()
        result = kmeans(scores_source(lake, key.pca_group, dims), k, config.seed, init_rows, block_rows=self.block_rows,
                        progress=ctx.progress, desc=f"k-means {key.name}")
        seconds = time.perf_counter() - started

        def write(staged: StagedGroup, attrs: dict[str, Any]) -> None:
            write_rows(staged.table(clusters_spec(key, attrs)), labels, {"cluster": result.labels.astype(np.int32)})

        return Computed(
            attrs=dict(
                method="k-means: scikit-learn k-means++ on a seeded hash subset for the initial centres, then "
                "Lloyd passes over every row in fixed segments (analysis.clustering)",
                space="PCA scores",
                pca_run_id=pca_run_id(lake, key),
                pca_components_used=dims,
                n_rows=n,
                n_clusters_requested=config.clusters,
                seconds=round(seconds, 2),
                **result.attrs(),
            ),
            write=write,
            message=lambda attrs: (f"wrote {self.group(key)}: {n} rows in {k} clusters "
                                   f"({result.iterations} Lloyd update{'' if result.iterations == 1 else 's'}"
                                   f"{'' if result.converged else ', not converged'}, {seconds:.1f} s)"),
        )
