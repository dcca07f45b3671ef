"""`ingest generate --sampler heun`: a second model's samples with EDM's Heun sampler (how DMD2's teacher
samples), their trajectories, the network's own numbers, and the same bits however the run is cut."""
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
from ingest.demo_data import build_demo_teacher
from ingest.errors import InputError
from ingest.core.sampling import parse_sampling
from lake import open_lake
from lake.layout import HeunSchedule, parse_model_id
from tests.conftest import REPO, tree_digest
from tests.ingest.test_generate import assert_same, read
from tests.ingest.test_kill import check_no_partial_rows

TEACHER = "teacher"
LAYER = "enc.8x8_block2"  # bottleneck
SCHEDULE = "heun4"
HEUN = ["--model", TEACHER, "--sampler", "heun", "--steps", "4", "--layers", "bottleneck", "--samples-per-class", "4",
        "--classes", "1,7"]
GROUPS = ["samples", f"trajectories/{SCHEDULE}", f"trajectories/{SCHEDULE}/{TEACHER}.{LAYER}"]


def heun_args(lake, checkpoint, *extra) -> list[str]:
    return ["generate", "--lake", str(lake), "--preset", "micro", "--device", "cpu", "--no-progress",
            "--checkpoint", str(checkpoint), *HEUN, *map(str, extra)]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A lake whose first model is the micro generator (4 one-step samples), and the teacher's checkpoint."""
    root = tmp_path_factory.mktemp("heun")
    # in this process: its rows are copied as they are into every lake compared (no bits compared across runs)
    assert main(["generate", "--lake", str(root / "base"), "--preset", "micro", "--device", "cpu", "--no-progress",
                 "--num-samples", "4"]) == 0
    return root / "base", build_demo_teacher(root)


