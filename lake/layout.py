"""The lake's layout: every group path, the analysis key, and every table spec, in one place.

Nothing outside `lake/` spells a group path or builds a table spec by hand: jobs and
analyses ask this module where things go and what they look like, and read them back
through the typed readers of `lake.reader.Lake`. Schema version 1 (README "Lake layout"):

    samples/                          one row per image (SAMPLES): image + labels
    generation/<layer>/               per generated sample: the generation pass's channel means
    activations/<layer>/              per probed sample: mean (sample, sigma, channel), probed, labels
    analysis/pca/<key>/               PCA scores (sample, component) + the fitted transform
    analysis/embeddings/<key>/<name>/ UMAP coordinates (sample, axis); <name> = umap2d-n15-d0.1-...
    analysis/knn/<key>/               k-NN graph (sample, k)
    analysis/compare/<key>/           real vs generated per sample, plus per-class metrics (class)
    analysis/clusters/<key>/          k-means cluster of each sample's PCA scores (sample)
    analysis/prompts/<name>/          per prompt of text-to-image model <name>: cluster and 2-D map
                                      of the pooled text embeddings (prompt)
    provenance/<run_id>/              one job's record (attributes only)

A *key* is ``<layer>@sigma<sigma:g>`` (`AnalysisKey`, `parse_key`): one (layer, sigma)
slice of an activation table, the unit every analysis works on. Every per-sample
analysis table carries the label columns (`LABEL_COLUMNS`) in the PCA table's row order.

Noise axis (README "Lake layout"):

    trajectories/<schedule>/          per multi-step sample: x0_hat (sample, sigma, y, x, channel), one
                                      entry per step along ``sigma`` (the step's input sigma, decreasing)
    trajectories/<schedule>/<layer>/  the generation pass's channel means per step (sample, sigma, channel)
    reconstructions/                  per probed sample and sigma: the noisy input and D's one-step x0_hat
    analysis/trajectory/<layer>/      one embedding of every sigma of a layer (sample, sigma, axis),
                                      plus per-sigma scores (trustworthiness, jump) along ``sigma``
    analysis/trajectory/<layer>/<schedule>/  the steps of a schedule placed in that same embedding

A *schedule* is the strictly decreasing list of input sigmas of a k-step sampler, named
by `schedule_id` (``sigmas80-20-5-1.5``). One-step samples (schedule ``[80]``) have no
trajectory group: ``samples`` and ``generation/<layer>`` already are their single step.

Edits and placement (README "Lake layout"):

    lineage/                          one row per sample made from other samples (variations, class
                                      swap, interpolation, neighbour blends, ...): operation, parents
    analysis/placed/<key>/            samples projected through the key's stored PCA (scores), not fitted
    analysis/placed/<key>/<name>/     the same samples placed in the stored embedding <name>

Edited samples are ordinary rows of ``samples`` (source ``generated``, split ``edited``);
their lineage is a linked table joined on ``sample_id`` rather than a ``samples`` column,
so lakes made before edits existed need no migration. Their parents are
``parent_ids`` (comma-separated sample ids). A placed point is never a fitted one: fitted
rows stay in ``analysis/pca``/``embeddings``, placed rows live under ``analysis/placed``.

Text-to-image models (SDXL, SD v1.5; README "Lake layout"), one folder per model *name*:

    t2i/<name>/samples                per sample: the prompt coordinates (prompt_id, prompt,
                                      negative_prompt, guidance, seed, index, class_id), the image
                                      at its native size (sample, y, x, channel) and, optionally,
                                      a preview of every step's x0 (sample, timestep, preview_y,
                                      preview_x, channel); the attributes are the model identity
                                      (family, base, UNet and LoRA hashes, timesteps, size)
    t2i/<name>/prompts                per distinct prompt: its text and the pooled text embedding
                                      (prompt, feature), the prompt feature analyses cluster
    activations/<name>.<module>       per sample and step: the module's channel means along
                                      ``sigma`` (each step's EDM-equivalent noise level
                                      sqrt((1 - abar_t) / abar_t)), optionally pooled s x s maps
    activations/<name>.<module>+update  the same for the block's residual update (output - input)

Every text-to-image sample is also an ordinary ``samples`` row (source ``generated``, split
``t2i``, model_id ``<name>``) whose ``image`` is a 64x64 thumbnail (centre square, area
resampled), so thumbnails, the explorer and notebooks work unchanged; ``class_id`` is the
ImageNet class a ``--prompts-from-classes`` prompt names, else -1. Its id is
``t2i/<name>/<prompt_id>/s<seed>/<index>`` (`t2i_sample_id`), a stable function of (model,
prompt, seed, index); ``prompt_id`` is a hash of the prompt and negative prompt (`prompt_id`).
A name holds one model identity and one image size: another UNet, LoRA or size needs
another name. Its activation tables are ordinary ``activations/<layer>`` tables whose
layer is ``<name>.<module>`` (`t2i_layer`), so every analysis (keys
``<name>.<module>@sigma<s>``), the joint embedding over steps and the explorer work on
them unchanged; the step-to-timestep map is in their ``timesteps``/``sigmas`` attributes.

Where the coming things go (none exists yet; each fits without a new layout):

- **Several models probing the same real images** (student and teacher, checkpoints):
  ``activations/<layer>`` belongs to one model (its ``model_id`` attribute, checked on
  every append). A second model's probes go to ``activations/<model_id>.<layer>``, as
  text-to-image models' tables do, so results of both models sit side by side under
  ``analysis/<kind>/``.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .schema import IMAGE_CODEC, IMAGES_PER_CHUNK, STRING, ColumnSpec, TableSpec

# --------------------------------------------------------------------------- group paths

SAMPLES_GROUP = "samples"
GENERATION_GROUP = "generation"
ACTIVATIONS_GROUP = "activations"
ANALYSIS_GROUP = "analysis"
PROVENANCE_GROUP = "provenance"
TRAJECTORIES_GROUP = "trajectories"
LINEAGE_GROUP = "lineage"
RECONSTRUCTIONS_GROUP = "reconstructions"
T2I_GROUP = "t2i"

# Analysis result kinds: the folder below analysis/ of each (and what `list` calls them).
# `trajectory` results are keyed by layer alone (all sigmas), the others by `AnalysisKey`.
# `placed` holds samples projected into a key's stored PCA/embeddings without refitting.
# `clusters` holds k-means clusters of a key's PCA scores; `prompts` (keyed by a text-to-image
# model name, not an AnalysisKey) the clusters and 2-D map of its prompts' pooled text embeddings.
ANALYSIS_KINDS = ("pca", "embeddings", "knn", "compare", "trajectory", "placed", "clusters", "prompts")

IMAGE_SIZE = 64


def generation_group(layer: str) -> str:
    """``generation/<layer>``: the generation pass's channel means of one block."""
    return f"{GENERATION_GROUP}/{layer}"


