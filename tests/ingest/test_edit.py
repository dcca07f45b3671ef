"""Edit jobs (`python -m ingest edit ...`, ingest/edit.py) on a small real lake of the micro preset.

Regenerate reproduces stored images bit for bit (one step and --steps 4) and reports a
tampered one; a neighbour blend of a sample with itself is that sample; variations and class
swaps are functions of their seeds, not of N or the other classes asked for; interpolation
ends are the parents; what is written (samples, lineage, generation means, probes of only the
new samples, provenance) is complete; kill -9 leaves the lake as before and a rerun finishes
without duplicates; refused inputs leave the lake unchanged.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

import models
from ingest import edit
from ingest.activations import probe_activations
from ingest.errors import InputError
from ingest.generate import generate
from ingest.pipeline import SampleBatch, SampleSink
from ingest.core.models import ModelSpec
from ingest.core import reconstruct_sample
from lake import LakeWriter, Provenance, open_lake
from lake.layout import SAMPLES_GROUP
from tests.conftest import REPO, photo_like_images, run_cli, tree_digest

SPEC = ModelSpec(preset="micro", device="cpu")
ONE = [f"gen/micro-random-seed0/s0/{i}" for i in range(8)]  # classes 1,1,1,1,2,2,2,2
MULTI = "gen/micro-random-seed0~sigmas80-21.3641-4.19162-0.5/s1/1"
REAL = [f"real/{i}" for i in range(4)]
BOTTLENECK = "enc.8x8_block2"


@pytest.fixture(scope="module")
def base_lake(tmp_path_factory):
    """4 real samples, 8 one-step samples (generation means at the bottleneck), all probed at sigma 2 and 80,
    then 2 samples of a 4-step schedule, not probed."""
    lake = tmp_path_factory.mktemp("edit") / "lake"
    with LakeWriter.open(lake, Provenance(job="test")) as writer:
        SampleSink(writer).write(SampleBatch(images=photo_like_images(4, 3), sample_ids=REAL,
                                             class_ids=np.array([1, 2, 3, 4]), origins=["test"] * 4, source="real",
                                             split="val"))
    generate(lake, SPEC, 8, seed=0, samples_per_class=4, classes="1,2", layers="bottleneck", progress=False)
    probe_activations(lake, SPEC, "bottleneck", [2.0, 80.0], progress=False)
    generate(lake, SPEC, 2, seed=1, steps=4, progress=False)
    return lake


@pytest.fixture
def lake(base_lake, tmp_path):
    """A fresh copy for a test that writes."""
    shutil.copytree(base_lake, tmp_path / "lake")
    return tmp_path / "lake"


@pytest.fixture(scope="module")
def generator():
    return models.build_generator("micro", seed=0)


def stored_image(lake, sample_id: str) -> np.ndarray:
    handle = open_lake(lake)
    row = int(np.flatnonzero(handle.sample_ids() == sample_id)[0])
    return handle.images([row])[0]


def images_of(lake, ids) -> np.ndarray:
    return np.stack([stored_image(lake, sample_id) for sample_id in ids])


def alone(generator, seed: int, index: int, class_id: int) -> np.ndarray:
    """A one-step sample generated in a pass of its own (the way edits compute their samples)."""
    noise = models.sample_noise(seed, index)[None]
    return models.one_step_generate(generator, noise, [class_id])[0].numpy()


def close_to(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to the low bits a different batch composition changes: at most one uint8 level, rarely."""
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return int(diff.max()) <= 1 and float((diff > 0).mean()) < 0.01


# --------------------------------------------------------------------------- regenerate


def test_regenerate_reproduces_one_and_multi_step_samples_bit_for_bit(lake):
    before = len(open_lake(lake).sample_ids())
    results = edit.regenerate(lake, [ONE[5], MULTI], device="cpu")
    assert [r.match for r in results] == [True, True], [r.message() for r in results]
    handle = open_lake(lake)
    assert len(handle.sample_ids()) == before  # no sample written
    record = handle.provenance()[-1]
    assert record["job"] == "ingest edit regenerate" and record["status"] == "complete"
    assert [r["sample_id"] for r in record["parameters"]["results"]] == [ONE[5], MULTI]
    assert all(r["match"] for r in record["parameters"]["results"])


