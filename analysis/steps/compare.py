"""Compare step: real vs generated in one key's PCA space, overall and per class, plus memorisation.

Reads ``analysis/pca/<key>`` (computed first when missing) and, when current and deep
enough, the stored k-NN graph; writes ``analysis/compare/<key>``
(`lake.layout.compare_spec`): per sample `real_fraction` of its k nearest other rows
and `nearest_real_distance`; per class (`class` axis) the counts and every metric; the
overall metrics as attributes. Frechet distance uses every row; precision, recall,
density and coverage (k-NN balls) use up to `max_per_set` rows per source (a seeded,
class-balanced sample). Reused while the parameters and the PCA are unchanged.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from lake import StagedGroup, imagenet_classes
from lake.layout import compare_spec, split_t2i_layer

from ..errors import AnalysisError
from ..metrics import METRIC_NAMES, compare_sets, frechet_distance_of, real_fraction
from ..neighbors import EXACT_BELOW, build_knn_graph, nearest_real_distance
from ..results import LabelColumns, group_attrs, read_labels, write_rows
from .base import Computed, Context, Step, pca_components
from ..sampling import balanced_subsample
from ..store import is_current, load_scores, pca_run_id, stored_neighbours


@dataclass(frozen=True)
class CompareConfig:
    """Parameters of the real-vs-generated comparison."""

    k: int = 5
    max_per_set: int = 10000
    seed: int = 42
    pca_dim: int = 50
    exact_below: int = EXACT_BELOW


@dataclass(frozen=True)
class CompareStep(Step):
    """Real vs generated with `config`."""

    kind: ClassVar[str] = "compare"

    config: CompareConfig = CompareConfig()

    def group(self, key: Any) -> str:
        return str(key.compare_group)

    def parameters(self) -> dict[str, Any]:
        return asdict(self.config)

    def summary(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return {k: attrs.get(k) for k in ("n_real", "n_generated", *METRIC_NAMES)} | {"k": attrs.get("parameters", {}).get("k")}

    def skip(self, lake: Any, key: Any) -> str | None:
        sources = set(read_labels(lake, key.pca_group).source.tolist())
        if {"real", "generated"} <= sources:
            return None
        reason = f"{key.name} holds only {', '.join(sorted(sources)) or 'no'} samples"
        if split_t2i_layer(key.layer) is not None:
            # A text-to-image table holds what its model generated; there is no real set to compare with.
            reason += " (a text-to-image model's table: every sample is generated, nothing real to compare with)"
        return reason

    def compute(self, ctx: Context) -> Computed:
        lake, key, config, k = ctx.lake, ctx.key, self.config, self.config.k
        dims = pca_components(lake, key, config.pca_dim)
        scores = load_scores(lake, key, dims)
        labels = read_labels(lake, key.pca_group)
        is_real, is_generated = labels.source == "real", labels.source == "generated"
        if not is_real.any() or not is_generated.any():
            have = "real" if is_real.any() else "generated"
            raise AnalysisError(f"{lake.path}: {key.name} holds only {have} samples; compare needs both real and generated")
        ctx.log(f"real vs generated for {key.name}: {int(is_real.sum())} real, {int(is_generated.sum())} generated, k={k}, {dims} PCA components")

        def capped(mask: np.ndarray, salt: str) -> np.ndarray:
            rows = np.flatnonzero(mask)
            return rows[balanced_subsample(labels.sample_id[rows], labels.class_id[rows], config.max_per_set, config.seed, salt=salt)]

        def metrics(real: np.ndarray, generated: np.ndarray) -> dict[str, float]:
            values = compare_sets(scores[capped(real, "compare-real")], scores[capped(generated, "compare-generated")], k)
            values["frechet_distance"] = frechet_distance_of(scores[real], scores[generated])  # on every row
            return values

        real_rows, generated_rows = capped(is_real, "compare-real"), capped(is_generated, "compare-generated")
        overall = compare_sets(scores[real_rows], scores[generated_rows], k)
        overall["frechet_distance"] = frechet_distance_of(scores[is_real], scores[is_generated])
        classes, per_class, n_real, n_generated = self._per_class(ctx, labels, metrics)
        neighbor_rows, neighbor_distances, source_of_lists = self._neighbour_lists(ctx, scores, dims)
        fraction = real_fraction(neighbor_rows, is_real)
        nearest_real = nearest_real_distance(scores, is_real, neighbor_rows, neighbor_distances, config.exact_below, config.seed)
        class_table = imagenet_classes()
        class_labels = np.array([class_table.label(int(c)) if 0 <= int(c) < 1000 else str(int(c)) for c in classes], dtype=object)

        def write(staged: StagedGroup, attrs: dict[str, Any]) -> None:
            write_rows(staged.table(compare_spec(key, k, attrs)), labels, {"real_fraction": fraction, "nearest_real_distance": nearest_real})
            staged.write_array("class", classes.astype(np.int16), ("class",), {"description": "ImageNet-1k class id"})
            staged.write_array("class_label", class_labels, ("class",), {"description": "'<id>: <name>'"})
            staged.write_array("n_real", n_real, ("class",))
            staged.write_array("n_generated", n_generated, ("class",))
            for name in METRIC_NAMES:
                staged.write_array(f"class_{name}", per_class[name], ("class",),
                                   {"description": f"{name} within the class (NaN: too few samples)", "coordinates": "class_label"})

        return Computed(
            attrs=dict(
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
            ),
            write=write,
            message=lambda attrs: f"wrote {key.compare_group}",
        )

    def _per_class(self, ctx: Context, labels: LabelColumns, metrics: Any) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """Each class's real and generated counts and metrics (NaN with fewer than 2 of either)."""
        from tqdm.auto import tqdm

        is_real, is_generated = labels.source == "real", labels.source == "generated"
        classes = np.unique(labels.class_id)
        per_class = {name: np.full(len(classes), np.nan) for name in METRIC_NAMES}
        n_real = np.zeros(len(classes), dtype=np.int64)
        n_generated = np.zeros(len(classes), dtype=np.int64)
        for i, class_id in enumerate(tqdm(classes, desc="per-class metrics", unit="class", disable=not ctx.progress, leave=False)):
            in_class = labels.class_id == class_id
            n_real[i], n_generated[i] = int((in_class & is_real).sum()), int((in_class & is_generated).sum())
            if n_real[i] >= 2 and n_generated[i] >= 2:
                values = metrics(in_class & is_real, in_class & is_generated)
                for name in METRIC_NAMES:
                    per_class[name][i] = values[name]
        return classes, per_class, n_real, n_generated

    def _neighbour_lists(self, ctx: Context, scores: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray, str]:
        """Each row's k nearest other rows: from the stored k-NN graph when it is current and deep enough."""
        lake, key, k = ctx.lake, ctx.key, self.config.k
        attrs = group_attrs(lake, key.knn_group)
        if is_current(lake, key.knn_group, key) and int(attrs.get("k", 0)) >= k and attrs.get("components") == dims:
            rows, distances = stored_neighbours(lake, key, k)
            return rows, distances, f"stored {key.knn_group} ({attrs.get('method')})"
        graph = build_knn_graph(scores, k, exact_below=self.config.exact_below, seed=self.config.seed)
        return graph.indices, graph.distances, f"computed ({graph.method})"
