"""The DMD2 Visualizer lake: a Zarr v3 hierarchy with xarray labels.

Readers: `open_lake(path)` or plain `xr.open_zarr(path, group="samples")`.
Writers: `LakeWriter.open(path, Provenance(...))` (see lake.writer for the protocol).
"""
from .classes import ClassTable, imagenet_classes
from .errors import LakeError, LakeLockedError, NotALakeError, SchemaVersionError
from .provenance import InputFile, Provenance, describe_file
from .reader import Lake, open_lake
from .schema import SAMPLES, SCHEMA_VERSION, ColumnSpec, TableSpec
from .writer import LakeWriter, Table

__all__ = [
    "ClassTable",
    "ColumnSpec",
    "InputFile",
    "Lake",
    "LakeError",
    "LakeLockedError",
    "LakeWriter",
    "NotALakeError",
    "Provenance",
    "SAMPLES",
    "SCHEMA_VERSION",
    "SchemaVersionError",
    "Table",
    "TableSpec",
    "describe_file",
    "imagenet_classes",
    "open_lake",
]
