"""The lake's schema: which groups exist, their columns, dtypes, chunking and codecs.

A *table* is a Zarr group whose arrays share a leading row dimension (``sample`` for
the samples table). Columns flagged ``coord`` become xarray coordinates through the CF
``coordinates`` attribute, so plain ``xr.open_zarr(lake, group=...)`` labels them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SCHEMA_VERSION = 1
SCHEMA_ATTR = "dmd2viz_schema_version"

SAMPLES_GROUP = "samples"
ACTIVATIONS_GROUP = "activations"
ANALYSIS_GROUP = "analysis"
PROVENANCE_GROUP = "provenance"

IMAGE_SIZE = 64

# Readable names for the generator blocks the demo and docs talk about. `activations/<layer>`
# groups always use the canonical block name; every CLI accepts these aliases too. They
# live here, in the torch-free lake package, so that models/ and analysis/ share one table.
LAYER_ALIASES: dict[str, str] = {
    "bottleneck": "enc.8x8_block2",  # deepest encoder output
    "mid": "dec.8x8_in0",  # first decoder block, with attention at 8x8
}

# 256 images (3 MiB raw) per chunk: large enough that appends and full scans are
# dominated by codec throughput, small enough that fetching one thumbnail decodes
# only 3 MiB. See README "Chunking" for the measurement.
IMAGES_PER_CHUNK = 256
# Blosc-LZ4 without shuffle: photographs compress only 10-25% whatever the codec, and
# LZ4 encodes 2-3x faster than zstd level 1 (benchmarks/bench_image_codec.py; README
# "Chunking"), which keeps ingest as fast as decompressing its input.
IMAGE_CODEC: dict[str, Any] = {
    "name": "blosc",
    "configuration": {"cname": "lz4", "clevel": 5, "shuffle": "noshuffle", "typesize": 1, "blocksize": 0},
}
# Label columns: 4096 rows per chunk. An append rewrites the partly filled last chunk
# (decode + encode of variable-length strings), so chunks a small multiple of the
# ingest batch keep that cost low while 1.28M rows stay at ~300 files per column.
ROWS_PER_COLUMN_CHUNK = 4096

STRING = "string"  # variable-length UTF-8


@dataclass(frozen=True)
class ColumnSpec:
    """One array of a table: dtype, shape after the row dimension, and storage."""

    name: str
    dtype: str  # numpy dtype name, or STRING for variable-length UTF-8
    inner_shape: tuple[int, ...] = ()
    inner_dims: tuple[str, ...] = ()
    rows_per_chunk: int = ROWS_PER_COLUMN_CHUNK
    codec: dict[str, Any] | None = None
    coord: bool = True
    attrs: dict[str, Any] = field(default_factory=dict)

    def fill_value(self) -> Any:
        if self.dtype == STRING:
            return ""
        if np.issubdtype(np.dtype(self.dtype), np.floating):
            return float("nan")
        return 0


@dataclass(frozen=True)
class TableSpec:
    """A group of row-aligned columns, plus optional fixed coordinate arrays (e.g. `channel`)."""

    path: str
    row_dim: str
    columns: tuple[ColumnSpec, ...]
    key_column: str = "sample_id"
    fixed_coords: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)

    def column(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def coord_names(self) -> list[str]:
        return [c.name for c in self.columns if c.coord] + list(self.fixed_coords)


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
        ColumnSpec("class_id", "int16", attrs={"description": "standard ImageNet-1k class id 0..999 (sorted wnids)"}),
        ColumnSpec("wnid", STRING),
        ColumnSpec("class_name", STRING),
        ColumnSpec("origin", STRING, attrs={"description": "NPZ file and row, JPEG path under its root, or generator"}),
        ColumnSpec("seed", "int64", attrs={"description": "generation seed; -1 for real images"}),
        ColumnSpec("model_id", STRING, attrs={"description": "generator identity for generated samples; '' for real"}),
    ),
)
