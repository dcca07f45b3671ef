"""The samples an edit starts from (`Parent`, from the lake and their ids), the checks on them and on
the flags that shape an edit, and the noise edits draw or take from their parents.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.generation import ONE_STEP, SIGMA_LIMIT
from ..errors import InputError
from ..options import comma_list

if TYPE_CHECKING:
    from lake import Lake

MAX_N = 64  # the most samples one edit job makes (the explorer offers up to this)
EDIT_STREAM = 3  # third SeedSequence word of edit noise, apart from class draws (1) and later steps (2)


@dataclass(frozen=True)
class Parent:
    """A sample an edit starts from, as the lake and its id describe it."""

    sample_id: str
    row: int  # in samples
    source: str  # "real" or "generated"
    class_id: int
    model_id: str  # samples/model_id: the generator, with ~<schedule> for multi-step samples ('' for real)
    seed: int  # the generation seed (-1 unless generated)
    index: int | None  # the index within its seed when made by `ingest generate`, else None

    @property
    def base_model(self) -> str:
        """The generator's weights without the schedule."""
        return base_model_of(self.model_id)

    @property
    def sigmas(self) -> tuple[float, ...]:
        """The schedule it was sampled on ((80,) for one step)."""
        return schedule_of(self.model_id)

    @property
    def from_generate(self) -> bool:
        """Whether its noise is known from its id alone (made by ``ingest generate``)."""
        return self.index is not None


def schedule_of(model_id: str) -> tuple[float, ...]:
    """The sampling schedule a samples/model_id names: ``<model>~<schedule id>``, or one step at 80."""
    from lake.layout import parse_model_id

    parts = parse_model_id(model_id) if model_id else None
    if parts is not None and parts.heun is not None:
        raise InputError(f"--from: samples of {model_id} come from EDM's Heun sampler, which edits do not replay; "
                         "start from a DMD2 sample or a real one")
    return parts.schedule if parts is not None else ONE_STEP


def base_model_of(model_id: str) -> str:
    """The generator's weights a samples/model_id names, without the schedule ('' for a real sample's '')."""
    from lake.layout import parse_model_id

    return parse_model_id(model_id).base if model_id else ""


def parse_ids(text: str | Sequence[str], flag: str = "--from") -> list[str]:
    """--from as a list of sample ids (comma-separated, order kept, duplicates dropped)."""
    ids: list[str] = []
    for token in comma_list(text):
        if token not in ids:
            ids.append(token)
    if not ids:
        raise InputError(f"{flag}: give at least one sample id")
    return ids


def load_parents(lake: Lake, ids: Sequence[str]) -> list[Parent]:
    """The samples `ids` name, in that order; InputError for an id the lake lacks."""
    from lake.layout import SAMPLES_GROUP, parse_generated_id

    if not lake.num_samples:
        raise InputError(f"{lake.path}: the lake has no samples")
    all_ids = lake.sample_ids()
    where = {sample_id: row for row, sample_id in enumerate(all_ids.tolist())}
    parents = []
    for sample_id in ids:
        if sample_id not in where:
            raise InputError(f"--from: no sample {sample_id!r} in {lake.path}")
        row = where[sample_id]
        generated = parse_generated_id(sample_id)
        model_id = str(lake.column(SAMPLES_GROUP, "model_id", [row])[0])
        source = str(lake.column(SAMPLES_GROUP, "source", [row])[0])
        parents.append(Parent(
            sample_id=sample_id, row=row, source=source,
            class_id=int(lake.column(SAMPLES_GROUP, "class_id", [row])[0]), model_id=model_id,
            seed=int(lake.column(SAMPLES_GROUP, "seed", [row])[0]),
            index=generated[2] if generated and source == "generated" and generated[0] == model_id else None))
    return parents


def need_generated(parent: Parent, operation: str, from_generate: bool = False) -> None:
    if parent.source != "generated":
        raise InputError(f"--from {parent.sample_id}: {operation} needs a generated sample, this one is {parent.source}")
    if from_generate and not parent.from_generate:
        raise InputError(f"--from {parent.sample_id}: {operation} needs a sample made by `ingest generate` "
                         "(gen/<model>/s<seed>/<index>), whose noise its id determines")


