"""Where things go: every group path of the lake, the analysis key and the schedule id."""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# --------------------------------------------------------------------------- group paths

SAMPLES_GROUP = "samples"
GENERATION_GROUP = "generation"
ACTIVATIONS_GROUP = "activations"
ANALYSIS_GROUP = "analysis"
PROVENANCE_GROUP = "provenance"
TRAJECTORIES_GROUP = "trajectories"
LINEAGE_GROUP = "lineage"
RECONSTRUCTIONS_GROUP = "reconstructions"
T2I_GROUP = "t2i"
MODELS_GROUP = "models"
RATINGS_GROUP = "ratings"

# Analysis result kinds: the folder below analysis/ of each (and what `list` calls them).
# `trajectory` results are keyed by layer alone (all sigmas), the others by `AnalysisKey`.
# `placed` holds samples projected into a key's stored PCA/embeddings without refitting.
# `clusters` holds k-means clusters of a key's PCA scores; `prompts` (keyed by a text-to-image
# model name, not an AnalysisKey) the clusters and 2-D map of its prompts' pooled text embeddings.
# `cka` (keyed by a pair of registered models and a sigma, `model_pair_key`) holds the layer x
# layer CKA table of the two models on their shared samples; `neighbourhood` (keyed by two analysis
# keys, `key_pair`) how each shared sample's nearest neighbours differ between the two tables.
# `sets` (keyed by an AnalysisKey and two generated sets, `sets_group`) compares two models' generated samples in that
# key's PCA space.
ANALYSIS_KINDS = ("pca", "embeddings", "knn", "compare", "trajectory", "placed", "clusters", "prompts", "cka", "neighbourhood",
                  "sets")

IMAGE_SIZE = 64


def generation_group(layer: str) -> str:
    """``generation/<layer>``: the generation pass's channel means of one block."""
    return f"{GENERATION_GROUP}/{layer}"


def activations_group(layer: str) -> str:
    """``activations/<layer>``: the denoiser probes of one block, all sigmas."""
    return f"{ACTIVATIONS_GROUP}/{layer}"


def trajectory_group(schedule: str) -> str:
    """``trajectories/<schedule>``: the per-step x0_hat images of one multi-step schedule."""
    return f"{TRAJECTORIES_GROUP}/{schedule}"


def trajectory_layer_group(schedule: str, layer: str) -> str:
    """``trajectories/<schedule>/<layer>``: the generation pass's channel means of one block, per step."""
    return f"{trajectory_group(schedule)}/{layer}"


def joint_embedding_group(layer: str, schedule: str | None = None) -> str:
    """``analysis/trajectory/<layer>`` (the probes), or ``.../<schedule>`` (that schedule's steps placed in it)."""
    path = f"{ANALYSIS_GROUP}/trajectory/{layer}"
    return path if schedule is None else f"{path}/{schedule}"


def analysis_prefix(kind: str) -> str:
    """``analysis/<kind>``: the folder of one kind of result (pca, embeddings, knn, compare)."""
    if kind not in ANALYSIS_KINDS:
        raise ValueError(f"unknown analysis kind {kind!r}; one of {', '.join(ANALYSIS_KINDS)}")
    return f"{ANALYSIS_GROUP}/{kind}"


def analysis_group(kind: str, key: AnalysisKey | str, name: str | None = None) -> str:
    """``analysis/<kind>/<key>[/<name>]`` (embeddings are named below their key)."""
    path = f"{analysis_prefix(kind)}/{key}"
    return path if name is None else f"{path}/{name}"


PAIR_SEPARATOR = "~"  # between the two names of a comparison (model and layer names hold no "~")


def key_pair(first: AnalysisKey | str, second: AnalysisKey | str) -> str:
    """``<first>~<second>``: two things compared (two analysis keys, or two registered models)."""
    return f"{first}{PAIR_SEPARATOR}{second}"


def model_pair_key(first: str, second: str, sigma: float) -> str:
    """``<first>~<second>@sigma<s>``: two registered models compared at one noise level."""
    return f"{key_pair(first, second)}{KEY_SEPARATOR}{format_sigma(sigma)}"


def cka_group(first: str, second: str, sigma: float) -> str:
    """``analysis/cka/<first>~<second>@sigma<s>``: CKA of every layer of `first` against every layer of `second`."""
    return analysis_group("cka", model_pair_key(first, second, sigma))


def neighbourhood_group(first: AnalysisKey | str, second: AnalysisKey | str) -> str:
    """``analysis/neighbourhood/<first key>~<second key>``: per shared sample, how its k-NN differ between the keys."""
    return analysis_group("neighbourhood", key_pair(first, second))


SETS_SEPARATOR = "__vs__"  # between two generated sets' names (which may hold "~<schedule>")


def sets_name(first: str, second: str) -> str:
    """``<first>__vs__<second>``: two generated sets compared (a registered model name, ``~<schedule>`` for its
    multi-step or Heun samples, e.g. ``micro__vs__teacher~heun32``)."""
    return f"{first}{SETS_SEPARATOR}{second}"


def sets_group(key: AnalysisKey | str, first: str, second: str) -> str:
    """``analysis/sets/<key>/<first>__vs__<second>``: two generated sets compared in one key's PCA space."""
    return analysis_group("sets", key, sets_name(first, second))


def provenance_group(run_id: str | None = None) -> str:
    """``provenance`` or ``provenance/<run_id>``: one job's record."""
    return PROVENANCE_GROUP if run_id is None else f"{PROVENANCE_GROUP}/{run_id}"


