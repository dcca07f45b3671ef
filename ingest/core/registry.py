"""Several ImageNet models in one lake: which registered model a job's network is, and where it writes.

The lake's registry (`lake.layout.ModelRecord`, table ``models``) holds one row per named
network. The policy every job follows (`place_model`):

- The lake's *first* model keeps today's unprefixed tables (``activations/<layer>``,
  ``generation/<layer>``), so every lake made before the registry opens and resumes
  unchanged. A lake made before the registry has no rows: its first model is read off its
  unprefixed tables and registered (under its preset's name, or ``--model``'s when that is
  the same network) by the next job that writes.
- Any other model needs ``--model NAME``; its tables are ``activations/NAME.<layer>`` and
  ``generation/NAME.<layer>`` (`lake.layout.model_layer`). Its generated samples are told
  apart by their ids and ``model_id`` already (``gen/<model_id>/...``).
- A second, different network without ``--model`` is refused (one line naming the flag),
  and so is a name that the registry holds for another network.

Pure decisions on a read-only `Lake`; the job registers the returned records inside its
own writer session (`register`), so a refused or failed job leaves the lake unchanged.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from lake.layout import (
    ModelRecord,
    activations_group,
    check_model_name,
    generation_group,
    is_generator_block,
    model_layer,
    parse_model_id,
    split_model_layer,
)

from ..errors import InputError

if TYPE_CHECKING:
    from lake import Lake, LakeWriter

    from .models import ModelIdentity

IMAGENET_KIND: Literal["imagenet64"] = "imagenet64"


@dataclass(frozen=True)
class ModelPlace:
    """A job's network as the registry knows it, and the records the job must register when it writes."""

    record: ModelRecord
    first: bool  # the lake's first model: unprefixed tables
    new_records: tuple[ModelRecord, ...] = ()  # to register in the job's writer session (none when known)

    def layer(self, block: str) -> str:
        """The table layer name of generator block `block` for this model (``teacher.enc.8x8_block2``)."""
        return block if self.first else model_layer(self.record.name, block)

    def register(self, writer: LakeWriter) -> None:
        """Write the new registry rows (if any) in `writer`'s session: they commit with the job's first batch."""
        from lake import register_model

        for record in self.new_records:
            register_model(writer, record)


def model_record(identity: ModelIdentity, name: str, source: str | None = None, label: str = "") -> ModelRecord:
    """The registry row of a loaded ImageNet generator (`load_model`'s identity) under `name`."""
    parts = parse_model_id(identity.model_id)
    random = identity.weights == "random"
    return ModelRecord(name=name, kind=IMAGENET_KIND, preset=identity.preset, weights="random" if random else "checkpoint",
                       weights_sha256="" if random else (identity.checkpoint_sha256 or ""),
                       source="" if random else str(source or identity.checkpoint_name or ""), label=label,
                       model_id=identity.model_id, seed=(parts.seed if random and parts.seed is not None else -1))


def same_network(record: ModelRecord, identity: ModelIdentity) -> bool:
    """Whether `record` names the network `identity` describes (same preset and weights; paths may differ)."""
    return (record.kind == IMAGENET_KIND and record.model_id == identity.model_id
            and record.weights_sha256 == (identity.checkpoint_sha256 or ""))


def recorded_first_model(lake: Lake) -> ModelRecord | None:
    """The model of an unregistered lake's unprefixed ImageNet tables (a lake made before the registry), if any."""
    for group in [activations_group(layer) for layer in lake.activation_layers()] + \
                 [generation_group(layer) for layer in lake.generation_layers()]:
        block = group.split("/", 1)[1]
        if split_model_layer(block)[0] is not None or not is_generator_block(block):
            continue
        attrs = lake.attrs(group)
        if attrs.get("model_id") and attrs.get("preset"):
            return _record_from_attrs(attrs)
    return None