def test_regenerate_reports_a_tampered_image(lake):
    import zarr

    row = int(np.flatnonzero(open_lake(lake).sample_ids() == ONE[2])[0])
    images = zarr.open_array(str(lake / "samples" / "image"), mode="r+")
    tampered = images[row]
    tampered[10, 20, 1] ^= 4
    images[row] = tampered
    result = run_cli("ingest", "edit", "regenerate", "--lake", str(lake), "--from", ONE[2], "--device", "cpu")
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"regenerate {ONE[2]}: mismatch: 1 of 12288 pixel values differ from the stored image "
                     "(max |difference| 4)"]
    outcome = open_lake(lake).provenance()[-1]["parameters"]["results"][0]
    assert outcome["match"] is False and outcome["pixel_values_differing"] == 1


# --------------------------------------------------------------------------- neighbours


def test_neighbours_with_a_sample_alone_reproduces_it(lake, generator):
    outcome = edit.neighbours(lake, [ONE[1]], "bottleneck", probe="none", device="cpu", progress=False)
    (sample_id,) = outcome.sample_ids
    image = stored_image(lake, sample_id)
    # Replacing the bottleneck by the sample's own map changes nothing: the image of its own pass...
    assert np.array_equal(image, alone(generator, 0, 1, 1))
    # ...which is the stored parent up to the low bits its 8-sample block changes.
    assert close_to(image, stored_image(lake, ONE[1]))
    gen = open_lake(lake).dataset(f"generation/{BOTTLENECK}")
    means = gen["mean"].values[[gen.sample_id.values.tolist().index(s) for s in (sample_id, ONE[1])]]
    np.testing.assert_allclose(means[0], means[1], atol=1e-5)


def test_a_blend_moves_the_sample_and_a_masked_one_moves_it_less(lake, generator):
    mask = np.zeros((8, 8), dtype=bool)
    mask[2:6, 2:6] = True
    text = "".join("1" if v else "0" for v in mask.ravel())
    whole = edit.neighbours(lake, [ONE[0], ONE[6], REAL[0]], "bottleneck", sigma=2, probe="none", device="cpu",
                            progress=False)
    masked = edit.neighbours(lake, [ONE[0], ONE[6], REAL[0]], "bottleneck", sigma=2, mask=text, channels="0,3",
                             probe="none", device="cpu", progress=False)
    parent = alone(generator, 0, 0, 1).astype(np.int64)
    blend, partial = stored_image(lake, whole.sample_ids[0]), stored_image(lake, masked.sample_ids[0])
    # (Which cells a masked replacement touches is tests/models/test_replace.py's; here the whole job.)
    moved, moved_less = np.abs(blend - parent).sum(), np.abs(partial - parent).sum()
    assert moved > moved_less > 0
    assert whole.sample_ids != masked.sample_ids  # mask and channels are part of the edit's identity


# --------------------------------------------------------------------------- variations and class swap


def test_variations_are_a_function_of_seed_and_index_not_of_n(base_lake, tmp_path):
    small, large = tmp_path / "small", tmp_path / "large"
    shutil.copytree(base_lake, small)
    shutil.copytree(base_lake, large)
    three = edit.variations(small, ONE[3], 3, seed=5, probe="none", device="cpu", progress=False)
    ten = edit.variations(large, ONE[3], 10, seed=5, probe="none", device="cpu", progress=False)
    assert three.sample_ids == ten.sample_ids[:3] and three.added == 3 and ten.added == 10
    assert np.array_equal(images_of(small, three.sample_ids), images_of(large, three.sample_ids))
    images = images_of(large, ten.sample_ids)
    assert len({image.tobytes() for image in images}) == 10  # ten different draws
    handle = open_lake(large)
    rows = np.flatnonzero(np.isin(handle.sample_ids(), ten.sample_ids))
    assert set(handle.column(SAMPLES_GROUP, "class_id", rows).tolist()) == {1}  # the parent's class
    assert set(handle.column(SAMPLES_GROUP, "seed", rows).tolist()) == {5}
    # The same edit again adds nothing; a larger N adds only the difference; another seed other draws.
    assert edit.variations(small, ONE[3], 3, seed=5, probe="none", device="cpu", progress=False).added == 0
    more = edit.variations(small, ONE[3], 5, seed=5, probe="none", device="cpu", progress=False)
    assert more.added == 2 and more.sample_ids == ten.sample_ids[:5]
    other = edit.variations(small, ONE[3], 1, seed=6, probe="none", device="cpu", progress=False)
    assert not np.array_equal(stored_image(small, other.sample_ids[0]), images[0])
    ids = open_lake(small).sample_ids().tolist()
    assert len(ids) == len(set(ids))


