"""What an edit job writes, computed before the lake is opened for writing (`EditPlan`), the ids it
gives its samples, and what the lake says an edit must match: its generation groups, its probes.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from ..options import comma_list

if TYPE_CHECKING:
    from lake import Lake

    from ..core.recorded import RunModel


@dataclass
class EditSample:
    """One edited sample and how it was made (its `lineage` row)."""

    sample_id: str
    image: np.ndarray  # (64, 64, 3) uint8
    class_id: int
    means: dict[str, np.ndarray]  # layer -> (C,) float32; empty for multi-step edits
    parent_ids: list[str]
    weight: float = math.nan


@dataclass
class EditPlan:
    """Everything an edit job writes, computed before the lake is opened for writing."""

    operation: str  # one of lake.layout.EDIT_OPERATIONS
    model_id: str  # samples/model_id of the new samples (with ~<schedule> when multi-step)
    model: RunModel
    seed: int  # the edit seed (-1 when none)
    layer: str = ""
    mask: str = ""
    channels: str = ""
    sigma: float = math.nan
    samples: list[EditSample] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)


def edit_digest(model_id: str, operation: str, parents: Sequence[str], parameters: dict[str, Any]) -> str:
    """Short stable hash of an edit: the same edit always gets the same sample ids."""
    text = json.dumps({"model_id": model_id, "operation": operation, "parents": list(parents),
                       "parameters": parameters}, sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


@dataclass(frozen=True)
class EditOutcome:
    """What an edit job did: every sample id of the edit (in order) and how many rows were new."""

    operation: str
    sample_ids: list[str]
    added: int
    run_id: str


@dataclass(frozen=True)
class ProbeRequest:
    """Which probes the new samples get: layers sharing one (sigmas, noise seed, spatial setting)."""

    layers: tuple[str, ...]
    sigmas: tuple[float, ...]
    noise_seed: int
    keep_spatial: bool


def parse_probe(lake: Lake, text: str | None) -> list[ProbeRequest]:
    """--probe: ``all`` (every activations/<layer> at every sigma it has), ``none``, or keys LAYER@sigmaS."""
    from lake.layout import activations_group, parse_key
    from lake.schema import LAYER_ALIASES

    text = "all" if text is None else text.strip()
    if text == "none":
        return []
    layers = lake.activation_layers()
    if text == "all":
        wanted = {layer: lake.activation_sigmas(layer) for layer in layers}
    else:
        wanted = {}
        for token in comma_list(text):
            try:
                key = parse_key(token)
            except ValueError as exc:
                raise InputError(f"--probe: {exc}") from None
            key = type(key)(LAYER_ALIASES.get(key.layer, key.layer), key.sigma)  # bottleneck@sigma2 works too
            if key.layer not in layers:
                raise InputError(f"--probe {token}: the lake has no activations/{key.layer}; it has "
                                 f"{', '.join(layers) or 'none'} (or say all or none)")
            have = [float(np.float32(s)) for s in lake.activation_sigmas(key.layer)]
            if key.sigma not in have:
                raise InputError(f"--probe {token}: activations/{key.layer} holds sigmas "
                                 f"{', '.join(f'{s:g}' for s in have)}")
            wanted.setdefault(key.layer, [])
            if key.sigma not in wanted[key.layer]:
                wanted[key.layer].append(key.sigma)
    groups: dict[tuple[Any, ...], list[str]] = {}
    for layer, sigmas in wanted.items():
        attrs = lake.attrs(activations_group(layer))
        # One probe run per model too: layers of several registered models are probed each by its own network.
        signature = (tuple(float(s) for s in sigmas), int(attrs.get("noise_seed", 0)), bool(attrs.get("keep_spatial")),
                     str(attrs.get("model_id", "")))
        groups.setdefault(signature, []).append(layer)
    return [ProbeRequest(tuple(layers), sigmas, seed, spatial) for (sigmas, seed, spatial, _), layers in groups.items()]


def generation_layers(lake: Lake, model: RunModel) -> list[str]:
    """The generator blocks whose generation/[<model>.]<block> group belongs to this model: an edit records its
    pass there too (a second registered model's groups carry its name, ingest.core.registry)."""
    from lake.layout import generation_group, split_model_layer

    return [split_model_layer(layer)[1] for layer in lake.generation_layers()
            if lake.attrs(generation_group(layer)).get("model_id") == model.identity.model_id]


def probe_noise_seed(lake: Lake) -> int:
    """The noise seed of the lake's probes (0 when it has none yet), so a real parent is probed as they were."""
    from ..core.recorded import probe_setup

    try:
        return probe_setup(lake).noise_seed
    except InputError:
        return 0