def activations_group(layer: str) -> str:
    """``activations/<layer>``: the denoiser probes of one block, all sigmas."""
    return f"{ACTIVATIONS_GROUP}/{layer}"


def trajectory_group(schedule: str) -> str:
    """``trajectories/<schedule>``: the per-step x0_hat images of one multi-step schedule."""
    return f"{TRAJECTORIES_GROUP}/{schedule}"


def trajectory_layer_group(schedule: str, layer: str) -> str:
    """``trajectories/<schedule>/<layer>``: the generation pass's channel means of one block, per step."""
    return f"{trajectory_group(schedule)}/{layer}"


def joint_embedding_group(layer: str, schedule: str | None = None) -> str:
    """``analysis/trajectory/<layer>`` (the probes), or ``.../<schedule>`` (that schedule's steps placed in it)."""
    path = f"{ANALYSIS_GROUP}/trajectory/{layer}"
    return path if schedule is None else f"{path}/{schedule}"


def analysis_prefix(kind: str) -> str:
    """``analysis/<kind>``: the folder of one kind of result (pca, embeddings, knn, compare)."""
    if kind not in ANALYSIS_KINDS:
        raise ValueError(f"unknown analysis kind {kind!r}; one of {', '.join(ANALYSIS_KINDS)}")
    return f"{ANALYSIS_GROUP}/{kind}"


def analysis_group(kind: str, key: AnalysisKey | str, name: str | None = None) -> str:
    """``analysis/<kind>/<key>[/<name>]`` (embeddings are named below their key)."""
    path = f"{analysis_prefix(kind)}/{key}"
    return path if name is None else f"{path}/{name}"


def provenance_group(run_id: str | None = None) -> str:
    """``provenance`` or ``provenance/<run_id>``: one job's record."""
    return PROVENANCE_GROUP if run_id is None else f"{PROVENANCE_GROUP}/{run_id}"


def staging_group(final_path: str, run_id: str) -> str:
    """Where a result is written before it is swapped into `final_path` (see `StagedGroup`)."""
    return f"{final_path}.staging-{run_id}"


def child_name(path: str, parent: str) -> str | None:
    """The direct child's name when `path` is ``<parent>/<name>``, else None."""
    prefix = parent.rstrip("/") + "/"
    rest = path[len(prefix) :] if path.startswith(prefix) else ""
    return rest if rest and "/" not in rest else None


# --------------------------------------------------------------------------- the analysis key


def format_sigma(sigma: float) -> str:
    """The sigma as it appears in keys: float32 value printed with ``%g`` (2, 0.5, 80)."""
    return f"{float(np.float32(sigma)):g}"


def schedule_id(sigmas: Sequence[float]) -> str:
    """The name of a sampling schedule: ``sigmas`` + its input sigmas (`format_sigma`) joined by ``-``.

    ``[80, 20, 5, 1.5]`` -> ``sigmas80-20-5-1.5``. Used as the trajectories group name and,
    for more than one step, in the generated samples' model identity (their ids).
    """
    if not len(sigmas):
        raise ValueError("a schedule needs at least one sigma")
    return "sigmas" + "-".join(format_sigma(s) for s in sigmas)