def _record_from_attrs(attrs: dict[str, Any]) -> ModelRecord:
    """The registry row of the network a table's identity attributes record, named after its preset."""
    model_id, preset = str(attrs["model_id"]), str(attrs["preset"])
    random = str(attrs.get("weights")) == "random"
    seed = parse_model_id(model_id).seed if random else None
    return ModelRecord(name=default_name(preset), kind=IMAGENET_KIND, preset=preset,
                       weights="random" if random else "checkpoint",
                       weights_sha256="" if random else str(attrs.get("checkpoint_sha256") or ""),
                       source="" if random else str(attrs.get("checkpoint") or ""), model_id=model_id,
                       seed=seed if seed is not None else -1)


def default_name(preset: str) -> str:
    """The registry name of a lake's first model when no --model names it: its preset (``tiny``, ``dmd2-imagenet64``)."""
    return preset


def place_model(lake: Lake | None, identity: ModelIdentity, name: str | None, source: str | None = None) -> ModelPlace:
    """Which registered model the job's network is (registering it when new), or a one-line InputError.

    `lake` is the committed lake (None: none yet, the job creates it); `name` is ``--model``
    (None when not given); `source` the checkpoint path as given.
    """
    if name is not None:
        try:
            check_model_name(name)
        except ValueError as exc:
            raise InputError(f"--model: {exc}") from None
    known = list(lake.models()) if lake is not None else []
    new: list[ModelRecord] = []
    if not known and lake is not None:
        legacy = recorded_first_model(lake)
        if legacy is not None:
            if name is not None and same_network(legacy, identity):
                legacy = _renamed(legacy, name, source)
            known, new = [legacy], [legacy]
    if not known:  # a fresh lake (or one with only real images): this network is its first model
        record = model_record(identity, name or default_name(identity.preset), source)
        return ModelPlace(record, first=True, new_records=(record,))
    assert lake is not None
    return _place_among(lake, known, new, identity, name, source)


def place_model_at(path: str | os.PathLike[str], identity: ModelIdentity, name: str | None,
                   source: str | None = None) -> ModelPlace:
    """`place_model` on the lake committed at `path` (none there yet: the job's network becomes its first model)."""
    from lake import NotALakeError, open_lake

    try:
        lake = open_lake(path)
    except NotALakeError:
        lake = None
    return place_model(lake, identity, name, source)


def _renamed(record: ModelRecord, name: str, source: str | None) -> ModelRecord:
    values = {**record.__dict__, "name": name}
    if source and record.weights == "checkpoint":
        values["source"] = str(source)
    return ModelRecord(**values)


def _place_among(lake: Lake, known: list[ModelRecord], new: list[ModelRecord], identity: ModelIdentity,
                 name: str | None, source: str | None) -> ModelPlace:
    first = known[0]
    by_name = {record.name: record for record in known}
    same = [record for record in known if same_network(record, identity)]
    if name is None:
        if same_network(first, identity):
            return ModelPlace(first, first=True, new_records=tuple(new))
        raise InputError(f"--model: {lake.path} holds the probes of model {first.name!r} ({first.model_id}); this "
                         f"network is {identity.model_id}: pass --model NAME to add it as another model "
                         "(its tables go to activations/NAME.<layer>)")
    if name in by_name:
        record = by_name[name]
        if not same_network(record, identity):
            raise InputError(f"--model {name}: {lake.path} registers {name!r} as {record.model_id}, but this network is "
                             f"{identity.model_id}; pick another name for it")
        return ModelPlace(record, first=record is first, new_records=tuple(new))
    if same:
        raise InputError(f"--model {name}: this network ({identity.model_id}) is registered as {same[0].name!r} in "
                         f"{lake.path}; pass --model {same[0].name}")
    record = model_record(identity, name, source)
    return ModelPlace(record, first=False, new_records=(*new, record))


def registered_name(lake: Lake, model_id: str) -> str | None:
    """The registry name of the network `model_id` names (None when the lake registers no such model)."""
    return next((record.name for record in lake.models() if record.model_id == model_id), None)


def model_table_layer(lake: Lake, model_id: str, block: str) -> str:
    """The table layer of generator block `block` for the network `model_id` names: the block itself for the
    lake's first model (or in a lake without a registry), ``<name>.<block>`` for another registered model."""
    known = lake.models()
    for index, record in enumerate(known):
        if record.model_id == model_id:
            return block if index == 0 else model_layer(record.name, block)
    return block
