"""Registering a model in the lake's ``models`` table: once per name, never changed afterwards.

Every other table names its model by the registry key, so a row that changed under an
existing name would silently re-label stored probes: a different record is refused instead.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any

from .errors import ModelRegistryError
from .layout import MODEL_COLUMNS, ModelRecord, check_model_record, model_record, models_spec
from .writer import LakeWriter, Table

MODELS_DESCRIPTION = {"description": "one row per model whose probes the lake holds, in registration order"}


def register_model(writer: LakeWriter, record: ModelRecord) -> ModelRecord:
    """Write `record` as a row of ``models`` (committed with the session's next commit) and return it.

    A second call with an identical record is a no-op; a different record under a registered
    name, or an inconsistent record, raises `ModelRegistryError` (one line, naming the name and
    the field) before anything is written.
    """
    try:
        check_model_record(record)
    except ValueError as exc:
        raise ModelRegistryError(f"{writer.path}: {exc}") from None
    existing = _registered(writer).get(record.name)
    if existing is not None:
        if existing != record:
            raise ModelRegistryError(f"{writer.path}: model {record.name!r} is registered with a different "
                                     f"{_first_difference(existing, record)}; register it under another name")
        return existing
    writer.table(models_spec(MODELS_DESCRIPTION)).append(record.row())
    return record


def _registered(writer: LakeWriter) -> dict[str, ModelRecord]:
    """The records already in the live session, by name (empty when there is no ``models`` table yet)."""
    spec = models_spec(MODELS_DESCRIPTION)
    # Only look: opening the table would create the group for a record that may be refused.
    if writer.attrs(spec.path) is None:
        return {}
    table = writer.table(spec)
    columns = {name: _column(table, name) for name in MODEL_COLUMNS}
    rows = (model_record({name: values[row] for name, values in columns.items()}) for row in range(table.num_rows))
    return {record.name: record for record in rows}


def _column(table: Table, name: str) -> list[Any]:
    return list(table.column(name)[:])


def _first_difference(old: ModelRecord, new: ModelRecord) -> str:
    """``<field> (<old> there, <new> given)`` for the first field in which the records differ."""
    for field in fields(ModelRecord):
        before, after = getattr(old, field.name), getattr(new, field.name)
        if before != after:
            return f"{field.name} ({before!r} there, {after!r} given)"
    return "record"
