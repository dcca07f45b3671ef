"""explorer.ab_pairs: which samples pair up for A/B, the blind sides, win rates with their interval, and
how far two layers' activations are apart, on constructed data with known answers."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from explorer.ab_pairs import (
    activation_difference,
    bare_layer,
    find_pairings,
    left_side,
    sample_model_of_table,
    win_rate,
)
from lake import Rating
from lake.layout import HeunSchedule, generated_sample_id, heun_model_id, schedule_model_id

STUDENT = "micro-random-seed0"
TEACHER = heun_model_id("micro-0123456789ab", HeunSchedule(8))
STEPS = schedule_model_id(STUDENT, (80.0, 2.0))


def test_samples_pair_by_seed_index_and_class_with_the_teacher_first() -> None:
    rows = [
        *[(generated_sample_id(STUDENT, 0, i), i % 3) for i in range(6)],
        (generated_sample_id(STUDENT, 1, 0), 0),  # another seed: pairs with nothing
        *[(generated_sample_id(TEACHER, 0, i), i % 3) for i in (4, 1, 2)],  # stored out of order
        (generated_sample_id(TEACHER, 0, 3), 2),  # index 3's class differs (0 for the student): no pair
        (generated_sample_id(STEPS, 0, 5), 2),
        ("in64/val/7", 1),  # real samples never pair
    ]
    ids, classes = zip(*rows, strict=True)
    pairings = find_pairings(list(ids), list(classes))
    assert [(p.first_model, p.second_model) for p in pairings] == [(STUDENT, TEACHER), (STUDENT, STEPS)]
    teacher = pairings[0]
    assert teacher.first_ids == tuple(generated_sample_id(STUDENT, 0, i) for i in (1, 2, 4))
    assert teacher.second_ids == tuple(generated_sample_id(TEACHER, 0, i) for i in (1, 2, 4))
    assert teacher.class_ids == (1, 2, 1) and len(teacher) == 3
    assert pairings[1].first_ids == (generated_sample_id(STUDENT, 0, 5),)
    # A multi-step model is never the first of a pairing (its samples are not the one-step generator's).
    assert all("~" not in p.first_model for p in pairings)


def test_sides_are_a_stable_fair_coin_per_pair() -> None:
    pairs = [(generated_sample_id(STUDENT, 0, i), generated_sample_id(TEACHER, 0, i)) for i in range(400)]
    sides = [left_side(a, b) for a, b in pairs]
    assert sides == [left_side(a, b) for a, b in pairs]  # the same every time
    assert set(sides) == {"first", "second"} and 160 < sides.count("first") < 240


def wilson(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson's score interval, from its formula (Wilson 1927)."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_win_rate_counts_each_raters_latest_word_with_wilsons_interval() -> None:
    base = Rating("", "", STUDENT, TEACHER, "first", "first", "ada")
    ratings = [replace(base, first_sample_id=f"a{k}", second_sample_id=f"b{k}", choice="first" if k < 8 else "second")
               for k in range(10)]
    ratings += [replace(base, first_sample_id="a0", second_sample_id="b0", choice="tie"),  # ada changes her mind on pair 0
                replace(base, first_sample_id="a0", second_sample_id="b0", rater="grace", choice="first"),
                replace(base, first_sample_id="x", second_sample_id="y", second_model=STEPS)]  # another pairing
    rate = win_rate(ratings, STUDENT, TEACHER)
    assert (rate.first_wins, rate.second_wins, rate.ties, rate.decisive) == (8, 2, 1, 10)
    assert rate.rate == pytest.approx(0.8)
    assert (rate.low, rate.high) == pytest.approx(wilson(8, 10), abs=1e-9)
    empty = win_rate(ratings[10:11], STUDENT, TEACHER)
    assert empty.ties == 1 and empty.decisive == 0 and math.isnan(empty.rate) and math.isnan(empty.low)


def test_activation_difference_known_answers() -> None:
    a = np.array([3.0, 4.0, 0.0])
    assert activation_difference(a, a) == (0.0, pytest.approx(1.0))
    assert activation_difference(a, -a) == (pytest.approx(2.0), pytest.approx(-1.0))
    relative, cosine = activation_difference(np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    assert relative == pytest.approx(math.sqrt(2)) and cosine == pytest.approx(0.0)
    assert activation_difference(a, 2 * a)[1] == pytest.approx(1.0)  # cosine ignores scale; the difference does not
    assert activation_difference(a, 2 * a)[0] == pytest.approx(5 / 7.5)


def test_tables_name_the_samples_and_layers_they_hold() -> None:
    assert sample_model_of_table({"model_id": STUDENT}, None) == STUDENT
    assert sample_model_of_table({"model_id": "micro-0123456789ab"}, "heun8") == TEACHER
    assert sample_model_of_table({"model_id": STUDENT}, "sigmas80-2") == STEPS
    assert bare_layer("teacher.enc.8x8_block2", ["micro", "teacher"]) == "enc.8x8_block2"
    assert bare_layer("enc.8x8_block2", ["micro", "teacher"]) == "enc.8x8_block2"
