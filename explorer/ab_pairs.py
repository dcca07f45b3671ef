"""What the A/B page compares: pairs of two models' samples of the same seed, index and class, the
blind side each is shown on, their layers' activations on the same first input, and win rates.

Pure functions of lake columns (the page, `explorer.page_ab`, does the reading and drawing).
Two generated samples pair when their ids (`gen/<model>/s<seed>/<index>`) differ only by the
model and they were made for the same class: both samplers start from the noise of
(seed, index) (`models.sample_noise`; EDM's Heun sampler uses it as its starting latent), so
the pair differs by the network and sampler only.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lake.layout import (
    heun_model_id,
    parse_generated_id,
    parse_heun_schedule_id,
    parse_model_id,
    parse_schedule_id,
    schedule_model_id,
)
from lake.ratings import Rating, latest_ratings

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Pairing:
    """Every pair of two models' samples with the same (seed, index, class), in (seed, index) order."""

    first_model: str  # samples/model_id of the first model's samples
    second_model: str
    first_ids: tuple[str, ...]
    second_ids: tuple[str, ...]
    class_ids: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.first_ids)


def find_pairings(sample_ids: Sequence[str], class_ids: Sequence[int]) -> list[Pairing]:
    """Every pairing of two generated models in `samples` with at least one pair.

    The first model is a one-step model (DMD2's generator, no ``~schedule``); the second is
    any other. Pairings with a Heun-sampled second model (a teacher) come first, then by name.
    """
    by_model: dict[str, dict[tuple[int, int], tuple[str, int]]] = {}
    for sample_id, class_id in zip(sample_ids, class_ids, strict=True):
        parsed = parse_generated_id(str(sample_id))
        if parsed is not None:
            model, seed, index = parsed
            by_model.setdefault(model, {})[(seed, index)] = (str(sample_id), int(class_id))
    pairings = []
    for first, first_samples in by_model.items():
        if "~" in first:
            continue
        for second, second_samples in by_model.items():
            if second == first:
                continue
            keys = sorted(k for k in first_samples.keys() & second_samples.keys() if first_samples[k][1] == second_samples[k][1])
            if keys:
                pairings.append(Pairing(first, second, tuple(first_samples[k][0] for k in keys),
                                        tuple(second_samples[k][0] for k in keys), tuple(first_samples[k][1] for k in keys)))
    return sorted(pairings, key=lambda p: (parse_model_id(p.second_model).heun is None, p.first_model, p.second_model))


def left_side(first_id: str, second_id: str) -> str:
    """Which sample of a pair is shown on the left, "first" or "second": a stable coin per pair, so a rater
    cannot learn a model's side, and the same pair always looks the same."""
    digest = hashlib.sha256(f"{first_id}\n{second_id}".encode()).digest()
    return "first" if digest[0] % 2 == 0 else "second"


@dataclass(frozen=True)
class WinRate:
    """How often the first model's image was preferred, among one pairing's latest ratings."""

    first_wins: int
    second_wins: int
    ties: int
    rate: float  # first_wins / (first_wins + second_wins); NaN before any decisive rating
    low: float  # Wilson score interval at CONFIDENCE (scipy), NaN before any decisive rating
    high: float

    @property
    def decisive(self) -> int:
        return self.first_wins + self.second_wins


def win_rate(ratings: Sequence[Rating], first_model: str, second_model: str) -> WinRate:
    """The first model's win rate against the second over each rater's latest rating of each pair, ties apart."""
    from scipy.stats import binomtest

    mine = [r for r in latest_ratings(list(ratings)) if (r.first_model, r.second_model) == (first_model, second_model)]
    first = sum(r.choice == "first" for r in mine)
    second = sum(r.choice == "second" for r in mine)
    ties = sum(r.choice == "tie" for r in mine)
    if not first + second:
        return WinRate(first, second, ties, math.nan, math.nan, math.nan)
    interval = binomtest(first, first + second).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return WinRate(first, second, ties, first / (first + second), float(interval.low), float(interval.high))


def sample_model_of_table(attrs: dict[str, Any], schedule: str | None) -> str:
    """The samples/model_id whose rows a generation table (`schedule` None) or trajectory layer table holds."""
    base = str(attrs.get("model_id", ""))
    if schedule is None:
        return base
    heun = parse_heun_schedule_id(schedule)
    return heun_model_id(base, heun) if heun is not None else schedule_model_id(base, parse_schedule_id(schedule))


def bare_layer(layer: str, model_names: Sequence[str]) -> str:
    """`layer` without a registered model's ``<name>.`` prefix (a second model's tables carry one)."""
    for name in model_names:
        if layer.startswith(f"{name}."):
            return layer[len(name) + 1 :]
    return layer


def activation_difference(first: np.ndarray, second: np.ndarray) -> tuple[float, float]:
    """(relative L2 difference, cosine similarity) of two channel-mean vectors of one layer.

    Relative: ||a - b|| / ((||a|| + ||b||) / 2), 0 for identical vectors, 2 for opposite ones.
    """
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    scale = (na + nb) / 2
    relative = float(np.linalg.norm(a - b) / scale) if scale else 0.0
    cosine = float(a @ b / (na * nb)) if na and nb else math.nan
    return relative, cosine
