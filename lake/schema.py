"""The lake's schema vocabulary: columns, tables, dtypes, chunking and codecs.

Where each table lives and which columns it has is `lake.layout`, written in these
terms. A *table* is a Zarr group whose arrays share a leading row dimension (``sample``
for the samples table). Columns flagged ``coord`` become xarray coordinates through the CF
``coordinates`` attribute, so plain ``xr.open_zarr(lake, group=...)`` labels them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SCHEMA_VERSION = 1
SCHEMA_ATTR = "dmd2viz_schema_version"


# Readable names for the generator blocks the demo and docs talk about. `activations/<layer>`
# groups always use the canonical block name; every CLI accepts these aliases too. They
# live here, in the torch-free lake package, so that models/ and analysis/ share one table.
LAYER_ALIASES: dict[str, str] = {
    "bottleneck": "enc.8x8_block2",  # deepest encoder output
    "mid": "dec.8x8_in0",  # first decoder block, with attention at 8x8
}

# The text-to-image UNets' capture sites that interpretability work on SDXL uses, by family,
# as alias -> diffusers module name (any module path of the UNet is valid besides these).
# Here for the same reason: the lake, analysis and explorer read them without torch.
T2I_SITE_ALIASES: dict[str, dict[str, str]] = {
    "sdxl": {
        "down2.attn1": "down_blocks.2.attentions.1",
        "mid": "mid_block.attentions.0",
        "up0.attn0": "up_blocks.0.attentions.0",
        "up0.attn1": "up_blocks.0.attentions.1",
    },
    # SD v1.5's UNet has attention in down blocks 0-2 and up blocks 1-3 (its lowest
    # resolution blocks, down 3 and up 0, have none): the same depths, one block over.
    "sd15": {
        "down2.attn1": "down_blocks.2.attentions.1",
        "mid": "mid_block.attentions.0",
        "up1.attn0": "up_blocks.1.attentions.0",
        "up1.attn1": "up_blocks.1.attentions.1",
    },
}

# 256 images (3 MiB raw) per chunk: large enough that appends and full scans are
# dominated by codec throughput, small enough that fetching one thumbnail decodes
# only 3 MiB. See docs/lake.md "Chunking" for the measurement.
IMAGES_PER_CHUNK = 256
# Blosc-LZ4 without shuffle: photographs compress only 10-25% whatever the codec, and
# LZ4 encodes 2-3x faster than zstd level 1 (benchmarks/bench_image_codec.py; docs/lake.md
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
    # Chunk shape of the inner dimensions (None: each chunk holds them whole). A sigma or
    # step axis chunked one wide lets that axis grow by adding chunks, never rewriting them.
    inner_chunks: tuple[int, ...] | None = None
    codec: dict[str, Any] | None = None
    coord: bool = True
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def chunks(self) -> tuple[int, ...]:
        """The array's chunk shape: `rows_per_chunk` rows by `inner_chunks` (or the whole inner shape)."""
        return (self.rows_per_chunk, *(self.inner_shape if self.inner_chunks is None else self.inner_chunks))

    def fill_value(self) -> Any:
        if self.dtype == STRING:
            return ""
        if self.dtype == "bool":
            return False
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
