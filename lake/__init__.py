"""The DMD2 Visualizer lake: a Zarr v3 hierarchy with xarray labels.

Layout (every group path, the analysis key, every table spec): `lake.layout`.
Readers: `open_lake(path)` (typed: `lake.activations(layer, sigma)`, `lake.result(kind, key)`)
or plain `xr.open_zarr(path, group="samples")`.
Writers: `LakeWriter.open(path, Provenance(...))` (see lake.writer for the protocol);
`register_model(writer, ModelRecord(...))` names a model in the ``models`` table, `lake.models()` lists them;
`append_rating(path, Rating(...))` keeps one A/B judgement, `read_ratings(lake)` reads them back.
"""
from .classes import ClassTable, imagenet_classes
from .errors import LakeError, LakeLockedError, ModelRegistryError, NotALakeError, SchemaVersionError
from .provenance import InputFile, Provenance, describe_file
from .layout import SAMPLES, AnalysisKey, ModelRecord, parse_key
from .model_registry import register_model
from .ratings import Rating, append_rating, read_ratings
from .reader import Lake, open_lake
from .schema import SCHEMA_VERSION, ColumnSpec, TableSpec
from .writer import LakeWriter, StagedGroup, Table

__all__ = [
    "AnalysisKey",
    "ClassTable",
    "ColumnSpec",
    "InputFile",
    "Lake",
    "LakeError",
    "LakeLockedError",
    "LakeWriter",
    "ModelRecord",
    "ModelRegistryError",
    "Rating",
    "NotALakeError",
    "Provenance",
    "SAMPLES",
    "SCHEMA_VERSION",
    "SchemaVersionError",
    "StagedGroup",
    "Table",
    "TableSpec",
    "append_rating",
    "describe_file",
    "imagenet_classes",
    "open_lake",
    "parse_key",
    "read_ratings",
    "register_model",
]