def staging_group(final_path: str, run_id: str) -> str:
    """Where a result is written before it is swapped into `final_path` (see `StagedGroup`)."""
    return f"{final_path}.staging-{run_id}"


def child_name(path: str, parent: str) -> str | None:
    """The direct child's name when `path` is ``<parent>/<name>``, else None."""
    prefix = parent.rstrip("/") + "/"
    rest = path[len(prefix) :] if path.startswith(prefix) else ""
    return rest if rest and "/" not in rest else None


# --------------------------------------------------------------------------- the analysis key


def format_sigma(sigma: float) -> str:
    """The sigma as it appears in keys: float32 value printed with ``%g`` (2, 0.5, 80)."""
    return f"{float(np.float32(sigma)):g}"


def schedule_id(sigmas: Sequence[float]) -> str:
    """The name of a sampling schedule: ``sigmas`` + its input sigmas (`format_sigma`) joined by ``-``.

    ``[80, 20, 5, 1.5]`` -> ``sigmas80-20-5-1.5``. Used as the trajectories group name and,
    for more than one step, in the generated samples' model identity (their ids).
    """
    if not len(sigmas):
        raise ValueError("a schedule needs at least one sigma")
    return "sigmas" + "-".join(format_sigma(s) for s in sigmas)


def parse_schedule_id(text: str) -> tuple[float, ...]:
    """Inverse of `schedule_id`; ValueError (one line) for anything else."""
    body = text.removeprefix("sigmas")
    try:
        if body == text or not body:
            raise ValueError
        return tuple(float(np.float32(t)) for t in body.split("-"))
    except ValueError:
        raise ValueError(f"{text!r}: not a schedule id; expected sigmas<s0>-<s1>-..., e.g. sigmas80-20-5-1.5") from None


HEUN_PREFIX = "heun"
_HEUN_ID = re.compile(r"^heun(?P<steps>[1-9][0-9]*)(?:-churn(?P<churn>[0-9]+(?:\.[0-9]+)?(?:e[+-][0-9]+)?))?$")


@dataclass(frozen=True)
class HeunSchedule:
    """EDM's Heun sampler as a schedule id names it: its step count and S_churn (0: deterministic).

    The rest of the sampler is EDM's (Karras schedule, rho 7, sigma 0.002-80; with churn, EDM's
    ImageNet-64 S_min 0.05, S_max 50, S_noise 1.003): `models.heun.HeunConfig.from_schedule`.
    """

    steps: int
    churn: float = 0.0

    @property
    def name(self) -> str:
        """``heun<K>`` or ``heun<K>-churn<C>``: the trajectories group and the samples' schedule id."""
        return f"{HEUN_PREFIX}{self.steps}" + (f"-churn{format_sigma(self.churn)}" if self.churn else "")


def parse_heun_schedule_id(text: str) -> HeunSchedule | None:
    """The Heun sampler a schedule id names, or None when it is not a ``heun...`` id (a ``sigmas...`` one).

    ValueError (one line) for a malformed ``heun`` id, so a typo is never read as another sampler.
    """
    if not text.startswith(HEUN_PREFIX):
        return None
    match = _HEUN_ID.match(text)
    if match is None or (match.group("churn") is not None and not float(match.group("churn"))):  # churn0 is ``heun<K>``
        raise ValueError(f"{text!r}: not a Heun schedule id; expected heun<steps> or heun<steps>-churn<S_churn>, e.g. heun18")
    return HeunSchedule(int(match.group("steps")), float(np.float32(match.group("churn") or 0)))


def check_schedule_id(text: str) -> str:
    """`text` when it names a schedule (``sigmas...`` or ``heun...``); ValueError (one line) otherwise."""
    if parse_heun_schedule_id(text) is None:
        parse_schedule_id(text)
    return text


@dataclass(frozen=True)
class AnalysisKey:
    """One (layer, sigma) activation table: the unit every analysis works on."""

    layer: str
    sigma: float

    @property
    def name(self) -> str:
        return f"{self.layer}@sigma{format_sigma(self.sigma)}"

    @property
    def activations_group(self) -> str:
        return activations_group(self.layer)

    def group(self, kind: str, name: str | None = None) -> str:
        """This key's result group of `kind` (``analysis/<kind>/<key>[/<name>]``)."""
        return analysis_group(kind, self.name, name)

    @property
    def pca_group(self) -> str:
        return self.group("pca")

    @property
    def knn_group(self) -> str:
        return self.group("knn")

    @property
    def compare_group(self) -> str:
        return self.group("compare")

    @property
    def embeddings_group(self) -> str:
        return self.group("embeddings")

    def embedding_group(self, name: str) -> str:
        return self.group("embeddings", name)

    @property
    def placed_group(self) -> str:
        return self.group("placed")

    def placed_embedding_group(self, name: str) -> str:
        return self.group("placed", name)

    def __str__(self) -> str:
        return self.name


KEY_SEPARATOR = "@sigma"


def parse_key(text: str) -> AnalysisKey:
    """Inverse of `AnalysisKey.name`; ValueError (one line) for anything else."""
    layer, sep, sigma = text.rpartition(KEY_SEPARATOR)
    if not sep or not layer:
        raise ValueError(f"{text!r}: not an analysis key; expected <layer>@sigma<sigma>, e.g. enc.8x8_block2@sigma2")
    try:
        return AnalysisKey(layer, float(np.float32(sigma)))
    except ValueError:
        raise ValueError(f"{text!r}: sigma {sigma!r} is not a number") from None
