"""The specs of the tables jobs append to: samples, generation and activations, the noise axis, lineage."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..schema import IMAGE_CODEC, IMAGES_PER_CHUNK, STRING, ColumnSpec, TableSpec
from .paths import (
    IMAGE_SIZE,
    LINEAGE_GROUP,
    RATINGS_GROUP,
    RECONSTRUCTIONS_GROUP,
    SAMPLES_GROUP,
    activations_group,
    generation_group,
    parse_heun_schedule_id,
    trajectory_group,
    trajectory_layer_group,
)

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
HEUN_TRAJECTORY_PROBE = ("EDM's Heun sampler (Karras et al. 2022, Algorithm 2): at step i x_hat = x_i + sqrt(t_hat^2 - t_i^2) "
                         "* S_noise * eps_i, x0_hat_i = D(x_hat, t_hat, onehot(class)) (sigma holds t_hat), then a Heun "
                         "step to t_(i+1) with its second-order correction; x_0 = 80 * the one-step noise of (seed, index), "
                         "eps_i from (seed, index, 3, i)")


def trajectory_probe(schedule: str) -> str:
    """How the steps of `schedule` were made, in words: DMD2's multi-step sampler or EDM's Heun sampler."""
    return HEUN_TRAJECTORY_PROBE if parse_heun_schedule_id(schedule) is not None else TRAJECTORY_PROBE


RECONSTRUCTION_PROBE = ("one-step reconstruction of a probe: noisy = x0 + sigma * eps (the probe's input, eps from "
                        "(noise_seed, sample_id)), x0_hat = D(noisy, sigma, onehot(class)); both as uint8 images")

IMAGE_DESCRIPTION = "RGB image, height x width x channel (HWC), uint8"


def _image_column(name: str, dim: str, length: int, description: str) -> ColumnSpec:
    """Images along a `dim` axis (one image per chunk in that axis, a few samples per chunk)."""
    return ColumnSpec(name, "uint8", (length, IMAGE_SIZE, IMAGE_SIZE, 3), (dim, "y", "x", "channel"),
                      rows_per_chunk=32, inner_chunks=(1, IMAGE_SIZE, IMAGE_SIZE, 3), codec=IMAGE_CODEC, coord=False,
                      attrs={"description": f"{description}; {IMAGE_DESCRIPTION}"})


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
               "probe": trajectory_probe(schedule), **attrs},
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
        attrs={"layer": layer, "schedule": schedule, "probe": trajectory_probe(schedule), **attrs},
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


# --------------------------------------------------------------------------- ratings

RATING_CHOICES = ("first", "second", "tie")


def ratings_spec() -> TableSpec:
    """``ratings``: a person's A/B judgements of two models' images of the same noise and class, one row each.

    Append-only: a changed mind is a later row (the latest row of a rater for a pair counts).
    """
    return TableSpec(
        path=RATINGS_GROUP,
        row_dim="rating",
        key_column="rating_id",
        columns=(
            ColumnSpec("rating_id", STRING, attrs={"description": "this rating's own id: <rated_at>-<8 random hex digits>"}),
            ColumnSpec("first_sample_id", STRING, attrs={"description": "the first model's sample (joins with samples/sample_id)"}),
            ColumnSpec("second_sample_id", STRING, attrs={"description": "the second model's sample of the same seed, index and class"}),
            ColumnSpec("first_model", STRING, attrs={"description": "samples/model_id of the first sample"}),
            ColumnSpec("second_model", STRING, attrs={"description": "samples/model_id of the second sample"}),
            ColumnSpec("choice", STRING, attrs={"description": "which looked better: " + ", ".join(RATING_CHOICES)}),
            ColumnSpec("left", STRING, attrs={"description": "which sample was shown on the left (first or second): sides "
                                                            "are shuffled per pair so a rater cannot tell the models apart"}),
            ColumnSpec("rater", STRING, attrs={"description": "who rated (as they typed their name)"}),
            ColumnSpec("rated_at", STRING, attrs={"description": "when, ISO 8601 UTC"}),
        ),
        attrs={"description": "A/B ratings of two models' images of the same noise and class (the explorer's A/B page)"},
    )
