"""UMAP step: embed one key's PCA scores in 2 or 3 dimensions.

Reads ``analysis/pca/<key>`` (computed first when missing); writes
``analysis/embeddings/<key>/<name>`` (`lake.layout.embedding_spec`): `embedding`
(sample, axis) plus the label columns, with trustworthiness in the attributes. Fits on
every row when the table has at most `fit_size` rows (or `full_fit`); otherwise fits on a
seeded, source-and-class-balanced sample and transforms the rest in parallel chunks on
the Dask scheduler. Reused while the parameters and the PCA are unchanged.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from lake import StagedGroup
from lake.layout import embedding_spec

from ..embedding import TRANSFORM_ROWS, TRUSTWORTHINESS_SAMPLE, check_metric, fit_umap, prepare_for_transform, transform_rows, trustworthiness
from ..params import UMAPParams
from ..results import read_labels, write_rows
from .base import Computed, Context, Step, pca_components
from ..sampling import balanced_subsample, group_labels, hash_subsample
from ..scheduler import compute_with_progress
from ..store import load_scores, pca_run_id, pca_scores


@dataclass(frozen=True)
class UmapStep(Step):
    """UMAP with `params` (their `name` names the result group)."""

    kind: ClassVar[str] = "umap"
    summary_fields: ClassVar[tuple[str, ...]] = ("name", "n_rows", "fit_rows", "fit_mode", "trustworthiness", "seconds")
    uses_dask: ClassVar[bool] = True

    params: UMAPParams = field(default_factory=UMAPParams)

    def group(self, key: Any) -> str:
        return str(key.embedding_group(self.params.name))

    def parameters(self) -> dict[str, Any]:
        return self.params.as_dict()

    def check(self, lake: Any) -> None:
        check_metric(self.params.metric)

    def compute(self, ctx: Context) -> Computed:
        lake, key, params = ctx.lake, ctx.key, self.params
        dims = pca_components(lake, key, params.pca_dim)
        labels = read_labels(lake, key.pca_group)
        n = len(labels)
        full = params.full_fit or n <= params.fit_size
        started = time.perf_counter()
        if full:
            ctx.log(f"UMAP {params.name} of {key.name}: fitting on all {n} rows ({dims} PCA components)")
            model = fit_umap(load_scores(lake, key, dims), params)
            embedding = np.asarray(model.embedding_, dtype=np.float32)
            fit_rows = np.arange(n)
        else:
            fit_rows = balanced_subsample(
                labels.sample_id, group_labels(labels.source, labels.class_id), params.fit_size, params.seed, salt="umap-fit"
            )
            ctx.log(f"UMAP {params.name} of {key.name}: fitting on a balanced sample of {len(fit_rows)} of {n} rows, then transforming the rest on {ctx.where}")
            model, embedding = self._fit_and_transform(ctx, dims, fit_rows, n)
        seconds = time.perf_counter() - started
        trust_rows = hash_subsample(labels.sample_id, TRUSTWORTHINESS_SAMPLE, params.seed, salt="trustworthiness")
        trust = trustworthiness(np.asarray(pca_scores(lake, key, dims)[trust_rows].compute()), embedding[trust_rows])

        def write(staged: StagedGroup, attrs: dict[str, Any]) -> None:
            write_rows(staged.table(embedding_spec(key, params.name, params.n_components, attrs)), labels, {"embedding": embedding})

        return Computed(
            attrs=dict(
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
                scheduler=ctx.where,
            ),
            write=write,
            message=lambda attrs: f"wrote {self.group(key)}: {n} rows, trustworthiness {trust:.3f} ({seconds:.1f} s)",
        )

    def _fit_and_transform(self, ctx: Context, dims: int, fit_rows: np.ndarray, n: int) -> tuple[Any, np.ndarray]:
        """Fit on `fit_rows`, then transform every other row in `TRANSFORM_ROWS` chunks as Dask tasks."""
        import dask

        params, key = self.params, ctx.key
        scores = pca_scores(ctx.lake, key, dims)
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
        for s, chunk in zip(starts, compute_with_progress(tasks, f"UMAP transform {key.name}", unit="chunk", show=ctx.progress)):
            keep = np.flatnonzero(rest[s : s + TRANSFORM_ROWS]) + s
            embedding[keep] = chunk
        return model, embedding
