"""PCA step: standardise + PCA one (layer, sigma) activation table out of core (Dask).

Reads ``activations/<layer>`` at one sigma; writes ``analysis/pca/<key>``
(`lake.layout.pca_spec`): `scores` (sample, component) for every row without NaN, and
the transform `feature`, `mean`, `scale` (feature), `components` (component, feature),
`explained_variance[_ratio]` (component), so `store.project()` can place new activations.
Reused while the parameters and the table's rows (count and probed cells) are unchanged.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from lake import StagedGroup
from lake.layout import pca_spec

from ..errors import AnalysisError
from ..inputs import ActivationTable, SampleLookup, open_activations, probed_count
from ..keys import format_sigma
from ..pca import compute_moments, fit_from_moments, score_blocks
from .base import Computed, Context, Step, require
from ..scheduler import compute_with_progress


@dataclass(frozen=True)
class PcaStep(Step):
    """Standardise (population std) and PCA to `pca_dim` components; `block_rows` sets Dask block size."""

    kind: ClassVar[str] = "pca"
    summary_fields: ClassVar[tuple[str, ...]] = ("n_rows", "excluded_rows", "n_components", "explained_variance_ratio_total")
    uses_dask: ClassVar[bool] = True
    reuse_reason: ClassVar[str] = "same parameters and input rows"
    reads_pca: ClassVar[bool] = False

    pca_dim: int = 50
    block_rows: int | None = None

    def group(self, key: Any) -> str:
        return str(key.pca_group)

    def parameters(self) -> dict[str, Any]:
        return {"pca_dim": self.pca_dim}

    def check(self, lake: Any) -> None:
        require(self.pca_dim >= 1, f"--pca-dim {self.pca_dim}: must be at least 1")

    def provenance(self, ctx: Context) -> dict[str, Any]:
        return {**super().provenance(ctx), "scheduler": ctx.scheduler or "threads"}

    def _table(self, ctx: Context) -> tuple[ActivationTable, int | None]:
        if "table" not in ctx.cache:
            ctx.cache["table"] = open_activations(ctx.lake, ctx.key, self.block_rows), probed_count(ctx.lake, ctx.key)
        return ctx.cache["table"]

    def reusable(self, ctx: Context, stored: dict[str, Any]) -> bool:
        table, probed = self._table(ctx)
        return (
            stored.get("parameters", {}).get("pca_dim") == self.pca_dim
            and stored.get("source_rows") == table.num_rows
            and stored.get("source_probed") == probed
        )

    def compute(self, ctx: Context) -> Computed:
        lake, key = ctx.lake, ctx.key
        table, probed = self._table(ctx)
        ctx.log(f"PCA of {key.activations_group} at sigma {format_sigma(key.sigma)}: {table.num_rows} rows x {table.num_features} channels, on {ctx.where}")
        moments = compute_moments(table.values, progress=ctx.progress)
        if moments.count < 2:
            raise AnalysisError(
                f"{lake.path}: {key.activations_group} has {moments.count} probed rows at sigma {format_sigma(key.sigma)}; PCA needs at least 2"
            )
        model = fit_from_moments(moments, self.pca_dim)
        scores = score_blocks(table.values, model, moments.block_counts)
        lookup = SampleLookup.from_lake(lake)

        def write(staged: StagedGroup, attrs: dict[str, Any]) -> None:
            out = staged.table(pca_spec(key, model.n_components, attrs))
            offsets = np.concatenate([[0], np.cumsum(table.values.chunks[0])])
            batch = max(2, 2 * (os.cpu_count() or 1))
            from tqdm.auto import tqdm

            with tqdm(total=moments.count, desc=f"PCA scores {key.name}", unit="row", disable=not ctx.progress, leave=False) as bar:
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
                        out.append({"scores": block_scores, "sample_id": ids, "source": labels["source"][valid],
                                    "class_id": labels["class_id"][valid], "split": lookup.splits(rows), "sample_row": rows})
                        bar.update(len(ids))
            staged.write_array("feature", np.asarray(table.channel), ("feature",), {"description": "activation channel index"})
            staged.write_array("mean", model.mean, ("feature",), {"description": "per-channel mean of the valid rows"})
            staged.write_array("scale", model.scale, ("feature",), {"description": "per-channel population std (1 for constant channels)"})
            staged.write_array("components", model.components, ("component", "feature"), {"description": "unit principal axes in standardised space"})
            staged.write_array("explained_variance", model.explained_variance, ("component",))
            staged.write_array("explained_variance_ratio", model.explained_variance_ratio, ("component",))

        excluded = table.num_rows - moments.count
        total = float(model.explained_variance_ratio.sum())
        return Computed(
            attrs=dict(
                method="standardise (population std), covariance by Dask reductions, np.linalg.eigh",
                source_rows=table.num_rows,
                source_probed=probed,
                n_rows=moments.count,
                excluded_rows=excluded,
                n_components=model.n_components,
                n_features=table.num_features,
                explained_variance_ratio_total=total,
                scheduler=ctx.where,
            ),
            write=write,
            message=lambda attrs: (
                f"wrote {key.pca_group}: {moments.count} rows x {model.n_components} components "
                f"({excluded} rows without activations left out), explained variance {total:.1%}"
            ),
        )
