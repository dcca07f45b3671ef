"""The model registry: the ``models`` table (one row per named network) and model-qualified layer names.

A lake may hold the probes of several networks (DMD2 student, EDM teacher, checkpoints) of
the same images. Each gets a short user *name*, the registry key; its activation tables are
``activations/<name>.<layer>`` (`model_layer`), as a text-to-image model's are. Which model
keeps the unprefixed groups (the lake's first) is the ingest side's policy; the registry only
keeps the rows in registration order.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from ..schema import STRING, ColumnSpec, TableSpec
from .ids import MODEL_NAME_PATTERN
from .paths import MODELS_GROUP, check_schedule_id

MODEL_KINDS = ("imagenet64", "t2i")
MODEL_WEIGHTS = ("random", "checkpoint")
# ImageNet generator blocks are spelled enc.<block> / dec.<block>: a model of either name would
# make ``<name>.<layer>`` ambiguous with them.
RESERVED_MODEL_NAMES = ("enc", "dec")


@dataclass(frozen=True)
class ModelRecord:
    """One row of ``models``: a named network whose probes the lake holds."""

    name: str  # the registry key: lower-case letters, digits, '-', '_' (MODEL_NAME_PATTERN)
    kind: Literal["imagenet64", "t2i"]
    preset: str
    weights: Literal["random", "checkpoint"]
    weights_sha256: str = ""  # '' for random weights
    source: str = ""  # the checkpoint path as given; '' for random weights
    label: str = ""  # free text for people
    schedule: str = ""  # schedule id (`schedule_id`); '' for one step
    model_id: str = ""  # the model id (`checkpoint_model_id` / `random_model_id`, `schedule_model_id`)
    seed: int = -1  # init seed of random weights; -1 otherwise

    def row(self) -> dict[str, list[Any]]:
        """This record as one row per column, what `Table.append` takes."""
        return {name: [value] for name, value in asdict(self).items()}


MODEL_COLUMNS = tuple(f.name for f in fields(ModelRecord))


def check_model_name(name: str) -> str:
    """`name` when it is a valid registry name (as text-to-image names, and not enc/dec); ValueError otherwise."""
    if not MODEL_NAME_PATTERN.fullmatch(name) or name in RESERVED_MODEL_NAMES:
        raise ValueError(f"{name!r}: not a model name; use lower-case letters, digits, '-' and '_' "
                         "(at most 64, no dots, not enc or dec), e.g. teacher")
    return name


def check_model_record(record: ModelRecord) -> ModelRecord:
    """`record` when its fields are consistent; ValueError (one line) naming the first bad field."""
    check_model_name(record.name)
    problem = None
    if record.kind not in MODEL_KINDS:
        problem = f"kind {record.kind!r} is not one of {', '.join(MODEL_KINDS)}"
    elif record.weights not in MODEL_WEIGHTS:
        problem = f"weights {record.weights!r} is not one of {', '.join(MODEL_WEIGHTS)}"
    elif record.weights == "random" and (record.weights_sha256 or record.source or record.seed < 0):
        problem = "random weights have an init seed >= 0 and no weights_sha256 or source"
    elif record.weights == "checkpoint" and (not record.weights_sha256 or record.seed != -1):
        problem = "checkpoint weights have a weights_sha256 and seed -1"
    elif not record.model_id:
        problem = "model_id is empty"
    if problem is None and record.schedule:
        check_schedule_id(record.schedule)
    if problem is not None:
        raise ValueError(f"model {record.name!r}: {problem}")
    return record


def model_record(row: dict[str, Any]) -> ModelRecord:
    """A `ModelRecord` from one stored row (strings as any str-like, seed as any integer)."""
    values: dict[str, Any] = {name: str(row[name]) for name in MODEL_COLUMNS if name != "seed"}
    return ModelRecord(**values, seed=int(row["seed"]))


def models_spec(attrs: dict[str, Any]) -> TableSpec:
    """``models``: one row per registered model, keyed by `name`, in registration order."""
    return TableSpec(
        path=MODELS_GROUP,
        row_dim="model",
        key_column="name",
        columns=(
            ColumnSpec("name", STRING, attrs={"description": "short user name of the model: the registry key and "
                                                            "the <name> of activations/<name>.<layer>"}),
            ColumnSpec("kind", STRING, attrs={"description": "one of " + ", ".join(MODEL_KINDS)}),
            ColumnSpec("preset", STRING, attrs={"description": "the architecture preset"}),
            ColumnSpec("weights", STRING, attrs={"description": "one of " + ", ".join(MODEL_WEIGHTS)}),
            ColumnSpec("weights_sha256", STRING, attrs={"description": "sha256 of the checkpoint; '' for random weights"}),
            ColumnSpec("source", STRING, attrs={"description": "the checkpoint path as given; '' for random weights"}),
            ColumnSpec("label", STRING, attrs={"description": "free text"}),
            ColumnSpec("schedule", STRING, attrs={"description": "sampling schedule id (sigmas... or heun...); '' for one step"}),
            ColumnSpec("model_id", STRING, attrs={"description": "the model id (as samples/model_id spells it)"}),
            ColumnSpec("seed", "int64", attrs={"description": "init seed of random weights; -1 otherwise"}),
        ),
        attrs=attrs,
    )


def model_layer(model: str, layer: str) -> str:
    """``<model>.<layer>``: the activation layer name of `layer` probed in registered model `model`."""
    return f"{model}.{layer}"


# The ImageNet generator's block names (models.capture.layer_names): enc.<res>_<block>,
# dec.<res>_<block> and out_conv. Spelled here, torch-free, so that a model-qualified
# ImageNet layer (``teacher.enc.8x8_block2``) is never taken for a text-to-image module.
GENERATOR_BLOCK_PREFIXES = ("enc.", "dec.")
GENERATOR_TOP_BLOCKS = ("out_conv",)


def is_generator_block(name: str) -> bool:
    """Whether `name` (unqualified) is a block name of the ImageNet generator (``enc.8x8_block2``, ``out_conv``)."""
    return name.startswith(GENERATOR_BLOCK_PREFIXES) or name in GENERATOR_TOP_BLOCKS


def split_model_layer(layer: str) -> tuple[str | None, str]:
    """(model, layer) of a model-qualified layer name; (None, `layer`) for an unqualified one.

    ImageNet block names (``enc.8x8_block2``, ``dec.8x8_in0``, ``out_conv``) never hold a
    valid model name before their first dot, except ``enc``/``dec``, which are excluded.
    """
    model, dot, rest = layer.partition(".")
    if not dot or not rest or model in RESERVED_MODEL_NAMES or not MODEL_NAME_PATTERN.fullmatch(model):
        return None, layer
    return model, rest
