"""Every id grammar of the lake: sample ids (in64/ jpeg/ gen/ edit/ t2i/) and model ids, with their parsers.

Ids are the join key of every table, so a job that formatted one differently would silently
fork a sample in two: they are spelled here once, and nowhere else.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .paths import T2I_GROUP, HeunSchedule, parse_heun_schedule_id, parse_schedule_id, schedule_id

ONE_STEP_SCHEDULE = (80.0,)  # DMD2's one-step generator: its samples' model id carries no schedule
SampleKind = Literal["in64", "jpeg", "gen", "edit", "t2i"]
SAMPLE_KINDS: tuple[SampleKind, ...] = ("in64", "jpeg", "gen", "edit", "t2i")
# A user-given model name (text-to-image models, the model registry): no dots, because
# ``<name>.<layer>`` is how a named model's activation layers are spelled.
MODEL_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def npz_sample_id(stem: str, row: int) -> str:
    """``in64/<stem>/<row>``: row `row` of the NPZ file whose name without suffix is `stem`."""
    return f"in64/{stem}/{row}"


def jpeg_sample_id(relative: str) -> str:
    """``jpeg/<relative>``: the JPEG at `relative` (POSIX path below its root)."""
    return f"jpeg/{relative}"


def generated_id_prefix(model_id: str, seed: int) -> str:
    """``gen/<model_id>/s<seed>/``: what every sample id of one generator and seed starts with."""
    return f"gen/{model_id}/s{seed}/"


def generated_sample_id(model_id: str, seed: int, index: int) -> str:
    """``gen/<model_id>/s<seed>/<index>``: sample `index` of `ingest generate` with `seed`."""
    return f"{generated_id_prefix(model_id, seed)}{index}"


def edit_sample_id(operation: str, digest: str, k: int) -> str:
    """``edit/<operation>/<digest>/<k>``: the k-th sample of one edit (`digest` hashes the edit)."""
    return f"edit/{operation}/{digest}/{k}"


def prompt_id(prompt: str, negative_prompt: str = "") -> str:
    """A prompt's stable id: the first 12 hex digits of sha256 over the prompt and negative prompt (UTF-8)."""
    digest = hashlib.sha256(prompt.encode("utf-8") + b"\x00" + negative_prompt.encode("utf-8")).hexdigest()
    return digest[:12]


def t2i_sample_id(name: str, prompt: str, seed: int, index: int) -> str:
    """``t2i/<name>/<prompt_id>/s<seed>/<index>``: sample `index` of a prompt (its `prompt_id`) and seed."""
    return f"{T2I_GROUP}/{name}/{prompt}/s{int(seed)}/{int(index)}"


@dataclass(frozen=True)
class SampleId:
    """A sample id's parts; which fields are set depends on `kind` (the others are None).

    in64: stem, row; jpeg: relative; gen: model_id, seed, index; edit: operation, digest, k;
    t2i: name, prompt_id, seed, index.
    """

    kind: SampleKind
    stem: str | None = None
    row: int | None = None
    relative: str | None = None
    model_id: str | None = None
    seed: int | None = None
    index: int | None = None
    operation: str | None = None
    digest: str | None = None
    k: int | None = None
    name: str | None = None
    prompt_id: str | None = None


_SAMPLE_ID_PATTERNS: dict[SampleKind, re.Pattern[str]] = {
    "in64": re.compile(r"^in64/(?P<stem>[^/]+)/(?P<row>\d+)$"),
    "jpeg": re.compile(r"^jpeg/(?P<relative>.+)$"),
    "gen": re.compile(r"^gen/(?P<model_id>[^/]+)/s(?P<seed>\d+)/(?P<index>\d+)$"),
    "edit": re.compile(r"^edit/(?P<operation>[^/]+)/(?P<digest>[^/]+)/(?P<k>\d+)$"),
    "t2i": re.compile(r"^t2i/(?P<name>[^/]+)/(?P<prompt_id>[^/]+)/s(?P<seed>\d+)/(?P<index>\d+)$"),
}
_INT_PARTS = ("row", "seed", "index", "k")


