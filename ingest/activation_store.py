"""Opening `generation/<layer>`, `activations/<layer>` and the `trajectories/<schedule>` tables in a
writer session, refusing mixed sources.

Their layouts (columns, chunking: `mean` one sigma wide) are `lake.layout.generation_spec`,
`lake.layout.activations_spec`, `lake.layout.trajectory_spec` and
`lake.layout.trajectory_layer_spec`. A group belongs to one model, (for probes) one noise
seed and (for trajectories) one schedule, recorded in its attributes and checked on every
reopen, so activations of different networks or schedules are never mixed in one array.
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
    trajectory_group,
    trajectory_layer_group,
    trajectory_layer_spec,
    trajectory_spec,
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
    "open_trajectory_layer_table",
    "open_trajectory_table",
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


def open_trajectory_table(writer: LakeWriter, schedule: str, sigmas: Sequence[float], attrs: dict[str, Any]) -> Table:
    """Open (creating if needed) `trajectories/<schedule>` (every step's x0_hat); refuses another model or schedule."""
    path = trajectory_group(schedule)
    _check_trajectory(writer, path, sigmas, attrs)
    table = writer.table(trajectory_spec(schedule, sigmas, attrs))
    _check_sigma_axis(path, table, sigmas)
    return table


def open_trajectory_layer_table(writer: LakeWriter, schedule: str, layer: str, shape: LayerShape,
                                sigmas: Sequence[float], attrs: dict[str, Any]) -> Table:
    """Open (creating if needed) `trajectories/<schedule>/<layer>` (per-step channel means); refuses mixed sources."""
    path = trajectory_layer_group(schedule, layer)
    _check_trajectory(writer, path, sigmas, attrs)
    table = writer.table(trajectory_layer_spec(schedule, layer, shape, sigmas, attrs))
    _check_sigma_axis(path, table, sigmas)
    _check_channels(path, table, shape)
    return table


def _check_trajectory(writer: LakeWriter, path: str, sigmas: Sequence[float], attrs: dict[str, Any]) -> None:
    found = writer.attrs(path)
    if found is None:
        return
    check_identity(path, found, {"model_id": attrs["model_id"]},
                   "a lake holds the trajectories of one model per schedule; use another lake")
    if "sigmas" in found:  # the x0_hat group records its schedule; the layer groups carry it in `sigma`
        check_identity(path, found, {"sigmas": [float(np.float32(s)) for s in sigmas]},
                       "a trajectories group holds one schedule; use --sigmas exactly as before, or another lake")


def _check_sigma_axis(path: str, table: Table, sigmas: Sequence[float]) -> None:
    axis = [float(v) for v in np.asarray(table.column("sigma")[:], dtype=np.float32)]
    wanted = [float(np.float32(s)) for s in sigmas]
    if axis != wanted:
        raise InputError(f"{path} holds the steps at sigmas {axis}, this run's schedule is {wanted}; "
                         "use --sigmas exactly as before, or another lake")


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