def test_variations_of_a_multi_step_sample_use_its_schedule(lake):
    outcome = edit.variations(lake, MULTI, 2, seed=1, probe="none", device="cpu", progress=False)
    handle = open_lake(lake)
    rows = np.flatnonzero(np.isin(handle.sample_ids(), outcome.sample_ids))
    assert set(handle.column(SAMPLES_GROUP, "model_id", rows).tolist()) == {"micro-random-seed0~sigmas80-21.3641-4.19162-0.5"}


def test_variations_of_a_real_sample_are_its_class_by_the_probe_model(lake):
    outcome = edit.variations(lake, REAL[2], 2, seed=3, probe="none", device="cpu", progress=False)
    handle = open_lake(lake)
    rows = np.flatnonzero(np.isin(handle.sample_ids(), outcome.sample_ids))
    assert handle.column(SAMPLES_GROUP, "class_id", rows).tolist() == [3, 3]
    assert set(handle.column(SAMPLES_GROUP, "model_id", rows).tolist()) == {"micro-random-seed0"}


def test_class_swap_is_the_parent_noise_with_each_class_alone(base_lake, tmp_path, generator):
    both, one = tmp_path / "both", tmp_path / "one"
    shutil.copytree(base_lake, both)
    shutil.copytree(base_lake, one)
    swapped = edit.class_swap(both, ONE[4], "7,goldfish", probe="none", device="cpu", progress=False)
    single = edit.class_swap(one, ONE[4], [7], probe="none", device="cpu", progress=False)
    assert swapped.sample_ids[0] == single.sample_ids[0] and swapped.sample_ids[0].endswith("/7")
    assert np.array_equal(stored_image(both, swapped.sample_ids[0]), stored_image(one, single.sample_ids[0]))
    noise = models.sample_noise(0, 4)[None]
    assert np.array_equal(stored_image(both, swapped.sample_ids[0]), models.one_step_generate(generator, noise, [7])[0].numpy())
    assert np.array_equal(stored_image(both, swapped.sample_ids[1]), models.one_step_generate(generator, noise, [1])[0].numpy())
    handle = open_lake(both)
    rows = np.flatnonzero(np.isin(handle.sample_ids(), swapped.sample_ids))
    assert handle.column(SAMPLES_GROUP, "class_id", rows).tolist() == [7, 1]


def test_class_swap_of_a_multi_step_sample_back_to_its_class_is_the_sample(lake):
    outcome = edit.class_swap(lake, MULTI, [int(open_lake(lake).column(SAMPLES_GROUP, "class_id")[-1])],
                              probe="none", device="cpu", progress=False)
    assert close_to(stored_image(lake, outcome.sample_ids[0]), stored_image(lake, MULTI))


# --------------------------------------------------------------------------- interpolate


def test_interpolate_ends_are_the_parents(lake, generator):
    outcome = edit.interpolate(lake, [ONE[0], ONE[7]], 4, probe="none", device="cpu", progress=False)
    images = images_of(lake, outcome.sample_ids)
    assert np.array_equal(images[0], alone(generator, 0, 0, 1)) and np.array_equal(images[-1], alone(generator, 0, 7, 2))
    assert close_to(images[0], stored_image(lake, ONE[0])) and close_to(images[-1], stored_image(lake, ONE[7]))
    assert not np.array_equal(images[1], images[0]) and not np.array_equal(images[2], images[-1])
    lineage = open_lake(lake).lineage()
    np.testing.assert_allclose(lineage.weight.values, [0, 1 / 3, 2 / 3, 1], rtol=1e-6)
    assert lineage.class_id.values.tolist() == [1, 1, 2, 2]  # the nearer parent's class
    assert set(lineage.parent_ids.values.tolist()) == {f"{ONE[0]},{ONE[7]}"}


def test_slerp_is_exact_at_the_ends_and_keeps_the_norm():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 3, 64, 64), dtype=np.float32)
    assert np.array_equal(edit.slerp(a, b, 0.0), a) and np.array_equal(edit.slerp(a, b, 1.0), b)
    middle = edit.slerp(a, b, 0.5)
    assert abs(np.linalg.norm(middle) / np.linalg.norm(a) - 1) < 0.02  # a linear mix would shrink it by ~30%


# --------------------------------------------------------------------------- what is written