def need_count(n: int, low: int, flag: str = "--n") -> None:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not low <= n <= MAX_N:
        raise InputError(f"{flag} must be an integer in {low}..{MAX_N}, got {n}")


def parse_mask(text: str | None, height: int, width: int) -> np.ndarray | None:
    """--mask ('0'/'1' row-major over the layer's H x W map) as an (H, W) bool array; None or '' is everywhere."""
    if text is None or text == "":
        return None
    text = text.strip()
    if len(text) != height * width or set(text) - {"0", "1"}:
        bad = sorted(set(text) - {"0", "1"})
        problem = f"characters {''.join(bad)!r}" if bad else f"{len(text)} characters"
        raise InputError(f"--mask: expected {height * width} characters '0'/'1' (the layer's {height}x{width} map, "
                         f"row-major), got {problem}")
    mask = np.frombuffer(text.encode(), dtype=np.uint8).reshape(height, width) == ord("1")
    if not mask.any():
        raise InputError("--mask: selects no position (all '0'); leave it out to replace everywhere")
    return mask


def parse_channels(text: str | Sequence[int] | None, channels: int) -> list[int] | None:
    """--channels (comma-separated indices into the layer's channels) sorted, or None for all."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    chosen: set[int] = set()
    for token in comma_list(text):
        try:
            value = int(token)
        except ValueError:
            raise InputError(f"--channels: {token!r} is not an integer") from None
        if not 0 <= value < channels:
            raise InputError(f"--channels: {value} is out of range; the layer has channels 0..{channels - 1}")
        chosen.add(value)
    if not chosen:
        raise InputError("--channels: give at least one channel, or leave the flag out for all")
    return sorted(chosen)


def parse_sigma(value: float | str | None, flag: str = "--sigma") -> float:
    """A probe's noise level in (0, 80], float32-exact."""
    if value is None:
        raise InputError(f"{flag} is required here (the noise level to probe at, e.g. 10)")
    try:
        sigma = float(value)
    except ValueError:
        raise InputError(f"{flag}: {value!r} is not a number") from None
    if not math.isfinite(sigma) or not 0 < sigma <= SIGMA_LIMIT:
        raise InputError(f"{flag} must lie in (0, {SIGMA_LIMIT:g}], got {value}")
    return float(np.float32(sigma))


def edit_noise(seed: int, k: int, step: int, shape: Sequence[int] = (3, 64, 64)) -> Any:
    """Standard-normal float32 noise of step `step` of edit sample `k` of edit seed `seed` (CPU).

    Keyed ``(seed, k, EDIT_STREAM)`` (step 0) or ``(seed, k, EDIT_STREAM, step)``: a stream of its
    own, so a variation never repeats a generated sample's noise for the same seed.
    """
    import torch

    from models.generation import _rng  # the one keyed-RNG constructor (validates the keys)

    key = (seed, k, EDIT_STREAM) if step == 0 else (seed, k, EDIT_STREAM, step)
    return torch.from_numpy(_rng(*key).standard_normal(tuple(shape), dtype=np.float32))


def parent_noises(parent: Parent, shape: Sequence[int] = (3, 64, 64)) -> Any:
    """Every step's noise of a sample of ``ingest generate``: (K, 3, 64, 64)."""
    import models

    assert parent.index is not None
    return models.step_noise_batch(parent.seed, [parent.index], len(parent.sigmas), shape)[:, 0]


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation of two noise tensors (float32), exact at the ends: t=0 gives `a`, t=1 gives `b`.

    Computed in float64 (sin(theta)/sin(theta) is exactly 1, sin(0) exactly 0); falls back to
    a linear mix when the two are (anti)parallel, where the great circle is undefined.
    """
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    cos = float(np.dot(a64.ravel(), b64.ravel()) / (np.linalg.norm(a64) * np.linalg.norm(b64)))
    theta = math.acos(min(1.0, max(-1.0, cos)))
    if math.sin(theta) < 1e-6:
        mixed = (1 - t) * a64 + t * b64
    else:
        mixed = (math.sin((1 - t) * theta) * a64 + math.sin(t * theta) * b64) / math.sin(theta)
    return mixed.astype(np.float32)