def parse_sample_id(sample_id: str) -> SampleId:
    """The parts of any sample id this lake writes; ValueError (one line) for anything else."""
    for kind, pattern in _SAMPLE_ID_PATTERNS.items():
        match = pattern.match(sample_id)
        if match is not None:
            parts: dict[str, Any] = {n: int(v) if n in _INT_PARTS else v for n, v in match.groupdict().items()}
            return SampleId(kind, **parts)
    raise ValueError(f"{sample_id!r}: not a sample id; expected in64/<stem>/<row>, jpeg/<path>, "
                     "gen/<model>/s<seed>/<index>, edit/<operation>/<digest>/<k> or "
                     "t2i/<name>/<prompt_id>/s<seed>/<index>")


def parse_generated_id(sample_id: str) -> tuple[str, int, int] | None:
    """(model_id, seed, index) of an `ingest generate` sample id, None for any other id."""
    match = _SAMPLE_ID_PATTERNS["gen"].match(sample_id)
    if match is None:
        return None
    return match.group("model_id"), int(match.group("seed")), int(match.group("index"))


def checkpoint_model_id(preset: str, sha256: str) -> str:
    """``<preset>-<sha256[:12]>``: the identity of checkpoint weights."""
    return f"{preset}-{sha256[:12]}"


def random_model_id(preset: str, seed: int) -> str:
    """``<preset>-random-seed<seed>``: the identity of random weights initialised from `seed`."""
    return f"{preset}-random-seed{seed}"


def schedule_model_id(model_id: str, sigmas: Sequence[float]) -> str:
    """The model identity of samples made with `sigmas`: `model_id` itself for one step at 80, else
    ``<model_id>~<schedule id>`` (so one-step and K-step samples of a seed are different samples)."""
    return model_id if tuple(sigmas) == ONE_STEP_SCHEDULE else f"{model_id}~{schedule_id(sigmas)}"


def heun_model_id(model_id: str, heun: HeunSchedule) -> str:
    """The model identity of samples made with EDM's Heun sampler: ``<model_id>~heun<K>[-churn<C>]``."""
    return f"{model_id}~{heun.name}"


@dataclass(frozen=True)
class ModelIdParts:
    """A model id's parts: the weights' identity (`base`) and the sampling schedule.

    `preset`/`weights` are None when `base` is neither ``<preset>-random-seed<N>`` nor
    ``<preset>-<12 hex digits>`` (e.g. a text-to-image model name).
    """

    base: str
    preset: str | None
    weights: Literal["random", "checkpoint"] | None
    seed: int | None
    sha12: str | None
    schedule: tuple[float, ...]  # DMD2's input sigmas; () for EDM's Heun sampler (see `heun`)
    heun: HeunSchedule | None = None  # the Heun sampler, for a ``~heun...`` id


_RANDOM_MODEL = re.compile(r"^(?P<preset>.+)-random-seed(?P<seed>\d+)$")
_CHECKPOINT_MODEL = re.compile(r"^(?P<preset>.+)-(?P<sha12>[0-9a-f]{12})$")


def parse_model_id(text: str) -> ModelIdParts:
    """Inverse of `random_model_id` / `checkpoint_model_id` (+ `schedule_model_id`); ValueError (one line)
    for an empty id or a bad schedule. The schedule is `ONE_STEP_SCHEDULE` when the id has no ``~``."""
    base, tilde, schedule = text.partition("~")
    if not base or (tilde and not schedule):
        raise ValueError(f"{text!r}: not a model id; expected <preset>-random-seed<N> or <preset>-<sha256[:12]>, "
                         "optionally followed by ~<schedule id>")
    heun = parse_heun_schedule_id(schedule) if tilde else None
    sigmas = () if heun else parse_schedule_id(schedule) if tilde else ONE_STEP_SCHEDULE
    random = _RANDOM_MODEL.match(base)
    if random:
        return ModelIdParts(base, random.group("preset"), "random", int(random.group("seed")), None, sigmas, heun)
    checkpoint = _CHECKPOINT_MODEL.match(base)
    if checkpoint:
        return ModelIdParts(base, checkpoint.group("preset"), "checkpoint", None, checkpoint.group("sha12"), sigmas, heun)
    return ModelIdParts(base, None, None, None, None, sigmas, heun)