def test_lineage_samples_probes_and_provenance_are_complete(lake):
    before = open_lake(lake)
    probed_before = int(before.activations(BOTTLENECK).probed.values.sum())
    mask = "0" * 32 + "1" * 32
    outcome = edit.neighbours(lake, [ONE[2], ONE[5], REAL[1]], "bottleneck", sigma=2, mask=mask, channels="4,1",
                              device="cpu", progress=False)
    (sample_id,) = outcome.sample_ids
    handle = open_lake(lake)
    row = int(np.flatnonzero(handle.sample_ids() == sample_id)[0])
    column = lambda name: handle.column(SAMPLES_GROUP, name, [row])[0]  # noqa: E731
    assert (column("source"), column("split"), column("origin"), int(column("seed")), column("model_id"),
            int(column("class_id"))) == ("generated", "edited", "edit:neighbours", -1, "micro-random-seed0", 1)
    lineage = handle.lineage()
    got = {name: np.asarray(lineage[name].values[0]).item() for name in
           ("sample_id", "operation", "parent_ids", "layer", "mask", "channels", "sigma", "weight", "edit_seed",
            "class_id", "run_id")}
    assert got["sample_id"] == sample_id and got["operation"] == "neighbours"
    assert got["parent_ids"] == f"{ONE[2]},{ONE[5]},{REAL[1]}"
    assert (got["layer"], got["mask"], got["channels"], got["sigma"]) == (BOTTLENECK, mask, "1,4", 2.0)
    assert np.isnan(got["weight"]) and got["edit_seed"] == -1 and got["class_id"] == 1
    record = next(r for r in handle.provenance() if r["run_id"] == got["run_id"])
    assert record["job"] == "ingest edit neighbours" and record["status"] == "complete"
    params = record["parameters"]
    assert params["parents"] == [ONE[2], ONE[5], REAL[1]] and params["sample_ids"] == [sample_id]
    assert (params["layer"], params["mask"], params["channels"], params["sigma"]) == (BOTTLENECK, mask, "1,4", 2.0)
    assert params["model_id"] == "micro-random-seed0" and params["noise_seed"] == 0
    gen = handle.dataset(f"generation/{BOTTLENECK}")
    assert sample_id in gen.sample_id.values.tolist()
    # Probed at every sigma of the lake, and only the new sample: the multi-step ones stay unprobed.
    acts = handle.activations(BOTTLENECK)
    ids = acts.sample_id.values.tolist()
    assert acts.probed.values[ids.index(sample_id)].all()
    assert MULTI not in ids and acts.probed.values.sum() == probed_before + 2


def test_from_real_is_the_probe_reconstruction(lake):
    outcome = edit.from_real(lake, [REAL[2]], 10, probe="none", device="cpu", progress=False)
    expected = reconstruct_sample(lake, REAL[2], [10.0], device="cpu").x0_hat[0]
    assert np.array_equal(stored_image(lake, outcome.sample_ids[0]), expected)
    lineage = open_lake(lake).lineage()
    assert lineage.operation.values.tolist() == ["from_real"] and float(lineage.sigma.values[0]) == 10.0


# --------------------------------------------------------------------------- refusals and crashes


@pytest.mark.parametrize("call, message", [
    (lambda L: edit.variations(L, "gen/nope/s0/1", 2), "no sample 'gen/nope/s0/1'"),
    (lambda L: edit.variations(L, ONE[0], 65), "--n must be an integer in 1..64"),
    (lambda L: edit.variations(L, ONE[0], 0), "--n must be an integer in 1..64"),
    (lambda L: edit.variations(L, ONE[0], 2, probe="mid@sigma2"), "no activations/dec.8x8_in0"),
    (lambda L: edit.variations(L, ONE[0], 2, probe=f"{BOTTLENECK}@sigma3"), "holds sigmas 2, 80"),
    (lambda L: edit.interpolate(L, [ONE[0]], 3), "exactly two"),
    (lambda L: edit.interpolate(L, [ONE[0], REAL[0]], 3), "needs a generated sample"),
    (lambda L: edit.interpolate(L, [ONE[0], MULTI], 3), "different models or schedules"),
    (lambda L: edit.class_swap(L, REAL[0], "3"), "needs a generated sample"),
    (lambda L: edit.class_swap(L, ONE[0], "not-a-class"), "--class"),
    (lambda L: edit.neighbours(L, [ONE[0]], "nope"), "unknown layer 'nope'; valid layers: enc.64x64_conv"),
    (lambda L: edit.neighbours(L, [ONE[0]], "bottleneck", mask="01" * 16), "expected 64 characters"),
    (lambda L: edit.neighbours(L, [ONE[0]], "bottleneck", mask="2" * 64), "characters '2'"),
    (lambda L: edit.neighbours(L, [ONE[0]], "bottleneck", channels="128"), "128 is out of range"),
    (lambda L: edit.neighbours(L, [ONE[0], REAL[0]], "bottleneck"), "--sigma is required"),
    (lambda L: edit.neighbours(L, [REAL[0], ONE[0]], "bottleneck", sigma=2), "first sample"),
    (lambda L: edit.from_real(L, [ONE[0]], 10), "needs a real sample"),
    (lambda L: edit.from_real(L, [REAL[0]], 81), "--sigma must lie in (0, 80]"),
    (lambda L: edit.regenerate(L, [REAL[0]]), "needs a generated sample"),
])
def test_refused_inputs_leave_the_lake_unchanged(base_lake, call, message):
    before = tree_digest(base_lake)
    with pytest.raises(InputError, match=None) as caught:
        call(base_lake)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert tree_digest(base_lake) == before


