"""Reading a lake: only committed data, never a writer's work in progress."""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .layout import (
    ACTIVATIONS_GROUP,
    GENERATION_GROUP,
    LINEAGE_GROUP,
    MODEL_COLUMNS,
    MODELS_GROUP,
    PROVENANCE_GROUP,
    RECONSTRUCTIONS_GROUP,
    SAMPLES_GROUP,
    T2I_GROUP,
    RATINGS_GROUP,
    TRAJECTORIES_GROUP,
    AnalysisKey,
    ModelRecord,
    activations_group,
    analysis_group,
    analysis_prefix,
    child_name,
    format_sigma,
    joint_embedding_group,
    model_record,
    t2i_prompts_group,
    t2i_samples_group,
    trajectory_group,
    trajectory_layer_group,
)
from .store import check_lake, committed_nodes, lake_path



@dataclass(frozen=True)
class Lake:
    """A read-only view of a lake at its last commit."""

    path: Path

    @cached_property
    def _nodes(self) -> dict[str, dict[str, Any]]:
        return committed_nodes(check_lake(self.path))

    @cached_property
    def root(self) -> Any:
        import zarr

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return zarr.open_group(str(self.path), mode="r", use_consolidated=True)

    def has(self, group: str) -> bool:
        return group in self._nodes

    def groups(self, prefix: str = "") -> list[str]:
        """Committed group paths below `prefix`, e.g. groups('activations')."""
        return sorted(
            rel
            for rel, meta in self._nodes.items()
            if meta.get("node_type") == "group" and rel.startswith(prefix.rstrip("/") + "/" if prefix else "")
        )

    def dataset(self, group: str, chunks: Any = None) -> Any:
        """The group as a lazy xarray Dataset (what `xr.open_zarr(lake, group=...)` gives)."""
        import xarray as xr

        if not self.has(group):
            raise KeyError(f"{self.path}: no group {group!r} in this lake")
        kwargs = {} if chunks is None else {"chunks": chunks}
        return xr.open_zarr(str(self.path), group=group, consolidated=True, **kwargs)

    @property
    def num_samples(self) -> int:
        if not self.has(SAMPLES_GROUP):
            return 0
        return int(self._nodes[f"{SAMPLES_GROUP}/sample_id"]["shape"][0])

    def samples(self) -> Any:
        """The samples table as a Dataset (dimension `sample`; `image` plus label coordinates)."""
        return self.dataset(SAMPLES_GROUP)

    def attrs(self, group: str) -> dict[str, Any]:
        """The committed attributes of a group or array (empty when there is none)."""
        return dict(self._nodes.get(group, {}).get("attributes", {}))

    def shape(self, group: str, name: str) -> tuple[int, ...] | None:
        """The committed shape of array `name` of `group` (None when there is none)."""
        meta = self._nodes.get(f"{group}/{name}")
        return None if meta is None or meta.get("node_type") != "array" else tuple(meta["shape"])

    def column(self, group: str, name: str, rows: Any = None, cols: Any = None, *, native: bool = False) -> np.ndarray:
        """A committed column, whole or at `rows` (a slice, or row numbers) and inner `cols` (a slice).

        Read whole, it suits id/label columns, not images; strings come back as objects,
        or, with `native`, in the stored dtype (zarr's StringDType: no per-string Python
        objects, which is what hashing or comparing 1.28M ids at interactive speed needs).
        """
        array = self.root[f"{group}/{name}"]
        inner = () if cols is None else (cols,)
        if rows is None or isinstance(rows, slice):
            values = array[(rows if rows is not None else slice(None), *inner)]
        else:
            values = array.get_orthogonal_selection((np.asarray(rows, dtype=np.int64), *inner))
        values = np.asarray(values)
        return values.astype(object) if values.dtype.kind in "OTU" and not native else values

    def arrays(self, group: str) -> list[ArrayInfo]:
        """The committed arrays directly in `group`, sorted by name (empty when there is no group)."""
        if not self.has(group):
            return []
        return sorted((_array_info(name, array) for name, array in self.root[group].arrays()), key=lambda a: a.name)

    def array_info(self, group: str, name: str) -> ArrayInfo | None:
        """Name, shape, dtype, dimension names and chunks of array `name` of `group` (None when absent)."""
        if self.shape(group, name) is None:
            return None
        return _array_info(name, self.root[f"{group}/{name}"])

    def children(self, parent: str) -> list[str]:
        """Names of the committed groups directly below `parent` (e.g. the layers of activations)."""
        return [name for group in self.groups(parent) if (name := child_name(group, parent)) is not None]

    # --- typed readers: the layout's tables by what they are, not by path -------------

    def activation_layers(self) -> list[str]:
        """Layers with an activation table (``activations/<layer>``), sorted."""
        return self.children(ACTIVATIONS_GROUP)

    def generation_layers(self) -> list[str]:
        """Layers with a generation-pass table (``generation/<layer>``), sorted."""
        return self.children(GENERATION_GROUP)

    def activation_sigmas(self, layer: str) -> list[float]:
        """The noise levels on the sigma axis of ``activations/<layer>``, in storage order."""
        return [float(v) for v in np.asarray(self.column(activations_group(layer), "sigma"), dtype=np.float32)]

    def activations(self, layer: str, sigma: float | None = None, chunks: Any = None) -> Any:
        """``activations/<layer>`` as a lazy Dataset; with `sigma`, that one slice (``mean`` is (sample, channel)).

        KeyError when the layer or the sigma is not stored.
        """
        ds = self.dataset(activations_group(layer), chunks)
        if sigma is None:
            return ds
        index = sigma_position(self.activation_sigmas(layer), sigma)
        if index is None:
            raise KeyError(f"{self.path}: {activations_group(layer)} has no sigma {float(np.float32(sigma)):g}")
        return ds.isel(sigma=index)

    # --- the noise axis ------------------------------------------------------------------

    def schedules(self) -> list[str]:
        """Schedule ids with a trajectories group (``trajectories/<schedule>``), sorted."""
        return self.children(TRAJECTORIES_GROUP)

    def schedule_sigmas(self, schedule: str) -> list[float]:
        """The input sigma of each step of `schedule`, in step order (decreasing)."""
        return [float(v) for v in np.asarray(self.column(trajectory_group(schedule), "sigma"), dtype=np.float32)]

    def trajectory_layers(self, schedule: str) -> list[str]:
        """Layers whose per-step generation means are stored for `schedule`, sorted."""
        return self.children(trajectory_group(schedule))

    def trajectory(self, schedule: str, layer: str | None = None, chunks: Any = None) -> Any:
        """``trajectories/<schedule>`` (x0_hat per step) or, with `layer`, its per-step means, as a lazy Dataset."""
        group = trajectory_group(schedule) if layer is None else trajectory_layer_group(schedule, layer)
        return self.dataset(group, chunks)

    def reconstructions(self, chunks: Any = None) -> Any:
        """``reconstructions``: per probed sample and sigma, the noisy input and x0_hat (KeyError when absent)."""
        return self.dataset(RECONSTRUCTIONS_GROUP, chunks)

    def joint_embedding_layers(self) -> list[str]:
        """Layers with a joint (all-sigma) embedding (``analysis/trajectory/<layer>``), sorted."""
        return self.children(joint_embedding_group("").rstrip("/"))

    def joint_embedding(self, layer: str, schedule: str | None = None, chunks: Any = None) -> Any:
        """``analysis/trajectory/<layer>`` (embedding (sample, sigma, axis) + per-sigma scores), or the
        steps of `schedule` placed in it; KeyError when absent."""
        return self.dataset(joint_embedding_group(layer, schedule), chunks)

    def lineage(self, chunks: Any = None) -> Any:
        """``lineage``: how each edited sample was made and from which parents (KeyError when absent)."""
        return self.dataset(LINEAGE_GROUP, chunks)

    def ratings(self, chunks: Any = None) -> Any:
        """``ratings``: A/B judgements of two models' images (`lake.ratings`; KeyError when absent)."""
        return self.dataset(RATINGS_GROUP, chunks)

    # --- the model registry ----------------------------------------------------------------

    def models(self) -> list[ModelRecord]:
        """Every registered model, in registration order (``models()[0]`` is the lake's first); [] for a lake
        made before the registry (no ``models`` group)."""
        if not self.has(MODELS_GROUP):
            return []
        columns = {name: self.column(MODELS_GROUP, name) for name in MODEL_COLUMNS}
        count = len(columns["name"])
        return [model_record({name: values[row] for name, values in columns.items()}) for row in range(count)]

    def model(self, name: str) -> ModelRecord | None:
        """The model registered as `name`, None when there is none."""
        return next((record for record in self.models() if record.name == name), None)

    # --- text-to-image models --------------------------------------------------------------

    def t2i_models(self) -> list[str]:
        """Names of the text-to-image models with samples in the lake (``t2i/<name>``), sorted."""
        return [name for name in self.children(T2I_GROUP) if self.has(t2i_samples_group(name))]

    def t2i_model(self, name: str) -> dict[str, Any]:
        """The model identity of `name` (family, base, UNet/LoRA hashes, timesteps, size): its samples table's attributes."""
        return self.attrs(t2i_samples_group(name))

    def t2i_samples(self, name: str, chunks: Any = None) -> Any:
        """``t2i/<name>/samples`` (prompt coordinates, native images, step previews) as a lazy Dataset."""
        return self.dataset(t2i_samples_group(name), chunks)

    def t2i_prompts(self, name: str, chunks: Any = None) -> Any:
        """``t2i/<name>/prompts`` (prompt text and pooled text embedding per prompt) as a lazy Dataset."""
        return self.dataset(t2i_prompts_group(name), chunks)

    def result(self, kind: str, key: AnalysisKey | str, name: str | None = None, chunks: Any = None) -> Any:
        """The stored result ``analysis/<kind>/<key>[/<name>]`` as a lazy Dataset (KeyError when absent)."""
        return self.dataset(analysis_group(kind, key, name), chunks)

    def result_attrs(self, kind: str, key: AnalysisKey | str, name: str | None = None) -> dict[str, Any]:
        """The attributes of a stored result (empty when absent)."""
        return self.attrs(analysis_group(kind, key, name))

    def results(self, kind: str) -> list[str]:
        """Every committed group below ``analysis/<kind>`` (embeddings: their key folders too)."""
        return self.groups(analysis_prefix(kind))

    def sample_ids(self) -> np.ndarray:
        return self.column(SAMPLES_GROUP, "sample_id") if self.num_samples else np.array([], dtype=object)

    def images(self, rows: np.ndarray | list[int] | slice) -> np.ndarray:
        """Images (N, 64, 64, 3) uint8 at the given rows of the samples table."""
        if not isinstance(rows, slice) and np.asarray(rows).size == 0:
            shape = self.shape(SAMPLES_GROUP, "image") or (0, 64, 64, 3)
            return np.zeros((0, *shape[1:]), dtype=np.uint8)
        return self.column(SAMPLES_GROUP, "image", rows)

    def provenance(self) -> list[dict[str, Any]]:
        """Every job's provenance record, oldest first."""
        records = [
            dict(meta.get("attributes", {}))
            for rel, meta in self._nodes.items()
            if rel.startswith(PROVENANCE_GROUP + "/") and rel.count("/") == 1
        ]
        return sorted(records, key=lambda r: (r.get("started", ""), r.get("run_id", "")))


