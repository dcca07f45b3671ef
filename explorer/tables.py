"""Typed reads of the lake tables the explorer shows: the one explorer module that names their columns.

Each reader turns a committed group of the layout (`lake.layout`) into the arrays or typed
records the explorer uses, so the session and the pages ask for what a table holds (a
joint embedding, a text-to-image sample, a prompt map, clusters), never for a column by
name. Reads go through `lake.Lake.column` (bounded: whole id/label columns, or a few rows),
not xarray, which would cost a Dataset per read at interactive speed. No Streamlit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lake.layout import LINEAGE_GROUP, SAMPLES_GROUP, analysis_group, joint_embedding_group, t2i_samples_group

from .rows import factorize


def read_native(lake: Any, group: str, name: str) -> np.ndarray:
    """A whole column in its stored dtype (ids stay StringDType: hashing and comparing them is vectorised)."""
    return lake.column(group, name, native=True)


def has_column(lake: Any, group: str, name: str) -> bool:
    """Whether `group` has a committed array `name`."""
    return lake.shape(group, name) is not None


# --- any table of samples --------------------------------------------------------------------------
def table_ids(lake: Any, group: str) -> np.ndarray:
    """The `sample_id` column of a per-sample table (StringDType)."""
    return read_native(lake, group, "sample_id")


def table_length(lake: Any, group: str) -> int:
    """How many samples a per-sample table holds (0 when it has no `sample_id`)."""
    return int((lake.shape(group, "sample_id") or (0,))[0])


def table_sample_rows(lake: Any, group: str) -> np.ndarray | None:
    """A table's `sample_row` column (its rows in `samples`, int64), or None where it has none or not as integers."""
    info = lake.array_info(group, "sample_row")
    if info is None or info.dtype.kind not in "iu":  # written by the analysis package: no id join needed
        return None
    return read_native(lake, group, "sample_row").astype(np.int64, copy=False)


def points(lake: Any, group: str) -> np.ndarray:
    """The `embedding` coordinates of an embedding or placed table, float32."""
    return read_native(lake, group, "embedding").astype(np.float32, copy=False)


def label_column(lake: Any, group: str, name: str) -> np.ndarray | None:
    """A label column (class_id, source, split) of `group` in its stored dtype, or None where it has none."""
    return read_native(lake, group, name) if has_column(lake, group, name) else None


# --- samples ------------------------------------------------------------------------------------
def sample_sources(lake: Any, rows: np.ndarray) -> list[str]:
    """The `source` of the given `samples` rows."""
    rows = np.asarray(rows, dtype=np.int64)
    return [str(v) for v in np.asarray(lake.column(SAMPLES_GROUP, "source", rows), dtype=object).tolist()] if len(rows) else []


def sample_record(lake: Any, sample_row: int) -> dict[str, Any]:
    """Every scalar column of one `samples` row (provenance: origin, seed, model, split...)."""
    record: dict[str, Any] = {}
    row = slice(int(sample_row), int(sample_row) + 1)
    for array in lake.arrays(SAMPLES_GROUP):
        if array.ndim == 1:
            value = lake.column(SAMPLES_GROUP, array.name, row, native=True)[0]
            record[array.name] = value.item() if hasattr(value, "item") else str(value)
    return record


# --- lineage and placement ----------------------------------------------------------------------
def lineage_ids(lake: Any) -> np.ndarray | None:
    """The ids of ``lineage`` (None when the lake has no lineage table)."""
    return table_ids(lake, LINEAGE_GROUP) if lake.has(LINEAGE_GROUP) else None