@pytest.fixture(scope="module")
def reference(base, tmp_path_factory):
    """16 Heun samples of the teacher in one batch of 16, in a fresh process (as the runs compared with it)."""
    lake = tmp_path_factory.mktemp("heun-ref") / "lake"
    shutil.copytree(base[0], lake)
    result = subprocess.run([sys.executable, "-m", "ingest", *heun_args(lake, base[1], "--num-samples", 16,
                                                                        "--batch-size", 16)],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return lake


def teacher_rows(lake):
    samples = read(lake, "samples")
    return samples.isel(sample=[row for row, sample_id in enumerate(samples.sample_id.values.tolist()) if "~heun" in sample_id])


def test_heun_samples_are_the_teachers_with_their_schedule_and_trajectories(reference, base):
    from models.heun import HeunConfig

    lake = open_lake(reference)
    assert lake.schedules() == [SCHEDULE]
    sigmas = HeunConfig(steps=4).step_sigmas()
    assert sigmas[0] == 80 and sigmas[-1] == pytest.approx(0.002)
    assert lake.schedule_sigmas(SCHEDULE) == pytest.approx(sigmas, rel=1e-6)
    assert lake.trajectory_layers(SCHEDULE) == [f"{TEACHER}.{LAYER}"]  # a second model's layer, named as everywhere

    rows = teacher_rows(reference)
    model = rows.model_id.values[0]
    parts = parse_model_id(model)
    assert parts.heun == HeunSchedule(4) and parts.weights == "checkpoint" and parts.schedule == ()
    assert rows.sample_id.values.tolist() == [f"gen/{model}/s0/{i}" for i in range(16)]
    assert rows.class_id.values.tolist() == [1] * 4 + [7] * 4 + [1] * 4 + [7] * 4
    assert [r.name for r in lake.models()] == ["micro", TEACHER]
    # the first model's one-step samples are untouched; the teacher's trajectories hold only its rows
    assert read(reference, "samples").sample_id.values[:4].tolist() == [f"gen/micro-random-seed0/s0/{i}" for i in range(4)]
    trajectory = read(reference, f"trajectories/{SCHEDULE}")
    assert trajectory.sample_id.values.tolist() == rows.sample_id.values.tolist()
    assert trajectory.x0_hat.shape == (16, 4, 64, 64, 3)
    np.testing.assert_array_equal(trajectory.x0_hat.values[:, -1], rows.image.values)  # last x0_hat is the image


BARE_SCRIPT = """
import sys
import numpy as np, torch
import models
from models import build_generator
from models.heun import HeunConfig, heun_steps
out, checkpoint, layer, classes = sys.argv[1], sys.argv[2], sys.argv[3], [int(c) for c in sys.argv[4].split(",")]
G = build_generator("micro")
G.load_state_dict(torch.load(checkpoint, weights_only=True))
G.eval()
images, means, final = [], [], None
with torch.inference_mode(), models.capture(G, [layer]) as acts:
    for step in heun_steps(G, 0, range(8, 16), classes, HeunConfig(steps=4)):
        images.append(models.to_uint8_nhwc(step.denoised.float()).numpy())
        means.append(acts[layer].float().mean(dim=(2, 3)).numpy())
        final = step.image
np.savez(out, steps=np.stack(images, 1), means=np.stack(means, 1), image=models.to_uint8_nhwc(final.float()).numpy())
"""


def test_images_steps_and_means_are_the_bare_networks_heun_passes(reference, base, tmp_path):
    """Block 8..15 sampled with `models.heun` and capture alone, in a fresh process like the job's."""
    rows = teacher_rows(reference).isel(sample=slice(8, 16))
    expected = tmp_path / "expected.npz"
    subprocess.run([sys.executable, "-c", BARE_SCRIPT, str(expected), str(base[1]), LAYER,
                    ",".join(str(c) for c in rows.class_id.values)], cwd=REPO, check=True)
    bare = np.load(expected)
    np.testing.assert_array_equal(rows.image.values, bare["image"])
    np.testing.assert_array_equal(read(reference, f"trajectories/{SCHEDULE}").x0_hat.values[8:16], bare["steps"])
    np.testing.assert_array_equal(read(reference, GROUPS[2])["mean"].values[8:16], bare["means"])


def test_kill_minus_9_then_rerun_is_identical(reference, base, tmp_path):
    """Killed after its first batch of 8, rerun: the reference's bits, made in one batch of 16 (so another
    batch size gives the same bits too)."""
    lake = tmp_path / "lake"
    shutil.copytree(base[0], lake)
    command = [sys.executable, "-m", "ingest", *heun_args(lake, base[1], "--num-samples", 16, "--batch-size", 8)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while process.poll() is None and len(open_lake(lake).schedules()) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.poll() is None, "the job finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    check_no_partial_rows(lake)
    seen = read(lake, f"trajectories/{SCHEDULE}").sizes["sample"]
    assert seen == 8 and teacher_rows(lake).sizes["sample"] == 8  # whole batches, samples and steps together

    subprocess.run(command, cwd=REPO, check=True, capture_output=True)
    assert_same(lake, reference, groups=GROUPS)


def test_churn_is_edms_stochastic_sampler_under_its_own_schedule_id():
    sampling = parse_sampling("heun", "4", None, 40)
    assert sampling.schedule == "heun4-churn40" and sampling.heun == HeunSchedule(4, 40.0)
    assert sampling.model_id("micro-random-seed0") == "micro-random-seed0~heun4-churn40"
    gamma = min(40 / 4, 2 ** 0.5 - 1)
    deterministic = parse_sampling("heun", "4").sigmas
    # churn raises the sigma of the steps inside [S_min 0.05, S_max 50] only: 80 is above S_max, 0.002 below S_min
    assert sampling.sigmas[0] == deterministic[0] == 80 and sampling.sigmas[-1] == deterministic[-1]
    assert sampling.sigmas[1:3] == pytest.approx([s * (1 + gamma) for s in deterministic[1:3]], rel=1e-6)
    assert parse_sampling("heun").heun == HeunSchedule(18)  # EDM's deterministic default
    assert parse_sampling().schedule == "sigmas80" and parse_sampling().heun is None


@pytest.mark.parametrize(("args", "says"), [
    (["--churn", "40"], "--churn is EDM's Heun sampler's: add --sampler heun"),
    (["--sampler", "heun", "--sigmas", "80,2"], "--sigmas: --sampler heun samples on EDM's Karras schedule"),
    (["--sampler", "heun", "--steps", "0"], "--steps must be a positive integer, got 0"),
    (["--sampler", "heun", "--churn", "-1"], "--churn must be a non-negative number, got -1"),
])
def test_bad_sampler_flags_fail_in_one_line_before_touching_the_lake(base, tmp_path, capsys, args, says):
    lake = tmp_path / "lake"
    shutil.copytree(base[0], lake)
    before = tree_digest(lake)
    assert main(["generate", "--lake", str(lake), "--preset", "micro", "--device", "cpu", "--no-progress",
                 "--num-samples", "2", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and "\n" not in err
    assert tree_digest(lake) == before


def test_edits_refuse_a_heun_sample_in_one_line(reference):
    from ingest.edit.parents import schedule_of

    model = teacher_rows(reference).model_id.values[0]
    with pytest.raises(InputError, match="EDM's Heun sampler, which edits do not replay") as caught:
        schedule_of(model)
    assert "\n" not in str(caught.value)
