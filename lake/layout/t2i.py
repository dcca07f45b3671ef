"""Text-to-image models: their name, groups, layer names and table specs (``t2i/<name>/...``)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..schema import IMAGE_CODEC, IMAGES_PER_CHUNK, STRING, ColumnSpec, TableSpec
from .ids import MODEL_NAME_PATTERN
from .paths import IMAGE_SIZE, T2I_GROUP
from .registry import is_generator_block, model_layer, split_model_layer
from .tables import FLOAT_CODEC, IMAGE_DESCRIPTION, LayerShape, activations_spec, rows_per_chunk

T2I_SPLIT = "t2i"
RESIDUAL_SUFFIX = "+update"
T2I_THUMBNAIL_SIZE = IMAGE_SIZE
# Longest side of the per-step x0 previews: readable in the details panel, 1/16 of a
# 1024x1024 image's bytes.
T2I_PREVIEW_MAX = 256
_T2I_NAME = MODEL_NAME_PATTERN
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
    return model_layer(name, f"{module}{RESIDUAL_SUFFIX if residual else ''}")


def split_t2i_layer(layer: str) -> tuple[str, str, bool] | None:
    """(name, module, residual) of a text-to-image layer name, None for a generator block name.

    ImageNet block names (``enc.8x8_block2``, ``dec.8x8_in0``, ``out_conv``) never hold a
    valid model name before their first dot followed by a module path, but ``enc``/``dec``
    would parse, so those two prefixes are excluded explicitly; a second ImageNet model's
    layer (``teacher.enc.8x8_block2``, `model_layer`) is a generator block of that model, not
    a text-to-image module.
    """
    name, module = split_model_layer(layer)
    if name is None or is_generator_block(module.removesuffix(RESIDUAL_SUFFIX)):
        return None
    residual = module.endswith(RESIDUAL_SUFFIX)
    return name, module.removesuffix(RESIDUAL_SUFFIX), residual


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
                   codec=IMAGE_CODEC, coord=False, attrs={"description": f"the generated image at its native size; {IMAGE_DESCRIPTION}"}),
    ]
    if step_previews:
        columns.append(ColumnSpec(
            "x0", "uint8", (len(timesteps), ph, pw, 3), ("timestep", "preview_y", "preview_x", "channel"),
            rows_per_chunk=max(1, IMAGES_PER_CHUNK // (len(timesteps) * max(1, (ph * pw) // (IMAGE_SIZE * IMAGE_SIZE)))),
            inner_chunks=(1, ph, pw, 3), codec=IMAGE_CODEC, coord=False,
            attrs={"description": f"each step's decoded x0 estimate, resized to {ph}x{pw}; {IMAGE_DESCRIPTION}"}))
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