def parse_schedule_id(text: str) -> tuple[float, ...]:
    """Inverse of `schedule_id`; ValueError (one line) for anything else."""
    body = text.removeprefix("sigmas")
    try:
        if body == text or not body:
            raise ValueError
        return tuple(float(np.float32(t)) for t in body.split("-"))
    except ValueError:
        raise ValueError(f"{text!r}: not a schedule id; expected sigmas<s0>-<s1>-..., e.g. sigmas80-20-5-1.5") from None


@dataclass(frozen=True)
class AnalysisKey:
    """One (layer, sigma) activation table: the unit every analysis works on."""

    layer: str
    sigma: float

    @property
    def name(self) -> str:
        return f"{self.layer}@sigma{format_sigma(self.sigma)}"

    @property
    def activations_group(self) -> str:
        return activations_group(self.layer)

    def group(self, kind: str, name: str | None = None) -> str:
        """This key's result group of `kind` (``analysis/<kind>/<key>[/<name>]``)."""
        return analysis_group(kind, self.name, name)

    @property
    def pca_group(self) -> str:
        return self.group("pca")

    @property
    def knn_group(self) -> str:
        return self.group("knn")

    @property
    def compare_group(self) -> str:
        return self.group("compare")

    @property
    def embeddings_group(self) -> str:
        return self.group("embeddings")

    def embedding_group(self, name: str) -> str:
        return self.group("embeddings", name)

    @property
    def placed_group(self) -> str:
        return self.group("placed")

    def placed_embedding_group(self, name: str) -> str:
        return self.group("placed", name)

    def __str__(self) -> str:
        return self.name


KEY_SEPARATOR = "@sigma"


def parse_key(text: str) -> AnalysisKey:
    """Inverse of `AnalysisKey.name`; ValueError (one line) for anything else."""
    layer, sep, sigma = text.rpartition(KEY_SEPARATOR)
    if not sep or not layer:
        raise ValueError(f"{text!r}: not an analysis key; expected <layer>@sigma<sigma>, e.g. enc.8x8_block2@sigma2")
    try:
        return AnalysisKey(layer, float(np.float32(sigma)))
    except ValueError:
        raise ValueError(f"{text!r}: sigma {sigma!r} is not a number") from None


# --------------------------------------------------------------------------- samples

SAMPLE_SOURCES = ("real", "generated")

SAMPLES = TableSpec(
    path=SAMPLES_GROUP,
    row_dim="sample",
    columns=(
        ColumnSpec(
            "image",
            "uint8",
            (IMAGE_SIZE, IMAGE_SIZE, 3),
            ("y", "x", "channel"),
            rows_per_chunk=IMAGES_PER_CHUNK,
            codec=IMAGE_CODEC,
            coord=False,
            attrs={"description": "RGB image, height x width x channel (HWC), uint8"},
        ),
        ColumnSpec("sample_id", STRING, attrs={"description": "unique, stable id of the sample"}),
        ColumnSpec("source", STRING, attrs={"description": "'real' or 'generated'"}),
        ColumnSpec("split", STRING, attrs={"description": "dataset split ('train', 'val', ...) or 'generated'"}),
        ColumnSpec("class_id", "int16", attrs={"description": "standard ImageNet-1k class id 0..999 (sorted wnids); "
                                                        "-1 for a text-to-image sample whose prompt names no class"}),
        ColumnSpec("wnid", STRING),
        ColumnSpec("class_name", STRING),
        ColumnSpec("origin", STRING, attrs={"description": "NPZ file and row, JPEG path under its root, or generator"}),
        ColumnSpec("seed", "int64", attrs={"description": "generation seed; -1 for real images"}),
        ColumnSpec("model_id", STRING, attrs={"description": "generator identity for generated samples; '' for real"}),
    ),
)

# --------------------------------------------------------------------------- generation and activations

GENERATION_PROBE = "generation pass: D(80 * noise, sigma=80, onehot(class)), noise from (seed, index)"
DENOISER_PROBE = ("denoiser probe: D(x0 + sigma * eps, sigma, onehot(class)), x0 = image / 127.5 - 1, "
                  "eps ~ N(0, I) from (noise_seed, sample_id), the same eps at every sigma")

# Zstd level 1 as for images: float activations compress little, so speed wins.
FLOAT_CODEC: dict[str, Any] = {"name": "zstd", "configuration": {"level": 1, "checksum": False}}
TARGET_CHUNK_BYTES = 4 << 20


