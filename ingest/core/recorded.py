"""The model a lake's rows record, found and checked again: the probes' set-up (`probe_setup`), where
their checkpoint is (provenance inputs), and loading exactly that network (`load_probe_model`,
`load_model_id`), or a one-line InputError saying which file to pass.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lake import Lake, open_lake
from lake.layout import RECONSTRUCTIONS_GROUP, activations_group
from lake.schema import LAYER_ALIASES

from ..errors import InputError
from .models import ModelIdentity, ModelSpec, load_model

if TYPE_CHECKING:
    from lake import InputFile


def as_lake(lake: Lake | str | os.PathLike[str]) -> Lake:
    """`lake` itself, or the lake at that path opened for reading."""
    return lake if isinstance(lake, Lake) else open_lake(lake)


def checkpoint_inputs(spec: ModelSpec, identity: ModelIdentity) -> list[InputFile]:
    """The checkpoint file as a provenance input (path, size, sha256), so a later reader can find it again."""
    from lake import InputFile

    if not spec.checkpoint:
        return []
    from models.checkpoint import resolve_checkpoint

    path = resolve_checkpoint(spec.checkpoint)
    return [InputFile(path=str(path.resolve()), size=path.stat().st_size, sha256=identity.checkpoint_sha256 or "")]


@dataclass(frozen=True)
class ProbeSetup:
    """How a lake's probes were made, as its `reconstructions` or `activations/<layer>` attributes record it."""

    group: str
    model_id: str
    preset: str
    weights: str  # "random" or "checkpoint"
    checkpoint: str  # the checkpoint's short name ("" for random weights)
    checkpoint_sha256: str
    noise_seed: int
    compute_block: int
    dtype: str
    sigmas: list[float]  # the group's sigma axis


@dataclass(frozen=True)
class ProbeModel:
    """The network of a lake's probes, loaded: reuse it across `reconstruct_sample` calls."""

    setup: ProbeSetup
    module: Any
    device: Any


def probe_setup(lake: Lake | str | os.PathLike[str], layer: str | None = None) -> ProbeSetup:
    """The recorded probe set-up: `activations/<layer>` when given (an alias like `mid` is fine), else
    `reconstructions`, else the first layer's."""
    lake = as_lake(lake)
    if layer is not None:
        group = activations_group(LAYER_ALIASES.get(layer, layer))
        if not lake.has(group):
            raise InputError(f"{lake.path}: no {group}; it has {', '.join(lake.activation_layers()) or 'no probes'}")
    elif lake.has(RECONSTRUCTIONS_GROUP):
        group = RECONSTRUCTIONS_GROUP
    elif lake.activation_layers():
        group = activations_group(lake.activation_layers()[0])
    else:
        raise InputError(f"{lake.path}: no probes yet (no activations/<layer> or reconstructions); "
                         "run `python -m ingest activations` first")
    attrs = lake.attrs(group)
    try:
        return ProbeSetup(group=group, model_id=str(attrs["model_id"]), preset=str(attrs["preset"]),
                          weights=str(attrs["weights"]), checkpoint=str(attrs.get("checkpoint") or ""),
                          checkpoint_sha256=str(attrs.get("checkpoint_sha256") or ""),
                          noise_seed=int(attrs["noise_seed"]), compute_block=int(attrs["compute_block"]),
                          dtype=str(attrs.get("dtype") or _probe_dtype(lake, attrs)),
                          sigmas=[float(v) for v in np.asarray(lake.column(group, "sigma"), dtype=np.float32)])
    except KeyError as exc:
        raise InputError(f"{lake.path}/{group}: its attributes lack {exc.args[0]!r}; probe again with this version") from None


def _probe_dtype(lake: Lake, attrs: dict[str, Any]) -> str:
    """The compute dtype of the latest `ingest activations` run of this model and noise seed (activation
    groups do not record it; their provenance does), fp32 when none says."""
    for record in reversed(lake.provenance()):
        parameters = record.get("parameters") or {}
        if (record.get("job") == "ingest activations" and parameters.get("model_id") == attrs.get("model_id")
                and parameters.get("noise_seed") == attrs.get("noise_seed") and parameters.get("dtype")):
            return str(parameters["dtype"])
    return "fp32"


def find_checkpoint(lake: Lake | str | os.PathLike[str], setup: ProbeSetup) -> list[str]:
    """Paths the lake's provenance records give for the checkpoint with the probes' sha256, newest first."""
    lake = as_lake(lake)
    paths: list[str] = []
    for record in reversed(lake.provenance()):
        for item in record.get("inputs") or []:
            if item.get("sha256") == setup.checkpoint_sha256 and item.get("path") and item["path"] not in paths:
                paths.append(str(item["path"]))
    return paths


def recorded_checkpoints(lake: Lake, sha_prefix: str) -> list[str]:
    """Existing files the lake's provenance records with a sha256 starting with `sha_prefix`, newest first."""
    paths: list[str] = []
    for record in reversed(lake.provenance()):
        for item in record.get("inputs") or []:
            path = str(item.get("path") or "")
            if str(item.get("sha256") or "").startswith(sha_prefix) and path and path not in paths and os.path.exists(path):
                paths.append(path)
    return paths