def test_the_cli_refuses_with_one_line_and_status_2(base_lake):
    before = tree_digest(base_lake)
    result = run_cli("ingest", "edit", "variations", "--lake", str(base_lake), "--from", ONE[0], "--n", "100")
    assert result.returncode == 2 and result.stderr.strip() == "error: --n must be an integer in 1..64, got 100"
    assert tree_digest(base_lake) == before
    help_text = run_cli("ingest", "edit", "neighbours", "--help").stdout
    for flag in ("--from", "--layer", "--mask", "--channels", "--sigma", "--probe", "--lake"):
        assert flag in help_text


class StderrWatch:
    """Collects a child's stderr in a thread, so a test can wait for a phase of the job to begin."""

    def __init__(self, process: subprocess.Popen):
        self.text = ""
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen) -> None:
        assert process.stderr is not None
        while chunk := os.read(process.stderr.fileno(), 4096):
            self.text += chunk.decode(errors="replace")

    def wait_for(self, text: str, process: subprocess.Popen, timeout: float = 900) -> bool:
        deadline = time.monotonic() + timeout
        while text not in self.text and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        return text in self.text


def start_edit(lake) -> tuple[subprocess.Popen, StderrWatch]:
    process = subprocess.Popen([sys.executable, "-m", "ingest", "edit", "variations", "--lake", str(lake), "--from",
                                ONE[3], "--n", "8", "--seed", "9", "--device", "cpu"],
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return process, StderrWatch(process)


def test_kill_minus_9_leaves_the_lake_as_before_and_a_rerun_completes(lake):
    before = tree_digest(lake)
    # 1. Killed while computing (its progress bar is up, nothing is written yet): the lake is as before.
    process, watch = start_edit(lake)
    assert watch.wait_for("ingest edit variations", process)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert tree_digest(lake) == before
    # 2. Killed while probing the new samples (the edit's commit is done): samples and lineage are there, probes not all.
    process, watch = start_edit(lake)
    assert watch.wait_for("ingest activations", process), watch.text[-2000:]
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    handle = open_lake(lake)
    new = [s for s in handle.sample_ids().tolist() if s.startswith("edit/")]
    assert len(new) == 8 and handle.lineage().sizes["sample"] == 8
    # 3. The rerun adds no sample and finishes the probes.
    result = run_cli("ingest", "edit", "variations", "--lake", str(lake), "--from", ONE[3], "--n", "8", "--seed", "9",
                     "--device", "cpu", "--no-progress", timeout=900)
    assert result.returncode == 0, result.stderr
    assert "0 new sample(s), 8 already in the lake" in result.stderr
    handle = open_lake(lake)
    ids = handle.sample_ids().tolist()
    assert len(ids) == len(set(ids)) and sorted(s for s in ids if s.startswith("edit/")) == sorted(new)
    assert handle.lineage().sizes["sample"] == 8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        acts = handle.activations(BOTTLENECK)
    probed = dict(zip(acts.sample_id.values.tolist(), acts.probed.values.all(axis=1).tolist(), strict=True))
    assert all(probed[s] for s in new)
    statuses = [r["status"] for r in handle.provenance() if r["job"] in ("ingest edit variations", "ingest activations")]
    assert "killed" in statuses and statuses[-1] == "complete"
