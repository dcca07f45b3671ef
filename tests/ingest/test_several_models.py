"""Several ImageNet models in one lake (ingest.core.registry): the first keeps the unprefixed tables,
another is registered under --model and writes <name>.<layer> tables; refusals leave the lake unchanged."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import models
from ingest.core.models import ModelSpec
from ingest.errors import InputError
from ingest.generate import generate
from ingest.npz import ingest_npz
from ingest.probing import probe_activations
from lake import open_lake
from lake.layout import generation_group, parse_sample_id
from tests.conftest import photo_like_images, run_cli, tree_digest, write_imagenet64_npz

TEACHER_SEED = 7


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An ImageNet64 NPZ of 12 real images and a teacher checkpoint (the micro preset with other weights)."""
    root = tmp_path_factory.mktemp("several_models")
    npz = root / "val_data.npz"
    write_imagenet64_npz(npz, photo_like_images(12, seed=3), np.array([1, 2, 3] * 4))
    teacher = root / "teacher.pt"
    torch.save(models.build_generator("micro", seed=TEACHER_SEED).state_dict(), teacher)
    return {"npz": npz, "teacher": teacher}


@pytest.fixture(scope="module")
def two_model_lake(tmp_path_factory: pytest.TempPathFactory, inputs: dict[str, Path]) -> Path:
    """Real images and generated samples probed by the first model, then the real ones by `teacher`."""
    lake = tmp_path_factory.mktemp("two_models") / "lake"
    ingest_npz(lake, [inputs["npz"]], progress=False)
    student = ModelSpec(preset="micro", device="cpu")
    generate(lake, student, 8, seed=0, layers="bottleneck", progress=False)
    probe_activations(lake, student, "bottleneck", "2", progress=False)
    teacher = ModelSpec(preset="micro", checkpoint=str(inputs["teacher"]), device="cpu", name="teacher")
    probe_activations(lake, teacher, "bottleneck", "2", source="real", progress=False)
    return lake


def test_the_first_model_keeps_unprefixed_tables_and_a_named_second_gets_its_own(two_model_lake: Path) -> None:
    lake = open_lake(two_model_lake)
    first, teacher = lake.models()
    assert (first.name, first.weights, first.model_id) == ("micro", "random", "micro-random-seed0")
    assert (teacher.name, teacher.weights, teacher.seed) == ("teacher", "checkpoint", -1)
    assert teacher.model_id.startswith("micro-") and len(teacher.weights_sha256) == 64
    assert lake.activation_layers() == ["enc.8x8_block2", "teacher.enc.8x8_block2"]
    assert lake.generation_layers() == ["enc.8x8_block2"]
    probes = lake.activations("teacher.enc.8x8_block2")
    assert probes.attrs["model_id"] == teacher.model_id
    assert set(probes["source"].values.tolist()) == {"real"}


def test_a_second_models_probes_equal_those_of_a_lake_where_it_is_the_only_model(
        two_model_lake: Path, inputs: dict[str, Path], tmp_path: Path) -> None:
    alone = tmp_path / "alone"
    ingest_npz(alone, [inputs["npz"]], progress=False)
    probe_activations(alone, ModelSpec(preset="micro", checkpoint=str(inputs["teacher"]), device="cpu"), "bottleneck", "2",
                      source="real", progress=False)
    shared = open_lake(two_model_lake).activations("teacher.enc.8x8_block2")
    single = open_lake(alone).activations("enc.8x8_block2")
    assert shared["sample_id"].values.tolist() == single["sample_id"].values.tolist()
    np.testing.assert_array_equal(shared["mean"].values, single["mean"].values)  # the same noise, the same bits
    assert open_lake(alone).models()[0].name == "micro"  # a checkpoint's first model is named after its preset too


def test_rerunning_a_registered_model_adds_nothing(two_model_lake: Path, inputs: dict[str, Path]) -> None:
    before = open_lake(two_model_lake).activations("teacher.enc.8x8_block2")["mean"].values.copy()
    probe_activations(two_model_lake, ModelSpec(preset="micro", checkpoint=str(inputs["teacher"]), device="cpu", name="teacher"),
                      "bottleneck", "2", source="real", progress=False)
    lake = open_lake(two_model_lake)
    assert [m.name for m in lake.models()] == ["micro", "teacher"]
    np.testing.assert_array_equal(lake.activations("teacher.enc.8x8_block2")["mean"].values, before)


@pytest.fixture
def other_checkpoint(tmp_path: Path) -> Path:
    """A third network: the micro preset with yet other weights."""
    path = tmp_path / "other.pt"
    torch.save(models.build_generator("micro", seed=TEACHER_SEED + 1).state_dict(), path)
    return path


def test_a_second_network_without_model_is_refused_in_one_line_naming_the_flag(
        two_model_lake: Path, other_checkpoint: Path) -> None:
    before = tree_digest(two_model_lake)
    result = run_cli("ingest", "activations", "--lake", str(two_model_lake), "--preset", "micro", "--checkpoint",
                     str(other_checkpoint), "--layers", "bottleneck", "--sigmas", "2", "--no-progress")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --model: ") and "pass --model NAME" in lines[0], result.stderr
    assert tree_digest(two_model_lake) == before