def rows_per_chunk(row_bytes: int, low: int = 16, high: int = 16384) -> int:
    """Rows per chunk so that a chunk holds about 4 MiB (a power of two within [low, high])."""
    rows = max(1, TARGET_CHUNK_BYTES // max(1, row_bytes))
    return int(min(high, max(low, 1 << (rows.bit_length() - 1))))


@dataclass(frozen=True)
class LayerShape:
    """A block's output: channels, height, width."""

    channels: int
    height: int
    width: int


def generation_spec(layer: str, shape: LayerShape, attrs: dict[str, Any]) -> TableSpec:
    """`generation/<layer>`: per generated sample, the spatial mean of each channel of the block output."""
    return TableSpec(
        path=generation_group(layer),
        row_dim="sample",
        columns=(
            ColumnSpec("mean", "float32", (shape.channels,), ("channel",), rows_per_chunk(shape.channels * 4),
                       codec=FLOAT_CODEC, coord=False,
                       attrs={"description": f"spatial mean per channel of {layer} in the generation pass"}),
            ColumnSpec("sample_id", STRING, attrs={"description": "joins with samples/sample_id"}),
            ColumnSpec("class_id", "int16", attrs={"description": "class the sample was generated for"}),
        ),
        fixed_coords={"channel": np.arange(shape.channels, dtype=np.int32)},
        attrs={"layer": layer, "probe": GENERATION_PROBE, "sigma": 80.0, **attrs},
    )


def activations_spec(layer: str, shape: LayerShape, sigmas: Sequence[float], keep_spatial: bool,
                     attrs: dict[str, Any]) -> TableSpec:
    """`activations/<layer>`: per probed sample and sigma, channel means (and optionally full maps).

    The sigma-indexed columns are chunked one sigma wide, because readers take one
    (layer, sigma) slice at a time (the analysis keys) and adding a sigma later then
    only adds chunks, never rewrites them (`Table.extend_axis`).
    """
    s, c = len(sigmas), shape.channels
    columns = [
        ColumnSpec("mean", "float32", (s, c), ("sigma", "channel"), rows_per_chunk(c * 4), codec=FLOAT_CODEC,
                   coord=False, inner_chunks=(1, c),
                   attrs={"description": f"spatial mean per channel of {layer}; NaN where not probed"}),
        ColumnSpec("probed", "bool", (s,), ("sigma",), coord=False, inner_chunks=(1,),
                   attrs={"description": "True where (sample, sigma) has been computed"}),
    ]
    if keep_spatial:
        columns.append(ColumnSpec(
            "spatial", "float16", (s, c, shape.height, shape.width), ("sigma", "channel", "y", "x"),
            rows_per_chunk(c * shape.height * shape.width * 2, low=1), codec=FLOAT_CODEC, coord=False,
            inner_chunks=(1, c, shape.height, shape.width),
            attrs={"description": f"full output maps of {layer}; NaN where not probed"}))
    columns += [
        ColumnSpec("sample_id", STRING, attrs={"description": "joins with samples/sample_id"}),
        ColumnSpec("source", STRING, attrs={"description": "'real' or 'generated' (copied from samples)"}),
        ColumnSpec("class_id", "int16", attrs={"description": "the class the probe was conditioned on"}),
    ]
    return TableSpec(
        path=activations_group(layer),
        row_dim="sample",
        columns=tuple(columns),
        fixed_coords={"sigma": np.asarray(sigmas, dtype=np.float32), "channel": np.arange(c, dtype=np.int32)},
        attrs={"layer": layer, "probe": DENOISER_PROBE, "keep_spatial": keep_spatial, **attrs},
    )


# --------------------------------------------------------------------------- the noise axis

TRAJECTORY_PROBE = ("multi-step generation: x = sigma_0 * eps_0; at step i x0_hat_i = D(x, sigma_i, onehot(class)), then "
                    "x = x0_hat_i + sigma_(i+1) * eps_(i+1); eps_i from (seed, index, step i)")
RECONSTRUCTION_PROBE = ("one-step reconstruction of a probe: noisy = x0 + sigma * eps (the probe's input, eps from "
                        "(noise_seed, sample_id)), x0_hat = D(noisy, sigma, onehot(class)); both as uint8 images")

_IMAGE_ATTRS = "RGB image, height x width x channel (HWC), uint8"


def _image_column(name: str, dim: str, length: int, description: str) -> ColumnSpec:
    """Images along a `dim` axis (one image per chunk in that axis, a few samples per chunk)."""
    return ColumnSpec(name, "uint8", (length, IMAGE_SIZE, IMAGE_SIZE, 3), (dim, "y", "x", "channel"),
                      rows_per_chunk=32, inner_chunks=(1, IMAGE_SIZE, IMAGE_SIZE, 3), codec=IMAGE_CODEC, coord=False,
                      attrs={"description": f"{description}; {_IMAGE_ATTRS}"})


def trajectory_spec(schedule: str, sigmas: Sequence[float], attrs: dict[str, Any]) -> TableSpec:
    """``trajectories/<schedule>``: per multi-step sample, the x0_hat of every step along ``sigma``.

    Step i is the i-th entry of the ``sigma`` axis (the step's input sigma; the schedule
    is strictly decreasing, so sigma labels the steps uniquely). The last step's x0_hat
    is the sample's final image in ``samples``.
    """
    return TableSpec(
        path=trajectory_group(schedule),
        row_dim="sample",
        columns=(
            _image_column("x0_hat", "sigma", len(sigmas), "the step's denoised estimate D(x, sigma_i, class)"),
            ColumnSpec("sample_id", STRING, attrs={"description": "joins with samples/sample_id"}),
            ColumnSpec("class_id", "int16", attrs={"description": "class the sample was generated for"}),
        ),
        fixed_coords={"sigma": np.asarray(sigmas, dtype=np.float32)},
        attrs={"schedule": schedule, "sigmas": [float(np.float32(s)) for s in sigmas], "steps": len(sigmas),
               "probe": TRAJECTORY_PROBE, **attrs},
    )


def trajectory_layer_spec(schedule: str, layer: str, shape: LayerShape, sigmas: Sequence[float],
                          attrs: dict[str, Any]) -> TableSpec:
    """``trajectories/<schedule>/<layer>``: the generation pass's channel means of `layer` at every step."""
    s, c = len(sigmas), shape.channels
    return TableSpec(
        path=trajectory_layer_group(schedule, layer),
        row_dim="sample",
        columns=(
            ColumnSpec("mean", "float32", (s, c), ("sigma", "channel"), rows_per_chunk(s * c * 4), codec=FLOAT_CODEC,
                       coord=False, attrs={"description": f"spatial mean per channel of {layer} at each step"}),
            ColumnSpec("sample_id", STRING, attrs={"description": "joins with samples/sample_id"}),
            ColumnSpec("class_id", "int16", attrs={"description": "class the sample was generated for"}),
        ),
        fixed_coords={"sigma": np.asarray(sigmas, dtype=np.float32), "channel": np.arange(c, dtype=np.int32)},
        attrs={"layer": layer, "schedule": schedule, "probe": TRAJECTORY_PROBE, **attrs},
    )


def reconstructions_spec(sigmas: Sequence[float], attrs: dict[str, Any]) -> TableSpec:
    """``reconstructions``: per probed sample and sigma, the probe's noisy input and D's one-step x0_hat.

    Chunked one sigma wide like ``activations/<layer>``, so new sigmas only add chunks.
    """
    s = len(sigmas)
    return TableSpec(
        path=RECONSTRUCTIONS_GROUP,
        row_dim="sample",
        columns=(
            _image_column("noisy", "sigma", s, "the probe's input x0 + sigma * eps, clipped to [-1, 1]"),
            _image_column("x0_hat", "sigma", s, "the one-step reconstruction D(x0 + sigma * eps, sigma, class)"),
            ColumnSpec("probed", "bool", (s,), ("sigma",), coord=False, inner_chunks=(1,),
                       attrs={"description": "True where (sample, sigma) has been computed"}),
            ColumnSpec("sample_id", STRING, attrs={"description": "joins with samples/sample_id"}),
            ColumnSpec("class_id", "int16", attrs={"description": "the class the probe was conditioned on"}),
        ),
        fixed_coords={"sigma": np.asarray(sigmas, dtype=np.float32)},
        attrs={"probe": RECONSTRUCTION_PROBE, **attrs},
    )


# --------------------------------------------------------------------------- lineage

EDIT_OPERATIONS = ("variations", "class_swap", "interpolate", "neighbours", "from_real")


def lineage_spec(attrs: dict[str, Any]) -> TableSpec:
    """``lineage``: per sample made from other samples, how (operation and its parameters) and from what."""
    return TableSpec(
        path=LINEAGE_GROUP,
        row_dim="sample",
        columns=(
            ColumnSpec("sample_id", STRING, attrs={"description": "the edited sample (joins with samples/sample_id)"}),
            ColumnSpec("operation", STRING, attrs={"description": "one of " + ", ".join(EDIT_OPERATIONS)}),
            ColumnSpec("parent_ids", STRING, attrs={"description": "comma-separated sample ids it was made from"}),
            ColumnSpec("layer", STRING, attrs={"description": "block whose output was replaced ('' when none)"}),
            ColumnSpec("mask", STRING, attrs={"description": "spatial mask over the layer's map, row-major '0'/'1' "
                                                             "(e.g. 64 characters for 8x8); '' = everywhere"}),
            ColumnSpec("channels", STRING, attrs={"description": "comma-separated channel subset; '' = all"}),
            ColumnSpec("sigma", "float32", attrs={"description": "noise level of from_real; NaN otherwise"}),
            ColumnSpec("weight", "float32", attrs={"description": "interpolation position t in [0, 1]; NaN otherwise"}),
            ColumnSpec("edit_seed", "int64", attrs={"description": "seed of the edit's own random draws; -1 when none"}),
            ColumnSpec("class_id", "int16", attrs={"description": "class the edited sample was generated for"}),
            ColumnSpec("run_id", STRING, attrs={"description": "the provenance/<run_id> of the job that made it"}),
        ),
        attrs=attrs,
    )


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


# --------------------------------------------------------------------------- text-to-image models

T2I_SPLIT = "t2i"
RESIDUAL_SUFFIX = "+update"
T2I_THUMBNAIL_SIZE = IMAGE_SIZE
# Longest side of the per-step x0 previews: readable in the details panel, 1/16 of a
# 1024x1024 image's bytes.
T2I_PREVIEW_MAX = 256
_T2I_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
T2I_PROBE = ("text-to-image generation pass: at step i the UNet predicts eps from (x_i, t_i, prompt); x0_i = "
             "(x_i - sqrt(1 - abar_i) eps) / sqrt(abar_i); x_(i+1) = sqrt(abar_(i+1)) x0_i + sqrt(1 - abar_(i+1)) "
             "noise_(i+1); sigma = sqrt((1 - abar_i) / abar_i) of each step's timestep; noise from "
             "(seed, prompt_id, index, step)")


def check_t2i_name(name: str) -> str:
    """`name` when it is a valid text-to-image model name (lower-case letters, digits, '-', '_'; no dots).

    No dots, because ``<name>.<module>`` is how its activation layers are named.
    """
    if not _T2I_NAME.fullmatch(name):
        raise ValueError(f"{name!r}: not a model name; use lower-case letters, digits, '-' and '_' "
                         "(at most 64, no dots), e.g. dmd2-sdxl-4step")
    return name


def t2i_group(name: str) -> str:
    """``t2i/<name>``: everything a text-to-image model made, besides its activation tables."""
    return f"{T2I_GROUP}/{name}"


def t2i_samples_group(name: str) -> str:
    """``t2i/<name>/samples``: per sample, prompt coordinates, the native-size image and the step previews."""
    return f"{t2i_group(name)}/samples"


def t2i_prompts_group(name: str) -> str:
    """``t2i/<name>/prompts``: per distinct prompt, its text and pooled text embedding."""
    return f"{t2i_group(name)}/prompts"


def t2i_layer(name: str, module: str, residual: bool = False) -> str:
    """The activation layer name of `module` of model `name`: ``<name>.<module>`` (``+update`` for the residual)."""
    return f"{name}.{module}{RESIDUAL_SUFFIX if residual else ''}"


def split_t2i_layer(layer: str) -> tuple[str, str, bool] | None:
    """(name, module, residual) of a text-to-image layer name, None for a generator block name.

    ImageNet block names (``enc.8x8_block2``, ``dec.8x8_in0``, ``out_conv``) never hold a
    valid model name before their first dot followed by a module path, but ``enc``/``dec``
    would parse, so those two prefixes are excluded explicitly.
    """
    name, dot, module = layer.partition(".")
    if not dot or not module or name in ("enc", "dec") or not _T2I_NAME.fullmatch(name):
        return None
    residual = module.endswith(RESIDUAL_SUFFIX)
    return name, module.removesuffix(RESIDUAL_SUFFIX), residual


def prompt_id(prompt: str, negative_prompt: str = "") -> str:
    """A prompt's stable id: the first 12 hex digits of sha256 over the prompt and negative prompt (UTF-8)."""
    digest = hashlib.sha256(prompt.encode("utf-8") + b"\x00" + negative_prompt.encode("utf-8")).hexdigest()
    return digest[:12]


def t2i_sample_id(name: str, prompt: str, seed: int, index: int) -> str:
    """``t2i/<name>/<prompt_id>/s<seed>/<index>``: sample `index` of a prompt (its `prompt_id`) and seed."""
    return f"{T2I_GROUP}/{name}/{prompt}/s{int(seed)}/{int(index)}"


def preview_size(height: int, width: int, longest: int = T2I_PREVIEW_MAX) -> tuple[int, int]:
    """(height, width) of the step previews: the image scaled so its longest side is at most `longest`."""
    scale = min(1.0, longest / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def t2i_samples_spec(name: str, height: int, width: int, timesteps: Sequence[int], attrs: dict[str, Any],
                     step_previews: bool = True) -> TableSpec:
    """``t2i/<name>/samples``: one row per sample, joined with ``samples`` on ``sample_id``.

    ``image`` is the native-size image, one image per chunk (a 1024x1024 image is 3 MiB).
    ``x0`` (with `step_previews`) holds each step's decoded x0 at `preview_size`, along
    ``timestep`` (the step's timestep, in step order); its last entry is the final image.
    `attrs` carries the model identity; the job checks it on every append.
    """
    ph, pw = preview_size(height, width)
    columns = [
        ColumnSpec("image", "uint8", (height, width, 3), ("y", "x", "channel"), rows_per_chunk=1,
                   codec=IMAGE_CODEC, coord=False, attrs={"description": f"the generated image at its native size; {_IMAGE_ATTRS}"}),
    ]
    if step_previews:
        columns.append(ColumnSpec(
            "x0", "uint8", (len(timesteps), ph, pw, 3), ("timestep", "preview_y", "preview_x", "channel"),
            rows_per_chunk=max(1, IMAGES_PER_CHUNK // (len(timesteps) * max(1, (ph * pw) // (IMAGE_SIZE * IMAGE_SIZE)))),
            inner_chunks=(1, ph, pw, 3), codec=IMAGE_CODEC, coord=False,
            attrs={"description": f"each step's decoded x0 estimate, resized to {ph}x{pw}; {_IMAGE_ATTRS}"}))
    columns += [
        ColumnSpec("sample_id", STRING, attrs={"description": "joins with samples/sample_id"}),
        ColumnSpec("prompt_id", STRING, attrs={"description": "joins with t2i/<name>/prompts/prompt_id"}),
        ColumnSpec("prompt", STRING, attrs={"description": "the text prompt"}),
        ColumnSpec("negative_prompt", STRING, attrs={"description": "the negative prompt ('' when none)"}),
        ColumnSpec("guidance", "float32", attrs={"description": "classifier-free guidance scale (0: none, DMD2's default)"}),
        ColumnSpec("seed", "int64", attrs={"description": "the run's seed"}),
        ColumnSpec("index", "int64", attrs={"description": "the sample's index among the prompt's samples of this seed"}),
        ColumnSpec("class_id", "int16", attrs={"description": "ImageNet class the prompt was made from; -1 when none"}),
    ]
    return TableSpec(
        path=t2i_samples_group(check_t2i_name(name)),
        row_dim="sample",
        columns=tuple(columns),
        fixed_coords={"timestep": np.asarray(timesteps, dtype=np.int32)},
        attrs={"name": name, "height": int(height), "width": int(width), "timesteps": [int(t) for t in timesteps],
               "probe": T2I_PROBE, **attrs},
    )


def t2i_prompts_spec(name: str, pooled_dim: int, attrs: dict[str, Any]) -> TableSpec:
    """``t2i/<name>/prompts``: one row per distinct prompt_id, with its pooled text embedding."""
    return TableSpec(
        path=t2i_prompts_group(check_t2i_name(name)),
        row_dim="prompt",
        key_column="prompt_id",
        columns=(
            ColumnSpec("pooled", "float32", (pooled_dim,), ("feature",), rows_per_chunk(pooled_dim * 4),
                       codec=FLOAT_CODEC, coord=False,
                       attrs={"description": "pooled text embedding (SDXL: text_encoder_2's projection; SD1.5: pooler output)"}),
            ColumnSpec("prompt_id", STRING, attrs={"description": "stable hash of prompt and negative prompt (lake.layout.prompt_id)"}),
            ColumnSpec("prompt", STRING, attrs={"description": "the text prompt"}),
            ColumnSpec("negative_prompt", STRING, attrs={"description": "the negative prompt ('' when none)"}),
            ColumnSpec("class_id", "int16", attrs={"description": "ImageNet class the prompt was made from; -1 when none"}),
        ),
        fixed_coords={"feature": np.arange(pooled_dim, dtype=np.int32)},
        attrs={"name": name, **attrs},
    )


def t2i_activations_spec(name: str, module: str, shape: LayerShape, timesteps: Sequence[int], sigmas: Sequence[float],
                         keep_spatial: bool, attrs: dict[str, Any], residual: bool = False) -> TableSpec:
    """``activations/<name>.<module>[+update]``: an ordinary activation table along the steps' sigmas.

    `shape` is (channels, s, s) with s the pooled map size when `keep_spatial`. The
    attributes map each sigma back to its timestep.
    """
    what = "residual update (output - input) of " if residual else ""
    return activations_spec(
        t2i_layer(check_t2i_name(name), module, residual), shape, sigmas, keep_spatial,
        {"probe": T2I_PROBE, "t2i_model": name, "module": module, "residual": residual,
         "measure": f"{what}{module}, spatial mean per channel at each step",
         "timesteps": [int(t) for t in timesteps], "sigmas": [float(np.float32(s)) for s in sigmas], **attrs})


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


# --------------------------------------------------------------------------- sample ids and model ids
#
# Every sample id grammar is spelled here, once, with its parser: ids are the join key of every
# table, so a job that formatted one differently would silently fork a sample in two.

ONE_STEP_SCHEDULE = (80.0,)  # DMD2's one-step generator: its samples' model id carries no schedule
SampleKind = Literal["in64", "jpeg", "gen", "edit", "t2i"]
SAMPLE_KINDS: tuple[SampleKind, ...] = ("in64", "jpeg", "gen", "edit", "t2i")


def npz_sample_id(stem: str, row: int) -> str:
    """``in64/<stem>/<row>``: row `row` of the NPZ file whose name without suffix is `stem`."""
    return f"in64/{stem}/{row}"


def jpeg_sample_id(relative: str) -> str:
    """``jpeg/<relative>``: the JPEG at `relative` (POSIX path below its root)."""
    return f"jpeg/{relative}"


def generated_id_prefix(model_id: str, seed: int) -> str:
    """``gen/<model_id>/s<seed>/``: what every sample id of one generator and seed starts with."""
    return f"gen/{model_id}/s{seed}/"


def generated_sample_id(model_id: str, seed: int, index: int) -> str:
    """``gen/<model_id>/s<seed>/<index>``: sample `index` of `ingest generate` with `seed`."""
    return f"{generated_id_prefix(model_id, seed)}{index}"


def edit_sample_id(operation: str, digest: str, k: int) -> str:
    """``edit/<operation>/<digest>/<k>``: the k-th sample of one edit (`digest` hashes the edit)."""
    return f"edit/{operation}/{digest}/{k}"


@dataclass(frozen=True)
class SampleId:
    """A sample id's parts; which fields are set depends on `kind` (the others are None).

    in64: stem, row; jpeg: relative; gen: model_id, seed, index; edit: operation, digest, k;
    t2i: name, prompt_id, seed, index.
    """

    kind: SampleKind
    stem: str | None = None
    row: int | None = None
    relative: str | None = None
    model_id: str | None = None
    seed: int | None = None
    index: int | None = None
    operation: str | None = None
    digest: str | None = None
    k: int | None = None
    name: str | None = None
    prompt_id: str | None = None


_SAMPLE_ID_PATTERNS: dict[SampleKind, re.Pattern[str]] = {
    "in64": re.compile(r"^in64/(?P<stem>[^/]+)/(?P<row>\d+)$"),
    "jpeg": re.compile(r"^jpeg/(?P<relative>.+)$"),
    "gen": re.compile(r"^gen/(?P<model_id>[^/]+)/s(?P<seed>\d+)/(?P<index>\d+)$"),
    "edit": re.compile(r"^edit/(?P<operation>[^/]+)/(?P<digest>[^/]+)/(?P<k>\d+)$"),
    "t2i": re.compile(r"^t2i/(?P<name>[^/]+)/(?P<prompt_id>[^/]+)/s(?P<seed>\d+)/(?P<index>\d+)$"),
}
_INT_PARTS = ("row", "seed", "index", "k")


def parse_sample_id(sample_id: str) -> SampleId:
    """The parts of any sample id this lake writes; ValueError (one line) for anything else."""
    for kind, pattern in _SAMPLE_ID_PATTERNS.items():
        match = pattern.match(sample_id)
        if match is not None:
            parts: dict[str, Any] = {n: int(v) if n in _INT_PARTS else v for n, v in match.groupdict().items()}
            return SampleId(kind, **parts)
    raise ValueError(f"{sample_id!r}: not a sample id; expected in64/<stem>/<row>, jpeg/<path>, "
                     "gen/<model>/s<seed>/<index>, edit/<operation>/<digest>/<k> or "
                     "t2i/<name>/<prompt_id>/s<seed>/<index>")


def parse_generated_id(sample_id: str) -> tuple[str, int, int] | None:
    """(model_id, seed, index) of an `ingest generate` sample id, None for any other id."""
    match = _SAMPLE_ID_PATTERNS["gen"].match(sample_id)
    if match is None:
        return None
    return match.group("model_id"), int(match.group("seed")), int(match.group("index"))


def checkpoint_model_id(preset: str, sha256: str) -> str:
    """``<preset>-<sha256[:12]>``: the identity of checkpoint weights."""
    return f"{preset}-{sha256[:12]}"


def random_model_id(preset: str, seed: int) -> str:
    """``<preset>-random-seed<seed>``: the identity of random weights initialised from `seed`."""
    return f"{preset}-random-seed{seed}"


def schedule_model_id(model_id: str, sigmas: Sequence[float]) -> str:
    """The model identity of samples made with `sigmas`: `model_id` itself for one step at 80, else
    ``<model_id>~<schedule id>`` (so one-step and K-step samples of a seed are different samples)."""
    return model_id if tuple(sigmas) == ONE_STEP_SCHEDULE else f"{model_id}~{schedule_id(sigmas)}"


@dataclass(frozen=True)
class ModelIdParts:
    """A model id's parts: the weights' identity (`base`) and the sampling schedule.

    `preset`/`weights` are None when `base` is neither ``<preset>-random-seed<N>`` nor
    ``<preset>-<12 hex digits>`` (e.g. a text-to-image model name).
    """

    base: str
    preset: str | None
    weights: Literal["random", "checkpoint"] | None
    seed: int | None
    sha12: str | None
    schedule: tuple[float, ...]


_RANDOM_MODEL = re.compile(r"^(?P<preset>.+)-random-seed(?P<seed>\d+)$")
_CHECKPOINT_MODEL = re.compile(r"^(?P<preset>.+)-(?P<sha12>[0-9a-f]{12})$")


def parse_model_id(text: str) -> ModelIdParts:
    """Inverse of `random_model_id` / `checkpoint_model_id` (+ `schedule_model_id`); ValueError (one line)
    for an empty id or a bad schedule. The schedule is `ONE_STEP_SCHEDULE` when the id has no ``~``."""
    base, tilde, schedule = text.partition("~")
    if not base or (tilde and not schedule):
        raise ValueError(f"{text!r}: not a model id; expected <preset>-random-seed<N> or <preset>-<sha256[:12]>, "
                         "optionally followed by ~<schedule id>")
    sigmas = parse_schedule_id(schedule) if tilde else ONE_STEP_SCHEDULE
    random = _RANDOM_MODEL.match(base)
    if random:
        return ModelIdParts(base, random.group("preset"), "random", int(random.group("seed")), None, sigmas)
    checkpoint = _CHECKPOINT_MODEL.match(base)
    if checkpoint:
        return ModelIdParts(base, checkpoint.group("preset"), "checkpoint", None, checkpoint.group("sha12"), sigmas)
    return ModelIdParts(base, None, None, None, None, sigmas)
