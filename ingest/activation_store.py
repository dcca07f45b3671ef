"""Layouts of `generation/<layer>` and `activations/<layer>` (README), and opening them in a writer session.

Both are lake tables keyed by `sample_id`. A group belongs to one model and (for
probes) one noise seed, recorded in its attributes and checked on every reopen, so
activations of different networks are never mixed in one array.

Chunking: `activations/<layer>/mean` is chunked one sigma wide, because readers take
one (layer, sigma) slice at a time (the analysis keys `<layer>@sigma<s>`) and adding a
sigma later then only adds chunks, never rewrites them. ColumnSpec chunks the inner
dimensions whole, so such columns are created here with their own chunk shape before
`writer.table` opens them (it leaves existing arrays alone).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lake import ColumnSpec, LakeWriter, Table, TableSpec
from lake.schema import STRING

from .errors import InputError

GENERATION_GROUP = "generation"
ACTIVATIONS_GROUP = "activations"

GENERATION_PROBE = "generation pass: D(80 * noise, sigma=80, onehot(class)), noise from (seed, index)"
DENOISER_PROBE = ("denoiser probe: D(x0 + sigma * eps, sigma, onehot(class)), x0 = image / 127.5 - 1, "
                  "eps ~ N(0, I) from (noise_seed, sample_id), the same eps at every sigma")

# Zstd level 1 as for images: float activations compress little, so speed wins.
FLOAT_CODEC: dict[str, Any] = {"name": "zstd", "configuration": {"level": 1, "checksum": False}}
TARGET_CHUNK_BYTES = 4 << 20


def rows_per_chunk(row_bytes: int, low: int = 16, high: int = 16384) -> int:
    """Rows per chunk so that a chunk holds about 4 MiB (a power of two within [low, high])."""
    rows = max(1, TARGET_CHUNK_BYTES // max(1, row_bytes))
    return int(min(high, max(low, 1 << (rows.bit_length() - 1))))


@dataclass(frozen=True)
class LayerShape:
    """A block's output: channels, height, width."""

    channels: int
    height: int
    width: int


def generation_spec(layer: str, shape: LayerShape, attrs: dict[str, Any]) -> TableSpec:
    """`generation/<layer>`: per generated sample, the spatial mean of each channel of the block output."""
    return TableSpec(
        path=f"{GENERATION_GROUP}/{layer}",
        row_dim="sample",
        columns=(
            ColumnSpec("mean", "float32", (shape.channels,), ("channel",), rows_per_chunk(shape.channels * 4),
                       codec=FLOAT_CODEC, coord=False,
                       attrs={"description": f"spatial mean per channel of {layer} in the generation pass"}),
            ColumnSpec("sample_id", STRING, attrs={"description": "joins with samples/sample_id"}),
            ColumnSpec("class_id", "int16", attrs={"description": "class the sample was generated for"}),
        ),
        fixed_coords={"channel": np.arange(shape.channels, dtype=np.int32)},
        attrs={"layer": layer, "probe": GENERATION_PROBE, "sigma": 80.0, **attrs},
    )


def activations_spec(layer: str, shape: LayerShape, sigmas: Sequence[float], keep_spatial: bool,
                     attrs: dict[str, Any]) -> TableSpec:
    """`activations/<layer>`: per probed sample and sigma, channel means (and optionally full maps)."""
    s, c = len(sigmas), shape.channels
    columns = [
        ColumnSpec("mean", "float32", (s, c), ("sigma", "channel"), rows_per_chunk(c * 4), codec=FLOAT_CODEC,
                   coord=False, attrs={"description": f"spatial mean per channel of {layer}; NaN where not probed"}),
        ColumnSpec("probed", "bool", (s,), ("sigma",), coord=False,
                   attrs={"description": "True where (sample, sigma) has been computed"}),
    ]
    if keep_spatial:
        columns.append(ColumnSpec(
            "spatial", "float16", (s, c, shape.height, shape.width), ("sigma", "channel", "y", "x"),
            rows_per_chunk(c * shape.height * shape.width * 2, low=1), codec=FLOAT_CODEC, coord=False,
            attrs={"description": f"full output maps of {layer}; NaN where not probed"}))
    columns += [
        ColumnSpec("sample_id", STRING, attrs={"description": "joins with samples/sample_id"}),
        ColumnSpec("source", STRING, attrs={"description": "'real' or 'generated' (copied from samples)"}),
        ColumnSpec("class_id", "int16", attrs={"description": "the class the probe was conditioned on"}),
    ]
    return TableSpec(
        path=f"{ACTIVATIONS_GROUP}/{layer}",
        row_dim="sample",
        columns=tuple(columns),
        fixed_coords={"sigma": np.asarray(sigmas, dtype=np.float32), "channel": np.arange(c, dtype=np.int32)},
        attrs={"layer": layer, "probe": DENOISER_PROBE, "keep_spatial": keep_spatial, **attrs},
    )


# Columns whose sigma axis is chunked one wide (see module docstring).
_SIGMA_CHUNKED = ("mean", "probed", "spatial")