@dataclass(frozen=True)
class ArrayInfo:
    """What a reader needs to know of a stored array before reading it (no data is read)."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    dims: tuple[str, ...]  # dimension names; () when the array has none
    chunks: tuple[int, ...]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def per_sample(self) -> bool:
        """One value per row of a table: 1-D along ``sample`` (or along an unnamed dimension)."""
        return self.ndim == 1 and (not self.dims or self.dims[0] == "sample")


def _array_info(name: str, array: Any) -> ArrayInfo:
    return ArrayInfo(
        name=name,
        shape=tuple(int(n) for n in array.shape),
        dtype=array.dtype,
        dims=tuple(array.metadata.dimension_names or ()),
        chunks=tuple(int(n) for n in array.chunks),
    )


def sigma_position(sigmas: list[float], sigma: float) -> int | None:
    """Position of `sigma` among stored float32 sigmas (None when absent).

    A sigma typed as keys print it (`format_sigma`, 6 significant digits) finds its stored
    value too: text-to-image steps' sigmas (14.614641...) are not round numbers.
    """
    target = np.float32(sigma)
    for i, s in enumerate(sigmas):
        if np.float32(s) == target or np.isclose(np.float32(s), target, rtol=1e-6, atol=0):
            return i
    printed = format_sigma(sigma)
    matches = [i for i, s in enumerate(sigmas) if format_sigma(s) == printed]
    return matches[0] if len(matches) == 1 else None


def open_lake(path: str | os.PathLike[str]) -> Lake:
    """Open a lake for reading. Raises NotALakeError / SchemaVersionError with a one-line message."""
    lake = Lake(lake_path(path))
    check_lake(lake.path)
    return lake
