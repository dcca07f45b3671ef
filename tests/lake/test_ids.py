"""lake.layout spells every sample-id and model-id grammar once: formatting then parsing gives the parts
back, and anything else is a one-line ValueError."""
from __future__ import annotations

import pytest

from lake import layout
from lake.layout import (
    HeunSchedule,
    ModelIdParts,
    SampleId,
    checkpoint_model_id,
    edit_sample_id,
    generated_id_prefix,
    generated_sample_id,
    heun_model_id,
    jpeg_sample_id,
    npz_sample_id,
    check_schedule_id,
    parse_generated_id,
    parse_heun_schedule_id,
    parse_model_id,
    parse_sample_id,
    random_model_id,
    schedule_model_id,
    t2i_sample_id,
)

SHA = "3f2a9c01b7de" + "0" * 52


def test_sample_ids_are_todays_strings() -> None:
    assert npz_sample_id("train_data_batch_1", 7) == "in64/train_data_batch_1/7"
    assert jpeg_sample_id("n01440764/a.JPEG") == "jpeg/n01440764/a.JPEG"
    assert generated_id_prefix("tiny-random-seed0", 3) == "gen/tiny-random-seed0/s3/"
    assert generated_sample_id("tiny-random-seed0", 3, 12) == "gen/tiny-random-seed0/s3/12"
    assert edit_sample_id("class_swap", "a1b2c3d4e5f6", 2) == "edit/class_swap/a1b2c3d4e5f6/2"
    assert t2i_sample_id("sdxl", "0123456789ab", 4, 1) == "t2i/sdxl/0123456789ab/s4/1"


@pytest.mark.parametrize(("sample_id", "parts"), [
    (npz_sample_id("val_data", 0), SampleId("in64", stem="val_data", row=0)),
    (jpeg_sample_id("a/b/c.jpg"), SampleId("jpeg", relative="a/b/c.jpg")),
    (generated_sample_id("tiny-random-seed0~sigmas80-20-5-1.5", 1, 9),
     SampleId("gen", model_id="tiny-random-seed0~sigmas80-20-5-1.5", seed=1, index=9)),
    (edit_sample_id("from_real", "abcdef012345", 3), SampleId("edit", operation="from_real", digest="abcdef012345", k=3)),
    (t2i_sample_id("dmd2-sdxl", layout.prompt_id("a cat"), 0, 2),
     SampleId("t2i", name="dmd2-sdxl", prompt_id=layout.prompt_id("a cat"), seed=0, index=2)),
])
def test_sample_ids_round_trip(sample_id: str, parts: SampleId) -> None:
    assert parse_sample_id(sample_id) == parts


@pytest.mark.parametrize("text", ["", "in64/x", "in64/x/y", "jpeg/", "gen/m/s1", "gen/m/1/2", "gen/m/s1/2/3",
                                  "edit/op/d", "t2i/n/p/1/2", "png/a", "sample-3"])
def test_unknown_sample_ids_are_one_line_value_errors(text: str) -> None:
    with pytest.raises(ValueError, match="not a sample id") as info:
        parse_sample_id(text)
    assert "\n" not in str(info.value)


def test_generated_ids_parse_like_the_edit_jobs_regex() -> None:
    assert parse_generated_id(generated_sample_id("m-random-seed0", 0, 5)) == ("m-random-seed0", 0, 5)
    assert parse_generated_id("gen/m~sigmas80-1/s2/3") == ("m~sigmas80-1", 2, 3)
    for other in (edit_sample_id("variations", "d", 0), "gen/a/b/s1/2", "gen/m/s-1/2", npz_sample_id("x", 1)):
        assert parse_generated_id(other) is None


def test_model_ids_are_todays_strings() -> None:
    assert checkpoint_model_id("dmd2-imagenet64", SHA) == "dmd2-imagenet64-3f2a9c01b7de"
    assert random_model_id("tiny", 3) == "tiny-random-seed3"
    assert schedule_model_id("tiny-random-seed0", (80.0,)) == "tiny-random-seed0"
    assert schedule_model_id("tiny-random-seed0", [80]) == "tiny-random-seed0"
    assert schedule_model_id("tiny-random-seed0", (80.0, 20.0, 5.0, 1.5)) == "tiny-random-seed0~sigmas80-20-5-1.5"


def test_model_ids_round_trip() -> None:
    sigmas = (80.0, 21.3641, 4.19162, 0.5)
    assert parse_model_id(random_model_id("tiny", 3)) == ModelIdParts("tiny-random-seed3", "tiny", "random", 3, None, (80.0,))
    parts = parse_model_id(schedule_model_id(checkpoint_model_id("dmd2-imagenet64", SHA), sigmas))
    assert (parts.base, parts.preset, parts.weights, parts.seed, parts.sha12) == (
        "dmd2-imagenet64-3f2a9c01b7de", "dmd2-imagenet64", "checkpoint", None, "3f2a9c01b7de")
    assert schedule_model_id(parts.base, parts.schedule) == schedule_model_id(parts.base, sigmas)
    # A text-to-image model name is a model id of unknown weights.
    assert parse_model_id("dmd2-sdxl-4step") == ModelIdParts("dmd2-sdxl-4step", None, None, None, None, (80.0,))


def test_heun_schedule_ids_round_trip() -> None:
    """EDM's Heun sampler is a schedule of its own: ``heun<K>`` (deterministic) or ``heun<K>-churn<C>``."""
    assert HeunSchedule(18).name == "heun18" and HeunSchedule(256, 40).name == "heun256-churn40"
    assert HeunSchedule(8, 0.5).name == "heun8-churn0.5"
    for schedule in (HeunSchedule(18), HeunSchedule(256, 40.0), HeunSchedule(8, 0.5)):
        assert parse_heun_schedule_id(schedule.name) == schedule
        model = heun_model_id("tiny-random-seed0", schedule)
        assert model == f"tiny-random-seed0~{schedule.name}"
        assert parse_model_id(model) == ModelIdParts("tiny-random-seed0", "tiny", "random", 0, None, (), schedule)
        assert check_schedule_id(schedule.name) == schedule.name
    assert parse_heun_schedule_id("sigmas80-20") is None  # DMD2's schedules are not Heun ones
    assert parse_model_id("tiny-random-seed0~sigmas80-20").heun is None


@pytest.mark.parametrize("text", ["heun", "heun0", "heun-4", "heun4-churn", "heun4-churn-1", "heun4x", "heun04", "heun4-churn0"])
def test_bad_heun_schedule_ids_are_one_line_value_errors(text: str) -> None:
    for parse in (parse_heun_schedule_id, check_schedule_id, lambda t: parse_model_id(f"m~{t}")):
        with pytest.raises(ValueError) as info:
            parse(text)
        assert "\n" not in str(info.value) and "heun" in str(info.value)


@pytest.mark.parametrize("text", ["", "~sigmas80", "m~", "m~sigmas", "m~80-20"])
def test_bad_model_ids_are_one_line_value_errors(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_model_id(text)
    assert "\n" not in str(info.value)