@pytest.mark.parametrize(("name", "reconstructions", "message"), [
    ("micro", False, "--model micro: .* registers 'micro' as micro-random-seed0"),  # the first model's name, another network
    ("Teacher!", False, "--model: 'Teacher!': not a model name"),
    ("other", True, "--reconstructions: "),  # reconstructions hold the first model's outputs
])
def test_refusals_leave_the_lake_unchanged(two_model_lake: Path, other_checkpoint: Path, name: str, reconstructions: bool,
                                           message: str) -> None:
    before = tree_digest(two_model_lake)
    spec = ModelSpec(preset="micro", checkpoint=str(other_checkpoint), device="cpu", name=name)
    with pytest.raises(InputError, match=message):
        probe_activations(two_model_lake, spec, "bottleneck", "2", reconstructions=reconstructions, progress=False)
    assert tree_digest(two_model_lake) == before


def test_a_network_registered_under_one_name_is_refused_under_another(two_model_lake: Path, inputs: dict[str, Path]) -> None:
    with pytest.raises(InputError, match=r"--model again: this network .* is registered as 'teacher'"):
        probe_activations(two_model_lake, ModelSpec(preset="micro", checkpoint=str(inputs["teacher"]), device="cpu",
                                                    name="again"), "bottleneck", "2", source="real", progress=False)


def test_a_second_model_generates_one_step_samples_into_its_own_tables(two_model_lake: Path, inputs: dict[str, Path],
                                                                         tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(two_model_lake, lake)
    teacher = ModelSpec(preset="micro", checkpoint=str(inputs["teacher"]), device="cpu", name="teacher")
    generate(lake, teacher, 4, seed=0, layers="bottleneck", progress=False)
    opened = open_lake(lake)
    assert opened.generation_layers() == ["enc.8x8_block2", "teacher.enc.8x8_block2"]
    teacher_id = opened.model("teacher").model_id
    made = [parse_sample_id(str(s)) for s in opened.sample_ids()]
    assert sum(s.kind == "gen" and s.model_id == teacher_id for s in made) == 4
    # Several steps: the second model's per-step tables carry its name, as its one-step ones do.
    generate(lake, teacher, 4, seed=1, steps=2, layers="bottleneck", progress=False)
    opened = open_lake(lake)
    [schedule] = opened.schedules()
    assert opened.trajectory_layers(schedule) == ["teacher.enc.8x8_block2"]
    assert opened.attrs(f"trajectories/{schedule}")["model_id"] == teacher_id
    # A trajectories group holds one model: the first model on the same schedule is refused, in one line.
    before = tree_digest(lake)
    with pytest.raises(InputError, match=f"trajectories/{schedule}.*one model per schedule") as caught:
        generate(lake, ModelSpec(preset="micro", device="cpu"), 4, seed=1, steps=2, progress=False)
    assert "\n" not in str(caught.value) and tree_digest(lake) == before


def test_a_lake_made_before_the_registry_registers_its_first_model_when_a_second_arrives(
        legacy_lake: Path, inputs: dict[str, Path], tmp_path: Path) -> None:
    lake = tmp_path / "legacy"
    shutil.copytree(legacy_lake, lake)
    probe_activations(lake, ModelSpec(preset="micro", checkpoint=str(inputs["teacher"]), device="cpu", name="teacher"),
                      "bottleneck", "2", source="real", progress=False)
    opened = open_lake(lake)
    first, teacher = opened.models()
    assert (first.name, first.model_id) == ("tiny", "tiny-random-seed0")  # the legacy lake's model, read off its unprefixed tables
    assert teacher.name == "teacher"
    assert "teacher.enc.8x8_block2" in opened.activation_layers()


def test_an_edit_of_a_second_models_sample_records_and_probes_it_as_that_model(
        two_model_lake: Path, inputs: dict[str, Path], tmp_path: Path) -> None:
    from ingest import edit

    lake = tmp_path / "lake"
    shutil.copytree(two_model_lake, lake)
    teacher = ModelSpec(preset="micro", checkpoint=str(inputs["teacher"]), device="cpu", name="teacher")
    generate(lake, teacher, 2, seed=0, layers="bottleneck", progress=False)
    probe_activations(lake, teacher, "bottleneck", "2", source="all", progress=False)
    teacher_id = open_lake(lake).model("teacher").model_id
    parent = f"gen/{teacher_id}/s0/0"
    made = edit.variations(lake, parent, 2, seed=3, probe="all", device="cpu", progress=False)
    opened = open_lake(lake)
    ids = set(made.sample_ids)
    assert len(ids) == 2
    # Its generation pass is the teacher's: recorded in the teacher's table, never the first model's.
    assert ids <= set(opened.dataset(generation_group("teacher.enc.8x8_block2"))["sample_id"].values.tolist())
    assert not ids & set(opened.dataset(generation_group("enc.8x8_block2"))["sample_id"].values.tolist())
    # Probed by every stored probe model (each under its own name), as `--probe all` promises.
    for layer in ("teacher.enc.8x8_block2", "enc.8x8_block2"):
        assert ids <= set(opened.activations(layer)["sample_id"].values.tolist()), layer