def load_probe_model(lake: Lake | str | os.PathLike[str], *, layer: str | None = None, checkpoint: str | None = None,
                     device: str = "auto", dtype: str | None = None) -> ProbeModel:
    """Load the network that made the lake's probes (`probe_setup`), checked against its recorded identity.

    Random weights are rebuilt from the preset. A checkpoint is `checkpoint` when given,
    else the file the provenance records name; either must have the recorded sha256, or a
    one-line InputError says which file to pass. `dtype` defaults to the recorded one.
    """
    lake = as_lake(lake)
    setup = probe_setup(lake, layer)
    wanted = f"the checkpoint with sha256 {setup.checkpoint_sha256[:12]}... ({setup.checkpoint})"
    if setup.weights != "checkpoint":
        candidates: list[str | None] = [None]
    elif checkpoint is not None:
        candidates = [checkpoint]
    else:
        candidates = [p for p in find_checkpoint(lake, setup) if os.path.exists(p)]
        if not candidates:
            raise InputError(f"{lake.path}: its probes ran {wanted}, which no provenance record locates on this "
                             "machine; pass checkpoint=PATH (--checkpoint) to that file")
    for path in candidates:
        loaded, identity = load_model(ModelSpec(preset=setup.preset, checkpoint=path, device=device,
                                                dtype=dtype or setup.dtype))
        if identity.model_id == setup.model_id and (identity.checkpoint_sha256 or "") == setup.checkpoint_sha256:
            return ProbeModel(setup=setup, module=loaded.module, device=loaded.device)
        if setup.weights != "checkpoint":
            raise InputError(f"{lake.path}: its probes ran {setup.model_id}, but --preset {setup.preset} without a "
                             f"checkpoint builds {identity.model_id}; probe again with this version")
        if checkpoint is not None:
            raise InputError(f"checkpoint {path}: this is model {identity.model_id}, but {lake.path}'s probes ran "
                             f"{setup.model_id}; pass {wanted}")
    raise InputError(f"{lake.path}: {', '.join(str(p) for p in candidates)} changed since the probes "
                     f"(sha256 differs); pass checkpoint=PATH to {wanted}")


def probe_identity(setup: ProbeSetup) -> ModelIdentity:
    """The identity the probes' attributes record, as `load_model` would report it."""
    return ModelIdentity(model_id=setup.model_id, preset=setup.preset, weights=setup.weights,
                         checkpoint_name=setup.checkpoint or None, checkpoint_sha256=setup.checkpoint_sha256 or None,
                         dtype=setup.dtype)


@dataclass
class RunModel:
    """A generator loaded for a job, what the lake records about it, and the file it came from."""

    module: Any
    device: Any
    identity: ModelIdentity
    checkpoint: str | None  # the path it was loaded from (None: seeded random weights)


def load_model_id(lake: Lake, model_id: str, checkpoint: str | None = None, device: str = "auto") -> RunModel:
    """Load the generator `model_id` names (as `LoadedGenerator.model_id` spells it), checked against that id.

    Random weights (``<preset>-random-seed<S>``) are rebuilt; a checkpoint
    (``<preset>-<sha256[:12]>``) is `checkpoint` when given, else a file the lake's
    provenance records with that hash. One-line InputError when it cannot be found or differs.
    """
    from lake.layout import parse_model_id

    try:
        parts = parse_model_id(model_id)
    except ValueError:  # an empty id: nothing to rebuild, so it is looked for as a checkpoint (and not found)
        parts = None
    if parts is not None and parts.weights == "random":
        assert parts.preset is not None and parts.seed is not None
        return _random_model(lake, model_id, parts.preset, parts.seed, device)
    if parts is not None and parts.weights == "checkpoint":
        assert parts.preset is not None and parts.sha12 is not None
        preset, short = parts.preset, parts.sha12
    else:  # not a generator id this version writes: its last dash-separated part is all there is to go by
        preset, _, short = model_id.rpartition("-")
    candidates = [checkpoint] if checkpoint else recorded_checkpoints(lake, short)
    if not candidates:
        raise InputError(f"{lake.path}: model {model_id} ran a checkpoint that no provenance record locates on this "
                         "machine; pass --checkpoint PATH")
    for path in candidates:
        loaded, identity = load_model(ModelSpec(preset=preset, checkpoint=path, device=device))
        if identity.model_id == model_id:
            return RunModel(loaded.module, loaded.device, identity, str(path))
    raise InputError(f"--checkpoint {candidates[0]}: this is model {identity.model_id}, the samples were made by "
                     f"{model_id}")


def _random_model(lake: Lake, model_id: str, preset: str, seed: int, device: str) -> RunModel:
    """Seeded random weights, rebuilt from the preset and seed the model id names."""
    import models

    try:
        models.get_preset(preset)
    except ValueError as exc:
        raise InputError(f"{lake.path}: model {model_id}: {exc}") from None
    try:
        torch_device = models.pick_device(None if device == "auto" else device)
    except ValueError as exc:
        raise InputError(f"--device: {exc}") from None
    loaded = models.load_generator(preset, device=str(torch_device), seed=seed)
    identity = ModelIdentity(model_id=loaded.model_id, preset=preset, weights="random", checkpoint_name=None,
                             checkpoint_sha256=None, dtype="fp32")
    return RunModel(loaded.module, loaded.device, identity, None)
