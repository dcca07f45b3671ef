"""The model registry: one ``models`` row per name, written once, read back typed and by plain xarray;
lakes made before it read as having no registered model."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import xarray as xr

from lake import LakeWriter, ModelRecord, ModelRegistryError, Provenance, open_lake, register_model
from lake.layout import (
    MODELS_GROUP,
    checkpoint_model_id,
    model_layer,
    random_model_id,
    split_model_layer,
    split_t2i_layer,
    t2i_layer,
)
from tests.conftest import tree_digest

SHA = "3f2a9c01b7de" + "ab" * 26
STUDENT = ModelRecord(name="student", kind="imagenet64", preset="tiny", weights="random",
                      model_id=random_model_id("tiny", 0), seed=0, label="DMD2 student")
TEACHER = ModelRecord(name="teacher", kind="imagenet64", preset="dmd2-imagenet64", weights="checkpoint",
                      weights_sha256=SHA, source="ckpt/edm.pkl", model_id=checkpoint_model_id("dmd2-imagenet64", SHA),
                      schedule="sigmas80-20-5-1.5", label="EDM teacher")


def registered(path: Path, *records: ModelRecord) -> list[ModelRecord]:
    with LakeWriter.open(path, Provenance(job="register")) as writer:
        return [register_model(writer, record) for record in records]


def test_fresh_lake_registers_models_in_order(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    assert registered(lake, STUDENT, TEACHER) == [STUDENT, TEACHER]
    handle = open_lake(lake)
    assert handle.models() == [STUDENT, TEACHER]
    assert handle.models()[0].name == "student"  # the lake's first model
    assert handle.model("teacher") == TEACHER and handle.model("other") is None
    assert {r["job"]: r["rows_added"] for r in handle.provenance()} == {"register": {MODELS_GROUP: 2}}


def test_registering_the_same_record_again_is_a_no_op(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    registered(lake, STUDENT)
    assert registered(lake, STUDENT, TEACHER, STUDENT) == [STUDENT, TEACHER, STUDENT]
    assert open_lake(lake).models() == [STUDENT, TEACHER]


@pytest.mark.parametrize(("change", "field"), [({"label": "other"}, "label"), ({"seed": 1}, "seed"),
                                               ({"model_id": "tiny-random-seed9"}, "model_id")])
def test_a_different_record_under_a_registered_name_is_refused(tmp_path: Path, change: dict, field: str) -> None:
    lake = tmp_path / "lake"
    registered(lake, STUDENT, TEACHER)
    before = tree_digest(lake)
    with pytest.raises(ModelRegistryError, match=f"model 'student' is registered with a different {field}") as info:
        registered(lake, replace(STUDENT, **change))
    assert "\n" not in str(info.value)
    assert tree_digest(lake) == before
    assert open_lake(lake).models() == [STUDENT, TEACHER]


@pytest.mark.parametrize("record", [
    replace(STUDENT, name="Student"), replace(STUDENT, name="enc"), replace(STUDENT, name="a.b"),
    replace(STUDENT, kind="video"), replace(STUDENT, weights="ema"), replace(STUDENT, seed=-1),
    replace(STUDENT, weights_sha256=SHA), replace(TEACHER, seed=3), replace(TEACHER, weights_sha256=""),
    replace(STUDENT, model_id=""), replace(TEACHER, schedule="80-20"),
])
def test_inconsistent_records_are_refused_before_anything_is_written(tmp_path: Path, record: ModelRecord) -> None:
    lake = tmp_path / "lake"
    registered(lake)
    before = tree_digest(lake)
    with pytest.raises(ModelRegistryError) as info:
        registered(lake, record)
    assert "\n" not in str(info.value)
    assert tree_digest(lake) == before and open_lake(lake).models() == []


def test_a_lake_without_a_models_group_has_no_models(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    registered(lake)  # a lake as made before the registry: no models group
    handle = open_lake(lake)
    assert not handle.has(MODELS_GROUP)
    assert handle.models() == [] and handle.model("student") is None


def test_plain_xarray_reads_the_models_table(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    registered(lake, STUDENT, TEACHER)
    ds = xr.open_zarr(lake, group="models")
    assert ds.sizes["model"] == 2
    assert ds.name.values.tolist() == ["student", "teacher"]
    assert ds.seed.values.tolist() == [0, -1]
    assert ds.weights_sha256.values.tolist() == ["", SHA]


def test_model_layers_generalise_text_to_image_layers() -> None:
    assert model_layer("teacher", "enc.8x8_block2") == "teacher.enc.8x8_block2"
    assert split_model_layer("teacher.enc.8x8_block2") == ("teacher", "enc.8x8_block2")
    for plain in ("enc.8x8_block2", "dec.8x8_in0", "out_conv", "Teacher.enc.8x8_block2", "teacher."):
        assert split_model_layer(plain) == (None, plain)
    assert t2i_layer("sdxl", "mid_block.attentions.0", residual=True) == "sdxl.mid_block.attentions.0+update"
    assert split_t2i_layer("sdxl.mid_block.attentions.0+update") == ("sdxl", "mid_block.attentions.0", True)
    assert split_t2i_layer("enc.8x8_block2") is None and split_t2i_layer("out_conv") is None


def test_a_second_imagenet_models_layer_is_a_generator_block_not_a_text_to_image_module() -> None:
    from lake.layout import is_generator_block, split_t2i_layer

    assert split_model_layer("teacher-stand-in.enc.8x8_block2") == ("teacher-stand-in", "enc.8x8_block2")
    assert split_t2i_layer("teacher-stand-in.enc.8x8_block2") is None
    assert split_t2i_layer("teacher.dec.8x8_in0") is None and split_t2i_layer("teacher.out_conv") is None
    assert split_t2i_layer("dmd2-sdxl-4step.mid_block.attentions.0+update") == ("dmd2-sdxl-4step", "mid_block.attentions.0", True)
    assert is_generator_block("enc.64x64_conv") and is_generator_block("out_conv") and not is_generator_block("mid_block.attentions.0")