def lineage_at(lake: Any, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(operation, comma-separated parent_ids) of the given ``lineage`` rows, as objects."""
    operation = np.asarray(lake.column(LINEAGE_GROUP, "operation", rows), dtype=object)
    return operation, np.asarray(lake.column(LINEAGE_GROUP, "parent_ids", rows), dtype=object)


@dataclass(frozen=True)
class PlacementNeighbours:
    """One placed sample's stored neighbours: the fitted samples it was placed by."""

    ids: np.ndarray  # (k,) StringDType
    distances: np.ndarray  # (k,) float32
    pca_rows: np.ndarray | None  # (k,) int64 rows of the key's PCA table (None when not stored)


def has_placement_neighbours(lake: Any, group: str) -> bool:
    """Whether a placed table stores its samples' neighbours (`neighbor_id` and `distance`)."""
    return has_column(lake, group, "neighbor_id") and has_column(lake, group, "distance")


def placement_neighbours(lake: Any, group: str, row: int, with_pca_rows: bool) -> PlacementNeighbours:
    """The stored neighbours of row `row` of placed table `group` (its `neighbor_row` too, where asked and stored)."""
    one = slice(row, row + 1)
    ids = lake.column(group, "neighbor_id", one, native=True)[0]
    distances = np.asarray(lake.column(group, "distance", one)[0], dtype=np.float32)
    pca_rows = None
    if with_pca_rows and has_column(lake, group, "neighbor_row"):
        pca_rows = np.asarray(lake.column(group, "neighbor_row", one)[0], dtype=np.int64)
    return PlacementNeighbours(ids, distances, pca_rows)


# --- clusters and prompt maps -------------------------------------------------------------------
def activation_clusters(lake: Any, key: str) -> np.ndarray | None:
    """The k-means `cluster` of each row of ``analysis/clusters/<key>`` (int64), or None without that table."""
    group = analysis_group("clusters", key)
    return np.asarray(lake.column(group, "cluster"), dtype=np.int64) if has_column(lake, group, "cluster") else None


def has_activation_clusters(lake: Any, key: str) -> bool:
    """Whether the lake has ``analysis/clusters/<key>`` (cheap: metadata only)."""
    return has_column(lake, analysis_group("clusters", key), "cluster")


def prompt_clusters(lake: Any, name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(prompt_id as objects, cluster int64) of ``analysis/prompts/<name>``, or None without it."""
    group = analysis_group("prompts", name)
    if not (has_column(lake, group, "cluster") and has_column(lake, group, "prompt_id")):
        return None
    return np.asarray(lake.column(group, "prompt_id"), dtype=object), np.asarray(lake.column(group, "cluster"), dtype=np.int64)


@dataclass(frozen=True)
class PromptMapTable:
    """``analysis/prompts/<name>``: per prompt its 2-D map coordinates, id, text and cluster."""

    coords: np.ndarray  # (p, d) float32
    prompt_id: np.ndarray  # (p,) object
    prompt: np.ndarray  # (p,) object (the ids where the table stores no text)
    cluster: np.ndarray  # (p,) int64
    attrs: dict[str, Any]


def has_prompt_map(lake: Any, name: str) -> bool:
    """Whether the lake has a prompt map (coordinates and clusters) for model `name`."""
    group = analysis_group("prompts", name)
    return has_column(lake, group, "embedding") and has_column(lake, group, "cluster")


def prompt_map(lake: Any, name: str) -> PromptMapTable:
    """Model `name`'s prompt map (`has_prompt_map` first)."""
    group = analysis_group("prompts", name)
    ids = np.asarray(lake.column(group, "prompt_id"), dtype=object)
    text = np.asarray(lake.column(group, "prompt"), dtype=object) if has_column(lake, group, "prompt") else ids
    return PromptMapTable(np.asarray(lake.column(group, "embedding"), dtype=np.float32), ids, text,
                          np.asarray(lake.column(group, "cluster"), dtype=np.int64), dict(lake.attrs(group)))  # fmt: skip


# --- text-to-image samples -----------------------------------------------------------------------
def t2i_ids(lake: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(sample_id, prompt_id) of every row of ``t2i/<name>/samples``, whole and in their stored dtype."""
    group = t2i_samples_group(name)
    return lake.column(group, "sample_id", native=True), lake.column(group, "prompt_id", native=True)


def t2i_prompt_text(lake: Any, name: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(prompt, negative prompt) at the given rows of ``t2i/<name>/samples``, as str objects ('' where none)."""
    group = t2i_samples_group(name)
    negative = _text(lake.column(group, "negative_prompt", rows)) if has_column(lake, group, "negative_prompt") else np.full(len(rows), "", object)
    return _text(lake.column(group, "prompt", rows)), negative


def _text(values: np.ndarray) -> np.ndarray:
    return np.array(["" if v is None else v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=object)


@dataclass(frozen=True)
class T2ISample:
    """One text-to-image sample as the details panel shows it (read for the selected sample only)."""

    model: str
    identity: dict[str, Any]  # t2i/<model>/samples attributes: family, base, unet, lora, their hashes, size...
    prompt: str
    negative_prompt: str
    prompt_id: str
    guidance: float
    seed: int
    index: int
    image: np.ndarray  # (H, W, 3) uint8, native size
    timesteps: tuple[int, ...]
    sigmas: tuple[float, ...]  # one per timestep where the attributes give them, else empty
    previews: np.ndarray | None  # (steps, h, w, 3) uint8 decoded x0 at each step; None when not stored


def read_t2i_sample(lake: Any, name: str, row: int) -> T2ISample:
    """Row `row` of ``t2i/<name>/samples``: its prompt coordinates, native image and step previews."""
    group = t2i_samples_group(name)
    one = slice(row, row + 1)

    def scalar(column: str, default: Any) -> Any:
        if not has_column(lake, group, column):
            return default
        value = lake.column(group, column, one)[0]
        return value.item() if hasattr(value, "item") else value

    attrs = dict(lake.attrs(group))
    timesteps = tuple(int(t) for t in (attrs.get("timesteps") or []))
    if not timesteps and has_column(lake, group, "timestep"):
        timesteps = tuple(int(t) for t in lake.column(group, "timestep"))
    sigmas = tuple(float(s) for s in (attrs.get("sigmas") or []))
    previews = lake.column(group, "x0", one)[0] if has_column(lake, group, "x0") else None
    return T2ISample(
        model=name,
        identity=attrs,
        prompt=str(scalar("prompt", "")),
        negative_prompt=str(scalar("negative_prompt", "") or ""),
        prompt_id=str(scalar("prompt_id", "")),
        guidance=float(scalar("guidance", float("nan"))),
        seed=int(scalar("seed", -1)),
        index=int(scalar("index", 0)),
        image=np.asarray(lake.column(group, "image", one)[0], dtype=np.uint8),
        timesteps=timesteps,
        sigmas=sigmas if len(sigmas) == len(timesteps) else (),
        previews=None if previews is None or len(previews) == 0 else np.asarray(previews, dtype=np.uint8),
    )


# --- the joint embedding across noise levels ------------------------------------------------------
@dataclass(frozen=True)
class JointEmbedding:
    """``analysis/trajectory/<layer>``: every probed sample at every sigma in one 2-D embedding."""

    layer: str
    sigmas: np.ndarray  # (s,) float64, the table's sigma order
    coords: np.ndarray  # (n, s, 2) float32, NaN where (sample, sigma) was not computed
    sample_id: np.ndarray  # (n,) StringDType
    class_id: np.ndarray  # (n,) int16
    source_code: np.ndarray
    sources: tuple[str, ...]
    split_code: np.ndarray
    splits: tuple[str, ...]


@dataclass(frozen=True)
class ScheduleSteps:
    """``analysis/trajectory/<layer>/<schedule>``: the steps of one schedule's samples in the same embedding."""

    schedule: str
    sigmas: np.ndarray  # (k,) the steps' input sigmas, decreasing
    coords: np.ndarray  # (m, k, 2) float32
    sample_id: np.ndarray  # (m,)


def load_joint(lake: Any, layer: str) -> JointEmbedding:
    """The joint embedding of `layer` in memory (2 axes; ids in their stored dtype)."""
    group = joint_embedding_group(layer)
    coords = np.asarray(lake.column(group, "embedding"), dtype=np.float32)[..., :2]
    n = len(coords)

    def text(name: str, fill: str) -> np.ndarray:
        if not has_column(lake, group, name):
            return np.full(n, fill, dtype=object)
        return lake.column(group, name, native=True)

    class_id = lake.column(group, "class_id").astype(np.int16) if has_column(lake, group, "class_id") else np.full(n, -1, np.int16)
    source_code, sources = factorize(text("source", "unknown"))
    split_code, splits = factorize(text("split", ""))
    sigmas = np.asarray(lake.column(group, "sigma"), dtype=np.float64)
    return JointEmbedding(layer, sigmas, coords, text("sample_id", ""), class_id, source_code, sources, split_code, splits)


def load_schedules(lake: Any, layer: str) -> dict[str, ScheduleSteps]:
    """Every schedule whose steps are placed in `layer`'s joint embedding."""
    found: dict[str, ScheduleSteps] = {}
    for schedule in lake.schedules():
        group = joint_embedding_group(layer, schedule)
        if not has_column(lake, group, "embedding"):
            continue
        found[schedule] = ScheduleSteps(
            schedule,
            np.asarray(lake.column(group, "sigma"), dtype=np.float64),
            np.asarray(lake.column(group, "embedding"), dtype=np.float32)[..., :2],
            lake.column(group, "sample_id", native=True),
        )
    return found
