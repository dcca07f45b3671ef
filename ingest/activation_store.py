"""Opening `generation/<layer>` and `activations/<layer>` in a writer session, refusing mixed sources.

Their layouts (columns, chunking: `mean` one sigma wide) are `lake.layout.generation_spec`
and `lake.layout.activations_spec`. A group belongs to one model and (for probes) one
noise seed, recorded in its attributes and checked on every reopen, so activations of
different networks are never mixed in one array.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lake import LakeWriter, Table
from lake.layout import (
    DENOISER_PROBE,
    FLOAT_CODEC,
    GENERATION_PROBE,
    LayerShape,
    activations_group,
    activations_spec,
    generation_group,
    generation_spec,
    rows_per_chunk,
)

from .errors import InputError

# Re-exported: these lived here before the lake's layout had one home.
__all__ = [
    "DENOISER_PROBE",
    "FLOAT_CODEC",
    "GENERATION_PROBE",
    "ActivationTable",
    "LayerShape",
    "activations_spec",
    "check_identity",
    "generation_spec",
    "open_activation_table",
    "open_generation_table",
    "rows_per_chunk",
]


def check_identity(path: str, found: dict[str, Any], wanted: dict[str, Any], hint: str) -> None:
    """Refuse to add rows to a group made by another model or with other parameters (one-line error)."""
    for key, value in wanted.items():
        if key in found and found[key] != value:
            raise InputError(f"{path} was computed with {key}={found[key]!r}, this run has {key}={value!r}; {hint}")


def open_generation_table(writer: LakeWriter, layer: str, shape: LayerShape, attrs: dict[str, Any]) -> Table:
    """Open (creating if needed) `generation/<layer>`; refuses one made by another model."""
    path = generation_group(layer)
    found = writer.attrs(path)
    if found is not None:
        check_identity(path, found, {"model_id": attrs["model_id"]},
                       "a lake holds generation activations of one model; use another lake")
    table = writer.table(generation_spec(layer, shape, attrs))
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
    path = activations_group(layer)
    wanted = [float(np.float32(s)) for s in sigmas]
    found = writer.attrs(path)
    if found is not None:
        check_identity(path, found, {"model_id": attrs["model_id"], "noise_seed": attrs["noise_seed"]},
                       "use the same model and --noise-seed, or another lake")
        if bool(found.get("keep_spatial")) != keep_spatial:
            was = "with" if found.get("keep_spatial") else "without"
            raise InputError(f"{path} was computed {was} --keep-spatial; run again {was} it, or use another lake")
    table = writer.table(activations_spec(layer, shape, wanted, keep_spatial, attrs))
    _check_channels(path, table, shape)
    axis = [float(v) for v in np.asarray(table.column("sigma")[:], dtype=np.float32)]
    missing = [s for s in wanted if s not in axis]
    if missing:
        table.extend_axis("sigma", missing)
        axis += missing
    return ActivationTable(table, axis)


def _check_channels(path: str, table: Table, shape: LayerShape) -> None:
    channels = table.column("channel").shape[0]
    if channels != shape.channels:
        raise InputError(f"{path} holds {channels} channels but this network's {path.rsplit('/', 1)[1]} has "
                         f"{shape.channels}; use the same --preset, or another lake")
