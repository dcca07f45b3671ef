"""k-NN step: the k nearest other rows of every row in one key's PCA space.

Reads ``analysis/pca/<key>`` (computed first when missing); writes ``analysis/knn/<key>``
(`lake.layout.knn_spec`): `neighbor_id`, `neighbor_row`, `distance` (sample, k), self
excluded, nearest first. Exact (brute force) below `exact_below` rows or with
`exact=True`; NN-descent (pynndescent, seeded) otherwise, with recall@k estimated on a
sample of rows. Reused while the parameters and the PCA are unchanged.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from lake import StagedGroup
from lake.layout import knn_spec

from ..neighbors import EXACT_BELOW, brute_force_query, build_knn_graph, recall_at_k
from ..results import WRITE_ROWS, read_labels, write_rows
from .base import Computed, Context, Step, pca_components, require
from ..sampling import hash_subsample
from ..store import load_scores, pca_run_id

RECALL_SAMPLE = 500


@dataclass(frozen=True)
class KnnConfig:
    """Parameters of the k-NN graph (what the step takes and stores as `parameters`)."""

    k: int = 10
    exact: bool | None = None
    exact_below: int = EXACT_BELOW
    seed: int = 42
    pca_dim: int = 50


@dataclass(frozen=True)
class KnnStep(Step):
    """The k-NN graph with `config`."""

    kind: ClassVar[str] = "knn"
    summary_fields: ClassVar[tuple[str, ...]] = ("k", "method", "n_rows", "recall_estimate", "seconds")

    config: KnnConfig = KnnConfig()

    def group(self, key: Any) -> str:
        return str(key.knn_group)

    def parameters(self) -> dict[str, Any]:
        return asdict(self.config)

    def check(self, lake: Any) -> None:
        require(self.config.k >= 1, f"--k {self.config.k}: must be at least 1")

    def compute(self, ctx: Context) -> Computed:
        lake, key, config = ctx.lake, ctx.key, self.config
        dims = pca_components(lake, key, config.pca_dim)
        scores = load_scores(lake, key, dims)
        labels = read_labels(lake, key.pca_group)
        n = len(scores)
        started = time.perf_counter()
        method_hint = "exact" if (config.exact if config.exact is not None else n < config.exact_below) else "NN-descent"
        ctx.log(f"k-NN graph of {key.name}: {n} rows x {dims} components, k={config.k}, {method_hint}")
        graph = build_knn_graph(scores, config.k, exact=config.exact, exact_below=config.exact_below, seed=config.seed)
        seconds = time.perf_counter() - started
        recall = 1.0
        if graph.method != "exact":
            sample = hash_subsample(labels.sample_id, RECALL_SAMPLE, config.seed, salt="knn-recall")
            norms = np.einsum("ij,ij->i", scores, scores)
            truth, _ = brute_force_query(scores, norms, scores[sample], graph.indices.shape[1], exclude=sample)
            recall = recall_at_k(graph.indices[sample], truth)
        k_used = graph.indices.shape[1]

        def write(staged: StagedGroup, attrs: dict[str, Any]) -> None:
            table = staged.table(knn_spec(key, k_used, attrs))
            # Block by block: neighbour ids of 1.28M rows at once would be ~100 MB of Python objects.
            for start in range(0, n, WRITE_ROWS):
                rows = graph.indices[start : start + WRITE_ROWS]
                write_rows(table, labels.slice(start, start + len(rows)),
                           {"neighbor_id": labels.sample_id[rows], "neighbor_row": rows, "distance": graph.distances[start : start + len(rows)]})

        return Computed(
            attrs=dict(
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
            ),
            write=write,
            message=lambda attrs: (
                f"wrote {key.knn_group}: {n} rows x {k_used} neighbours ({graph.method}, recall@{k_used} {recall:.3f}, {seconds:.1f} s)"
            ),
        )
