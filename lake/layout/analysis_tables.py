"""The specs of the analysis results: PCA, embeddings, k-NN, compare, clusters, joint embeddings, placed
samples and prompt maps. Every per-sample result carries the label columns in the PCA table's row order."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..schema import STRING, ColumnSpec, TableSpec
from .paths import AnalysisKey, analysis_group, cka_group, joint_embedding_group, neighbourhood_group, sets_group
from .t2i import check_t2i_name

# --------------------------------------------------------------------------- analysis results

# Columns every per-sample analysis table carries, aligned with the PCA table's rows.
LABEL_COLUMNS = ("sample_id", "source", "class_id", "split", "sample_row")


def label_column_specs() -> tuple[ColumnSpec, ...]:
    """The label columns of every per-sample analysis table (the join keys with samples)."""
    return (
        ColumnSpec("sample_id", STRING, attrs={"description": "id of the sample (join key with samples)"}),
        ColumnSpec("source", STRING, attrs={"description": "'real' or 'generated'"}),
        ColumnSpec("class_id", "int16", attrs={"description": "ImageNet-1k class id"}),
        ColumnSpec("split", STRING, attrs={"description": "split from the samples table ('' when the sample is absent there)"}),
        ColumnSpec("sample_row", "int64", attrs={"description": "row of the sample in the samples table (-1 when absent)"}),
    )


def pca_spec(key: AnalysisKey, n_components: int, attrs: dict[str, Any]) -> TableSpec:
    """``analysis/pca/<key>``: scores (sample, component); the transform is stored beside it."""
    scores = ColumnSpec("scores", "float32", (n_components,), ("component",), coord=False,
                        attrs={"description": "PCA scores of the standardised activations"})
    return TableSpec(
        path=key.pca_group,
        row_dim="sample",
        columns=(scores, *label_column_specs()),
        fixed_coords={"component": np.arange(n_components, dtype=np.int32)},
        attrs=attrs,
    )


def embedding_spec(key: AnalysisKey, name: str, n_components: int, attrs: dict[str, Any]) -> TableSpec:
    """``analysis/embeddings/<key>/<name>``: UMAP coordinates (sample, axis x/y[/z])."""
    axes = ["x", "y", "z"][:n_components]
    return TableSpec(
        path=key.embedding_group(name),
        row_dim="sample",
        columns=(
            ColumnSpec("embedding", "float32", (n_components,), ("axis",), coord=False, attrs={"description": "UMAP coordinates"}),
            *label_column_specs(),
        ),
        fixed_coords={"axis": np.array(axes, dtype=np.dtypes.StringDType())},
        attrs=attrs,
    )


def knn_spec(key: AnalysisKey, k: int, attrs: dict[str, Any]) -> TableSpec:
    """``analysis/knn/<key>``: each row's k nearest other rows (ids, rows, distances), nearest first."""
    return TableSpec(
        path=key.knn_group,
        row_dim="sample",
        columns=(
            ColumnSpec("neighbor_id", STRING, (k,), ("k",), coord=False, attrs={"description": "sample ids of the neighbours, nearest first"}),
            ColumnSpec("neighbor_row", "int64", (k,), ("k",), coord=False, attrs={"description": "rows of the neighbours in this key's tables"}),
            ColumnSpec("distance", "float32", (k,), ("k",), coord=False, attrs={"description": "euclidean distance in PCA space"}),
            *label_column_specs(),
        ),
        fixed_coords={"k": np.arange(1, k + 1, dtype=np.int32)},
        attrs=attrs,
    )


def compare_spec(key: AnalysisKey, k: int, attrs: dict[str, Any]) -> TableSpec:
    """``analysis/compare/<key>``: per sample, its neighbours' real share and nearest real distance.

    The per-class metrics are small fixed arrays along ``class`` beside the table
    (`StagedGroup.write_array`): class, class_label, n_real, n_generated, class_<metric>.
    """
    return TableSpec(
        path=key.compare_group,
        row_dim="sample",
        columns=(
            ColumnSpec("real_fraction", "float32", coord=False, attrs={"description": f"share of real samples among the {k} nearest other samples"}),
            ColumnSpec("nearest_real_distance", "float32", coord=False, attrs={"description": "distance to the nearest other real sample (PCA space)"}),
            *label_column_specs(),
        ),
        attrs=attrs,
    )


