"""`ingest generate --steps K / --sigmas LIST`: multi-step samples, their trajectories, and the same bits every way."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ingest.cli import main
from ingest.errors import InputError
from ingest.core.sampling import parse_schedule
from lake import open_lake
from lake.layout import schedule_id
from tests.conftest import REPO, tree_digest
from tests.ingest.test_accelerate import generate_single_and_launched
from tests.ingest.test_generate import assert_same as assert_same_groups
from tests.ingest.test_generate import generate, read
from tests.ingest.test_kill import check_no_partial_rows, committed_rows

MODEL = "micro-random-seed0"
LAYERS = ["enc.8x8_block2", "dec.8x8_in0"]  # bottleneck, mid
FOUR = [80.0, 21.3641, 4.19162, 0.5]  # what --steps 4 is documented to give
SCHEDULE = "sigmas80-21.3641-4.19162-0.5"
STEPS = ["--steps", "4", "--layers", "bottleneck,mid"]


def trajectory_groups(schedule: str = SCHEDULE) -> list[str]:
    return [f"trajectories/{schedule}", *(f"trajectories/{schedule}/{layer}" for layer in LAYERS)]


def assert_same(got, ref, rows: slice = slice(None), groups: list[str] | None = None) -> None:
    """Samples and the trajectory tables (or `groups`) identical, row for row (`rows` of the reference)."""
    assert_same_groups(got, ref, rows, groups or ["samples", *trajectory_groups()])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """16 four-step samples with both layers, made in one batch, in a fresh process (see test_generate's)."""
    lake = tmp_path_factory.mktemp("steps") / "reference"
    assert generate(lake, "--num-samples", 16, "--batch-size", 16, *STEPS) == 0
    return lake


def test_steps_4_writes_the_documented_schedule_and_trajectories(reference):
    lake = open_lake(reference)
    assert lake.schedules() == [SCHEDULE] == [schedule_id(FOUR)]
    assert lake.schedule_sigmas(SCHEDULE) == pytest.approx(FOUR, rel=1e-6)
    assert lake.trajectory_layers(SCHEDULE) == sorted(LAYERS)
    assert not lake.groups("generation")  # generation/<layer> is the one-step pass only

    samples = read(reference, "samples")
    model = f"{MODEL}~{SCHEDULE}"
    assert samples.sample_id.values.tolist() == [f"gen/{model}/s0/{i}" for i in range(16)]
    assert set(samples.model_id.values) == {model} and samples.origin.values[5] == f"generator:{model}#5"

    steps = read(reference, f"trajectories/{SCHEDULE}")
    assert steps.x0_hat.dims == ("sample", "sigma", "y", "x", "channel") and steps.x0_hat.dtype == np.uint8
    assert steps.x0_hat.shape == (16, 4, 64, 64, 3)
    assert steps.sample_id.values.tolist() == samples.sample_id.values.tolist()
    assert steps.class_id.values.tolist() == samples.class_id.values.tolist()
    assert steps.attrs["model_id"] == MODEL and steps.attrs["steps"] == 4 and steps.attrs["schedule"] == SCHEDULE
    # The last step's x0_hat is the sample's image; earlier steps are other pictures.
    np.testing.assert_array_equal(steps.x0_hat.values[:, -1], samples.image.values)
    for i in range(3):
        assert np.abs(steps.x0_hat.values[:, i].astype(int) - steps.x0_hat.values[:, i + 1]).mean() > 1, i
    for layer in LAYERS:
        means = read(reference, f"trajectories/{SCHEDULE}/{layer}")
        assert means["mean"].dims == ("sample", "sigma", "channel") and means["mean"].dtype == np.float32
        assert means.sample_id.values.tolist() == samples.sample_id.values.tolist()
        assert np.isfinite(means["mean"].values).all() and means.attrs["layer"] == layer

    [record] = lake.provenance()
    assert record["parameters"]["schedule"] == SCHEDULE and record["parameters"]["steps"] == 4
    assert record["rows_added"] == {"samples": 16, "models": 1, **{g: 16 for g in trajectory_groups()}}  # + the registry row


STEPS_SCRIPT = """
import sys, numpy as np, torch, models
from torch.nn import functional as F
G = models.load_generator("micro", device="cpu").module
layers, sigmas, classes = sys.argv[2].split(","), [float(s) for s in sys.argv[3].split(",")], sys.argv[4].split(",")
indices = range(8, 16)
noises = models.step_noise_batch(0, indices, len(sigmas))
onehot = F.one_hot(torch.tensor([int(c) for c in classes]), G.label_dim).float()
x, images, means = noises[0] * sigmas[0], [], {k: [] for k in layers}
with torch.inference_mode():
    for i, sigma in enumerate(sigmas):
        with models.capture(G, layers) as acts:
            x0 = G(x, torch.full((8,), sigma), onehot)
        images.append(models.to_uint8_nhwc(x0).numpy())
        for k in layers:
            means[k].append(acts[k].float().mean(dim=(2, 3)).numpy())
        if i + 1 < len(sigmas):
            x = x0 + sigmas[i + 1] * noises[i + 1]
np.savez(sys.argv[1], steps=np.stack(images, 1), **{k: np.stack(v, 1) for k, v in means.items()})
"""


def test_steps_and_means_are_the_bare_networks_passes(reference, tmp_path):
    """Block 8..15 recomputed with the network and capture only, in a fresh process like the job's."""
    lake = open_lake(reference)
    sigmas = ",".join(repr(s) for s in lake.schedule_sigmas(SCHEDULE))
    classes = ",".join(str(c) for c in read(reference, "samples").class_id.values[8:16])
    expected = tmp_path / "expected.npz"
    subprocess.run([sys.executable, "-c", STEPS_SCRIPT, str(expected), ",".join(LAYERS), sigmas, classes],
                   cwd=REPO, check=True)
    bare = np.load(expected)
    np.testing.assert_array_equal(read(reference, f"trajectories/{SCHEDULE}").x0_hat.values[8:16], bare["steps"])
    for layer in LAYERS:
        np.testing.assert_array_equal(read(reference, f"trajectories/{SCHEDULE}/{layer}")["mean"].values[8:16],
                                      bare[layer], err_msg=layer)


def test_one_step_flags_are_todays_lake_bit_for_bit(tmp_path):
    # In this process, one run after another: the three compared lakes share its thread settings (no other
    # process's bits are compared here), which saves three interpreter start-ups.
    plain, steps, sigmas = tmp_path / "plain", tmp_path / "steps1", tmp_path / "sigmas80"
    common = ["--num-samples", "8", "--layers", "bottleneck"]

    def generate_here(lake, *args: str) -> int:
        return main(["generate", "--lake", str(lake), "--preset", "micro", "--device", "cpu", "--no-progress", *args])

    assert generate_here(plain, *common) == 0
    assert generate_here(steps, *common, "--steps", "1") == 0
    assert generate_here(sigmas, *common, "--sigmas", "80") == 0
    for lake in (steps, sigmas):
        assert not open_lake(lake).groups("trajectories") and open_lake(lake).schedules() == []
        for group in ("samples", "generation/enc.8x8_block2"):
            assert tree_digest(lake / group) == tree_digest(plain / group), (lake.name, group)
    assert read(plain, "samples").sample_id.values[0] == f"gen/{MODEL}/s0/0"


def test_resume_with_more_samples_and_layers_added_later_gives_the_same_bits(reference, tmp_path):
    resumed = tmp_path / "resumed"
    # 8 first, without layers; then 16 with them: the rerun makes samples 8..15 and the per-step
    # means of all 16 (0..7 recomputed for their means only), every row as the one-run reference.
    assert generate(resumed, "--num-samples", 8, "--batch-size", 4, "--steps", "4") == 0
    assert open_lake(resumed).trajectory_layers(SCHEDULE) == []
    assert generate(resumed, "--num-samples", 16, "--batch-size", 16, *STEPS) == 0
    first, second = sorted((r["started"], r["rows_added"]) for r in open_lake(resumed).provenance())
    assert first[1] == {"samples": 8, "models": 1, f"trajectories/{SCHEDULE}": 8}  # the first run registers the model
    assert second[1] == {"samples": 8, f"trajectories/{SCHEDULE}": 8, **{g: 16 for g in trajectory_groups()[1:]}}
    for group in trajectory_groups()[1:]:  # appended in the rerun's order: 0..15
        np.testing.assert_array_equal(read(resumed, group).sample_id.values, read(reference, group).sample_id.values)
    assert_same(resumed, reference)


def test_kill_minus_9_then_rerun_is_identical(reference, tmp_path):
    """Killed after its first batch of 8, rerun: the reference's bits, which it made in one batch of 16.

    Every row here is made in batches of 8 (the killed run's first, the rerun's second), so this
    also proves another batch size gives the same bits (it replaces a separate uninterrupted
    --batch-size 8 run, one job process less).
    """
    lake = tmp_path / "lake"
    args = [sys.executable, "-m", "ingest", "generate", "--lake", str(lake), "--preset", "micro", "--device", "cpu",
            "--no-progress", "--num-samples", "16", "--batch-size", "8", *STEPS]
    process = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while process.poll() is None and committed_rows(lake) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.poll() is None, "the job finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    check_no_partial_rows(lake)
    seen = committed_rows(lake)
    assert seen == 8
    # Whole batches are visible: the samples and every trajectory table, committed together.
    for group in trajectory_groups():
        assert read(lake, group).sizes["sample"] == seen, group

    subprocess.run(args, cwd=REPO, check=True, capture_output=True)
    assert_same(lake, reference)


def test_one_step_and_four_step_samples_of_a_seed_are_different_samples(reference, tmp_path):
    lake = tmp_path / "lake"
    shutil.copytree(reference, lake)  # 16 four-step samples; now the one-step ones of the same seed
    assert generate(lake, "--num-samples", 16, "--layers", "bottleneck,mid") == 0
    samples = read(lake, "samples")
    ids = samples.sample_id.values.tolist()
    assert ids[:16] == [f"gen/{MODEL}~{SCHEDULE}/s0/{i}" for i in range(16)]
    assert ids[16:] == [f"gen/{MODEL}/s0/{i}" for i in range(16)]
    assert samples.seed.values.tolist() == [0] * 32 and set(samples.model_id.values[16:]) == {MODEL}
    assert samples.class_id.values[:16].tolist() == samples.class_id.values[16:].tolist()
    assert (samples.image.values[:16] != samples.image.values[16:]).any(axis=(1, 2, 3)).all()
    # Both share step 0, the sigma-80 pass on the same noise: the four-step run begins with the one-step sample.
    steps = read(lake, f"trajectories/{SCHEDULE}").x0_hat.values
    np.testing.assert_array_equal(steps[:, 0], samples.image.values[16:])
    for layer in LAYERS:
        np.testing.assert_array_equal(read(lake, f"trajectories/{SCHEDULE}/{layer}")["mean"].values[:, 0],
                                      read(lake, f"generation/{layer}")["mean"].values, err_msg=layer)
    assert_same(lake, reference, groups=trajectory_groups())  # the one-step run touched no trajectory


@pytest.mark.parametrize(
    ("args", "flag", "says"),
    [
        (["--sigmas", "80,20,20,1"], "--sigmas", "strictly decreasing"),
        (["--sigmas", "5,20"], "--sigmas", "strictly decreasing"),
        (["--sigmas", "80,0"], "--sigmas", "positive"),
        (["--sigmas", "80,-2"], "--sigmas", "positive"),
        (["--sigmas", "100,20"], "--sigmas", "(0, 80]"),
        (["--sigmas", "80,nan"], "--sigmas", "positive and finite"),
        (["--sigmas", ""], "--sigmas", "at least one"),
        (["--sigmas", " , "], "--sigmas", "at least one"),
        (["--sigmas", "80,ten"], "--sigmas", "not a number"),
        (["--steps", "0"], "--steps", "positive integer"),
        (["--steps", "-3"], "--steps", "positive integer"),
        (["--steps", "four"], "--steps", "positive integer"),
        (["--steps", "4", "--sigmas", "80,20"], "--steps and --sigmas", "not both"),
    ],
)
def test_bad_schedules_fail_in_one_line_before_touching_the_lake(tmp_path, capsys, args, flag, says):
    lake = tmp_path / "lake"
    assert main(["generate", "--lake", str(lake), "--preset", "micro", "--device", "cpu", "--no-progress",
                 "--num-samples", "4", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err and says in err, err
    assert not lake.exists()


def test_a_bad_schedule_leaves_an_existing_lake_unchanged(reference, tmp_path, capsys):
    lake = tmp_path / "lake"
    shutil.copytree(reference, lake)
    before = tree_digest(lake)
    for bad in (["--sigmas", "80,80"], ["--steps", "0"], ["--sigmas", "90,20"]):
        assert main(["generate", "--lake", str(lake), "--preset", "micro", "--device", "cpu", "--no-progress",
                     "--num-samples", "24", "--layers", "bottleneck,mid", *bad]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and bad[0] in err, err
        assert tree_digest(lake) == before


def test_parse_schedule_canonicalises_to_the_id():
    assert parse_schedule() == (80.0,) == parse_schedule(steps=1) == parse_schedule(sigmas="80")
    four = parse_schedule(steps=4)
    assert schedule_id(four) == SCHEDULE and four == parse_schedule(sigmas=SCHEDULE.removeprefix("sigmas").replace("-", ","))
    assert parse_schedule(sigmas=[80, 20, 5, 1.5]) == (80.0, 20.0, 5.0, 1.5)
    # Values that print alike are one sigma: a "decreasing" list that collapses is refused.
    with pytest.raises(InputError, match="strictly decreasing"):
        parse_schedule(sigmas="5.0000001,5")


def test_trajectory_group_of_another_model_or_schedule_is_refused(tmp_path):
    from ingest.activation_store import open_trajectory_layer_table, open_trajectory_table
    from lake import LakeWriter, Provenance
    from lake.layout import LayerShape

    lake = tmp_path / "lake"
    sigmas = [80.0, 20.0]
    with LakeWriter.open(lake, Provenance(job="test")) as writer:
        open_trajectory_table(writer, "sigmas80-20", sigmas, {"model_id": "a"})
        open_trajectory_layer_table(writer, "sigmas80-20", "mid", LayerShape(4, 8, 8), sigmas, {"model_id": "a"})
    before = tree_digest(lake)
    cases = [
        (lambda w: open_trajectory_table(w, "sigmas80-20", sigmas, {"model_id": "b"}), "model_id"),
        (lambda w: open_trajectory_layer_table(w, "sigmas80-20", "mid", LayerShape(4, 8, 8), sigmas,
                                               {"model_id": "b"}), "model_id"),
        (lambda w: open_trajectory_table(w, "sigmas80-20", [80.0, 21.0], {"model_id": "a"}), "sigmas"),
        (lambda w: open_trajectory_layer_table(w, "sigmas80-20", "mid", LayerShape(4, 8, 8), [80.0, 21.0],
                                               {"model_id": "a"}), "sigmas"),
        (lambda w: open_trajectory_layer_table(w, "sigmas80-20", "mid", LayerShape(6, 8, 8), sigmas,
                                               {"model_id": "a"}), "channels"),
    ]
    for open_it, says in cases:
        with pytest.raises(InputError, match=says) as caught, LakeWriter.open(lake, Provenance(job="test")) as writer:
            open_it(writer)
        assert "trajectories/sigmas80-20" in str(caught.value) and "\n" not in str(caught.value)
        assert tree_digest(lake) == before


def test_two_processes_write_the_same_trajectories_as_one(tmp_path):
    """accelerate launch with two CPU processes gathers the per-step arrays like the one-step ones."""
    # 20 samples: three blocks over two ranks, so the second write pads rank 1 (index -1). tiny: see test_accelerate.ARGS.
    args = ["--preset", "tiny", "--device", "cpu", "--no-progress", "--num-samples", "20", "--batch-size", "16",
            "--layers", "bottleneck", "--steps", "2"]
    single, multi = generate_single_and_launched(tmp_path, args)
    [record] = open_lake(multi).provenance()
    assert record["parameters"]["processes"] == 2
    schedule = open_lake(single).schedules()[0]
    groups = ["samples", f"trajectories/{schedule}", f"trajectories/{schedule}/enc.8x8_block2"]
    for group in groups:
        assert read(multi, group).sizes["sample"] == 20, group
    assert_same(multi, single, groups=groups)