def _create_sigma_chunked(group: Any, spec: TableSpec) -> None:
    """Create the sigma-indexed columns of an activations table, chunked (rows, 1, ...)."""
    existing = set(group.array_keys())
    coords = " ".join(spec.coord_names)
    for column in spec.columns:
        if column.name not in _SIGMA_CHUNKED or column.name in existing:
            continue
        group.create_array(
            column.name,
            shape=(0, *column.inner_shape),
            chunks=(column.rows_per_chunk, 1, *column.inner_shape[1:]),
            dtype=np.dtype(column.dtype),
            compressors=[column.codec] if column.codec else "auto",
            fill_value=column.fill_value() if column.dtype != "bool" else False,
            dimension_names=(spec.row_dim, *column.inner_dims),
            attributes={**column.attrs, "coordinates": coords},
        )


def existing_attrs(writer: LakeWriter, path: str) -> dict[str, Any] | None:
    """Attributes of a group in the live session, or None when it does not exist yet."""
    import zarr

    try:
        node = writer.group(path.rsplit("/", 1)[0])[path.rsplit("/", 1)[1]]
    except KeyError:
        return None
    return dict(node.attrs) if isinstance(node, zarr.Group) else None


def check_identity(path: str, found: dict[str, Any], wanted: dict[str, Any], hint: str) -> None:
    """Refuse to add rows to a group made by another model or with other parameters (one-line error)."""
    for key, value in wanted.items():
        if key in found and found[key] != value:
            raise InputError(f"{path} was computed with {key}={found[key]!r}, this run has {key}={value!r}; {hint}")


def open_generation_table(writer: LakeWriter, layer: str, shape: LayerShape, attrs: dict[str, Any]) -> Table:
    """Open (creating if needed) `generation/<layer>`; refuses one made by another model."""
    path = f"{GENERATION_GROUP}/{layer}"
    found = existing_attrs(writer, path)
    if found is not None:
        check_identity(path, found, {"model_id": attrs["model_id"]},
                       "a lake holds generation activations of one model; use another lake")
    spec = generation_spec(layer, shape, attrs)
    table = writer.table(spec)
    _check_channels(path, table, shape)
    return table


@dataclass
class ActivationTable:
    """An open `activations/<layer>` table and where each of its sigmas sits on the sigma axis."""

    table: Table
    sigmas: list[float]  # the sigma axis, in storage order

    def sigma_index(self, sigma: float) -> int:
        return self.sigmas.index(float(np.float32(sigma)))

    @property
    def keys(self) -> np.ndarray:
        return self.table.keys()

    def probed(self) -> np.ndarray:
        """(rows, sigmas) bool: which pairs are computed (a few bytes per row)."""
        return np.asarray(self.table.column("probed")[:], dtype=bool)


def open_activation_table(writer: LakeWriter, layer: str, shape: LayerShape, sigmas: Sequence[float],
                          keep_spatial: bool, attrs: dict[str, Any]) -> ActivationTable:
    """Open (creating if needed) `activations/<layer>`, with every requested sigma on its sigma axis.

    Sigmas not yet in an existing group are appended to the axis (their values NaN,
    `probed` False) so that a later run can fill them. A group computed with another
    model, noise seed or spatial setting is refused with a one-line error.
    """
    path = f"{ACTIVATIONS_GROUP}/{layer}"
    wanted = [float(np.float32(s)) for s in sigmas]
    found = existing_attrs(writer, path)
    if found is not None:
        check_identity(path, found, {"model_id": attrs["model_id"], "noise_seed": attrs["noise_seed"]},
                       "use the same model and --noise-seed, or another lake")
        if bool(found.get("keep_spatial")) != keep_spatial:
            was = "with" if found.get("keep_spatial") else "without"
            raise InputError(f"{path} was computed {was} --keep-spatial; run again {was} it, or use another lake")
    group = writer.group(path)
    spec = activations_spec(layer, shape, wanted, keep_spatial, attrs)
    _create_sigma_chunked(group, spec)
    table = writer.table(spec)
    _check_channels(path, table, shape)
    axis = [float(v) for v in np.asarray(table.column("sigma")[:], dtype=np.float32)]
    missing = [s for s in wanted if s not in axis]
    if missing:
        _extend_sigma_axis(table, axis, missing)
        axis += missing
    return ActivationTable(table, axis)


def _extend_sigma_axis(table: Table, axis: list[float], new: list[float]) -> None:
    """Append sigmas to the axis; the new cells read as not probed (NaN, False) until filled."""
    total = len(axis) + len(new)
    coord = table.column("sigma")
    coord.resize((total,))
    coord[len(axis):] = np.asarray(new, dtype=np.float32)
    for name in _SIGMA_CHUNKED:
        if name in table.group.array_keys():
            array = table.column(name)
            array.resize((array.shape[0], total, *array.shape[2:]))


def _check_channels(path: str, table: Table, shape: LayerShape) -> None:
    channels = table.column("channel").shape[0]
    if channels != shape.channels:
        raise InputError(f"{path} holds {channels} channels but this network's {path.rsplit('/', 1)[1]} has "
                         f"{shape.channels}; use the same --preset, or another lake")