def joint_embedding_spec(layer: str, sigmas: Sequence[float], n_components: int, attrs: dict[str, Any],
                         schedule: str | None = None) -> TableSpec:
    """``analysis/trajectory/<layer>[/<schedule>]``: one embedding of all sigmas, (sample, sigma, axis).

    Without `schedule` its rows are those of ``activations/<layer>`` (NaN where a
    (sample, sigma) was not probed) and it carries the label columns; the per-sigma
    scores are small arrays along ``sigma`` beside it. With `schedule` its rows are those
    of ``trajectories/<schedule>/<layer>``, placed in the same coordinates.
    """
    axes = ["x", "y", "z"][:n_components]
    labels = label_column_specs() if schedule is None else (
        ColumnSpec("sample_id", STRING, attrs={"description": "id of the sample (join key with samples)"}),
        ColumnSpec("class_id", "int16", attrs={"description": "ImageNet-1k class id"}),
    )
    return TableSpec(
        path=joint_embedding_group(layer, schedule),
        row_dim="sample",
        columns=(
            ColumnSpec("embedding", "float32", (len(sigmas), n_components), ("sigma", "axis"), coord=False,
                       attrs={"description": "coordinates in the layer's joint embedding; NaN where not computed"}),
            *labels,
        ),
        fixed_coords={"sigma": np.asarray(sigmas, dtype=np.float32), "axis": np.array(axes, dtype=np.dtypes.StringDType())},
        attrs={"layer": layer, **({"schedule": schedule} if schedule else {}), **attrs},
    )



# --------------------------------------------------------------------------- placed samples

# Nearest fitted rows stored per placed sample (at least; more when an embedding uses more).
PLACED_NEIGHBOURS = 15


def placed_spec(key: AnalysisKey, n_components: int, attrs: dict[str, Any], k: int = PLACED_NEIGHBOURS) -> TableSpec:
    """``analysis/placed/<key>``: samples projected through the key's stored PCA (scores), not part of its fit.

    Beside the scores, each placed sample's `k` nearest *fitted* rows in PCA space, nearest
    first, in the columns of ``analysis/knn/<key>`` (neighbor_id, neighbor_row, distance;
    neighbor_row indexes ``analysis/pca/<key>``), so the explorer shows its neighbours.
    """
    return TableSpec(
        path=key.placed_group,
        row_dim="sample",
        columns=(
            ColumnSpec("scores", "float32", (n_components,), ("component",), coord=False,
                       attrs={"description": "scores under the stored PCA transform (placed, not fitted)"}),
            ColumnSpec("neighbor_id", STRING, (k,), ("k",), coord=False,
                       attrs={"description": "sample ids of the nearest fitted samples, nearest first"}),
            ColumnSpec("neighbor_row", "int64", (k,), ("k",), coord=False,
                       attrs={"description": "rows of those fitted samples in analysis/pca/<key> (and its embeddings)"}),
            ColumnSpec("distance", "float32", (k,), ("k",), coord=False,
                       attrs={"description": "euclidean distance in PCA space"}),
            *label_column_specs(),
        ),
        fixed_coords={"component": np.arange(n_components, dtype=np.int32), "k": np.arange(1, k + 1, dtype=np.int32)},
        attrs=attrs,
    )


def placed_embedding_spec(key: AnalysisKey, name: str, n_components: int, attrs: dict[str, Any]) -> TableSpec:
    """``analysis/placed/<key>/<name>``: the placed samples' coordinates in the stored embedding `name`."""
    axes = ["x", "y", "z"][:n_components]
    return TableSpec(
        path=key.placed_embedding_group(name),
        row_dim="sample",
        columns=(
            ColumnSpec("embedding", "float32", (n_components,), ("axis",), coord=False,
                       attrs={"description": "coordinates placed in the stored embedding (placed, not fitted)"}),
            *label_column_specs(),
        ),
        fixed_coords={"axis": np.array(axes, dtype=np.dtypes.StringDType())},
        attrs=attrs,
    )


# --------------------------------------------------------------------------- clusters


def clusters_spec(key: AnalysisKey, attrs: dict[str, Any]) -> TableSpec:
    """``analysis/clusters/<key>``: each sample's k-means cluster in the key's PCA space (rows as the PCA table's)."""
    return TableSpec(
        path=key.group("clusters"),
        row_dim="sample",
        columns=(
            ColumnSpec("cluster", "int32", attrs={"description": "k-means cluster of the PCA scores, 0..n_clusters-1"}),
            *label_column_specs(),
        ),
        attrs=attrs,
    )


def prompt_clusters_spec(name: str, attrs: dict[str, Any], n_components: int = 2) -> TableSpec:
    """``analysis/prompts/<name>``: per prompt of model `name`, its cluster and coordinates in a map of the
    pooled text embeddings (rows as ``t2i/<name>/prompts``)."""
    axes = ["x", "y", "z"][:n_components]
    return TableSpec(
        path=analysis_group("prompts", check_t2i_name(name)),
        row_dim="prompt",
        key_column="prompt_id",
        columns=(
            ColumnSpec("cluster", "int32", attrs={"description": "k-means cluster of the normalised pooled text embedding"}),
            ColumnSpec("embedding", "float32", (n_components,), ("axis",), coord=False,
                       attrs={"description": "coordinates in a 2-D map of the pooled text embeddings"}),
            ColumnSpec("prompt_id", STRING, attrs={"description": "joins with t2i/<name>/prompts/prompt_id"}),
            ColumnSpec("prompt", STRING, attrs={"description": "the text prompt"}),
        ),
        fixed_coords={"axis": np.array(axes, dtype=np.dtypes.StringDType())},
        attrs={"name": name, **attrs},
    )


def cka_spec(first: str, second: str, sigma: float, first_layers: Sequence[str], second_layers: Sequence[str],
             attrs: dict[str, Any]) -> TableSpec:
    """``analysis/cka/<first>~<second>@sigma<s>`` (`cka_group`): one row per layer of model `first`, ``cka``
    along model `second`'s layers, so ``xr.open_zarr`` gives ``cka`` as a (first_layer, second_layer) matrix."""
    return TableSpec(
        path=cka_group(first, second, sigma),
        row_dim="first_layer",
        key_column="first_layer",
        columns=(
            ColumnSpec("first_layer", STRING, attrs={"description": "layer of the first model (activation table name)"}),
            ColumnSpec("cka", "float64", inner_shape=(len(second_layers),), inner_dims=("second_layer",), coord=False,
                       attrs={"description": "debiased linear CKA (Kornblith et al. 2019) on the shared samples"}),
        ),
        fixed_coords={"second_layer": np.asarray(list(second_layers), dtype=np.dtypes.StringDType())},  # variable-length UTF-8
        attrs=attrs,
    )


def neighbourhood_spec(first: AnalysisKey, second: AnalysisKey, k: int, attrs: dict[str, Any]) -> TableSpec:
    """``analysis/neighbourhood/<first key>~<second key>``: one row per sample both keys hold (the first key's PCA
    row order), the share of its k nearest shared samples in the first key's PCA space that are not among its k
    nearest in the second's."""
    return TableSpec(
        path=neighbourhood_group(first, second),
        row_dim="sample",
        columns=(
            ColumnSpec("neighbourhood_change", "float32", coord=False,
                       attrs={"description": f"share of the {k} nearest shared samples (first key) not among the {k} nearest (second key)"}),
            ColumnSpec("shared_neighbours", "int16", coord=False, attrs={"description": f"how many of the {k} nearest are in both"}),
            *label_column_specs(),
        ),
        attrs=attrs,
    )


SET_METRICS = ("frechet_distance", "precision", "recall", "density", "coverage")  # as analysis.metrics.METRIC_NAMES


def sets_spec(key: AnalysisKey, first: str, second: str, attrs: dict[str, Any]) -> TableSpec:
    """``analysis/sets/<key>/<first>__vs__<second>`` (`sets_group`): one row per class both sets hold, its counts
    and the metrics with the first set as the reference (as real is in ``compare``); the overall metrics are attributes."""
    return TableSpec(
        path=sets_group(key, first, second),
        row_dim="class",
        key_column="class_label",
        columns=(
            ColumnSpec("class_label", STRING, attrs={"description": "'<id>: <name>'"}),
            ColumnSpec("class_id", "int16", attrs={"description": "ImageNet-1k class id"}),
            ColumnSpec("n_first", "int64", attrs={"description": f"samples of {first} in the class"}),
            ColumnSpec("n_second", "int64", attrs={"description": f"samples of {second} in the class"}),
            *(ColumnSpec(name, "float64", coord=False, attrs={"description": f"{name} of {second} against {first} within the "
                                                                              "class (NaN: too few samples)"})
              for name in SET_METRICS),
        ),
        attrs=attrs,
    )
