"""`python -m ingest generate`: what it writes, and that every way of making sample i gives the same bits."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import xarray as xr

from ingest.cli import main
from ingest.core.generation import ClassPlan
from ingest.options import parse_class_list
from ingest.ranks import split_steps
from lake import imagenet_classes, open_lake
from lake.errors import LakeError
from tests.conftest import REPO, tree_digest

MODEL = "micro-random-seed0"
BASE = ["--preset", "micro", "--device", "cpu", "--no-progress"]
LAYERS = ["enc.8x8_block2", "dec.8x8_in0"]


def generate(lake, *args: str) -> int:
    """Run the job in a fresh process, as users do (and as bit-for-bit comparisons need:
    CPU results depend on intra-op thread state, which this long test session may have changed)."""
    return generate_process(lake, *args).returncode


def generate_process(lake, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "ingest", "generate", "--lake", str(lake), *BASE, *map(str, args)]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True)


def read(lake, group: str) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_zarr(lake, group=group).load()


def assert_same(got, ref, rows: slice = slice(None), groups: list[str] | None = None) -> None:
    """`groups` (default: samples and generation activations) identical, row for row (`rows` of the reference)."""
    for group in groups or ["samples", *(f"generation/{layer}" for layer in LAYERS)]:
        a, b = read(got, group), read(ref, group).isel(sample=rows)
        assert a.sizes["sample"] == b.sizes["sample"], group
        for name in [*a.data_vars, *a.coords]:
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=f"{group}/{name}")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """16 samples with activations, made in one batch, in a fresh process.

    A fresh process, like the runs it is compared with: CPU results depend on the
    intra-op thread settings, which other libraries loaded by this test session
    (numba, Dask) may have changed in this process.
    """
    lake = tmp_path_factory.mktemp("gen") / "reference"
    assert generate(lake, "--num-samples", 16, "--batch-size", 16, "--layers", "bottleneck,mid") == 0
    return lake


ONE_STEP_SCRIPT = """
import sys, numpy as np, torch, models
generator = models.load_generator("micro", device="cpu")
noise, classes = models.sample_batch(0, range(8, 16))
with models.capture(generator.module, sys.argv[2].split(",")) as acts:
    images = models.one_step_generate(generator.module, noise, classes)
np.savez(sys.argv[1], images=images.numpy(), **{k: v.to(torch.float32).mean(dim=(2, 3)).numpy() for k, v in acts.items()})
"""


def test_samples_are_labelled_and_match_the_one_step_generator(reference, tmp_path):
    import models

    ds = read(reference, "samples")
    assert ds.sample_id.values.tolist() == [f"gen/{MODEL}/s0/{i}" for i in range(16)]
    assert set(ds.source.values) == {"generated"} and set(ds.split.values) == {"generated"}
    assert ds.seed.values.tolist() == [0] * 16 and set(ds.model_id.values) == {MODEL}
    assert ds.origin.values[5] == f"generator:{MODEL}#5"
    expected_classes = [models.sample_class(0, i) for i in range(16)]
    assert ds.class_id.values.tolist() == expected_classes
    assert ds.class_name.values[3] == imagenet_classes().names[expected_classes[3]]

    # Exactly the original one-step generation, D(80 * noise, 80, onehot(class)).
    # Computed directly with the models API in a fresh process, like the job's.
    expected = tmp_path / "expected.npz"
    subprocess.run([sys.executable, "-c", ONE_STEP_SCRIPT, str(expected), ",".join(LAYERS)], cwd=REPO, check=True)
    acts = np.load(expected)
    np.testing.assert_array_equal(ds.image.values[8:16], acts["images"])
    assert ds.image.values.std() > 10  # real pictures, not fill

    for layer in LAYERS:
        g = read(reference, f"generation/{layer}")
        assert g["mean"].dims == ("sample", "channel") and g["mean"].dtype == np.float32
        assert g.sample_id.values.tolist() == ds.sample_id.values.tolist()
        assert g.class_id.values.tolist() == expected_classes
        np.testing.assert_array_equal(g["mean"].values[8:16], acts[layer])
        assert g.attrs["layer"] == layer and g.attrs["weights"] == "random" and g.attrs["model_id"] == MODEL

    [record] = open_lake(reference).provenance()
    assert record["parameters"]["weights"] == "random" and record["status"] == "complete"
    # The lake's first model is registered by the job that first uses it (ingest.core.registry).
    assert record["rows_added"] == {"samples": 16, "models": 1, **{f"generation/{layer}": 16 for layer in LAYERS}}
    assert [(m.name, m.model_id) for m in open_lake(reference).models()] == [("micro", MODEL)]


def test_resuming_with_more_samples_and_another_batch_size_is_bit_identical(reference, tmp_path):
    lake = tmp_path / "lake"
    # 12 first: the second run recomputes block 8..15 whole and keeps only 12..15.
    assert generate(lake, "--num-samples", 12, "--batch-size", 4, "--layers", "bottleneck,mid") == 0
    assert generate(lake, "--num-samples", 16, "--batch-size", 16, "--layers", "bottleneck,mid") == 0
    assert_same(lake, reference)
    added = {r["parameters"]["num_samples"]: r["rows_added"]["samples"] for r in open_lake(lake).provenance()}
    assert added == {12: 12, 16: 4}  # only the new ones
    # Asking again for what is there changes nothing.
    before = tree_digest(lake / "samples")
    assert generate(lake, "--num-samples", 16, "--layers", "bottleneck,mid") == 0
    assert tree_digest(lake / "samples") == before


def test_layers_added_later_fill_in_without_duplicating_samples(reference, tmp_path):
    lake = tmp_path / "lake"
    assert generate(lake, "--num-samples", 8) == 0
    assert not open_lake(lake).groups("generation")
    assert generate(lake, "--num-samples", 8, "--layers", "bottleneck,mid") == 0
    assert_same(lake, reference, slice(0, 8))


def committed_samples(lake) -> int:
    try:
        return open_lake(lake).num_samples
    except (LakeError, FileNotFoundError, ValueError):
        return 0


def test_kill_minus_9_then_rerun_is_identical(reference, tmp_path):
    lake = tmp_path / "lake"
    args = [sys.executable, "-m", "ingest", "generate", "--lake", str(lake), *BASE,
            "--num-samples", "16", "--batch-size", "8", "--layers", "bottleneck,mid"]
    process = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while process.poll() is None and committed_samples(lake) < 8 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "the job finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    seen = committed_samples(lake)
    assert seen == 8
    # What a reader sees after the kill: whole batches, samples and activations together.
    for layer in LAYERS:
        assert read(lake, f"generation/{layer}").sizes["sample"] == seen

    subprocess.run(args, cwd=REPO, check=True, capture_output=True)
    assert_same(lake, reference)


def test_classes_cycle_in_blocks_and_a_changed_assignment_is_refused(tmp_path):
    lake = tmp_path / "lake"
    assert generate(lake, "--num-samples", 6, "--samples-per-class", 2, "--classes", "tabby,n07920052,657") == 0
    ds = read(lake, "samples")
    assert ds.class_id.values.tolist() == [281, 281, 967, 967, 657, 657]
    assert ds.class_name.values[2] == "espresso"

    before = tree_digest(lake)
    result = generate_process(lake, "--num-samples", 8)  # no --samples-per-class now: sample 0 would change class
    assert result.returncode == 2
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and "--seed 0" in err and "class" in err
    assert tree_digest(lake) == before


def test_class_plan_is_a_pure_function_of_seed_and_index():
    listed = ClassPlan(seed=3, classes=(5, 7, 9))
    drawn = [listed.class_of(i) for i in range(200)]
    assert set(drawn) == {5, 7, 9}
    assert drawn == [ClassPlan(seed=3, classes=(5, 7, 9)).class_of(i) for i in range(200)]
    assert drawn != [ClassPlan(seed=4, classes=(5, 7, 9)).class_of(i) for i in range(200)]
    blocks = ClassPlan(seed=0, samples_per_class=3)
    assert [blocks.class_of(i) for i in (0, 2, 3, 2999, 3000)] == [0, 0, 1, 999, 0]
    assert parse_class_list("tabby, 281 ,espresso") == (281, 967)
    steps = split_steps(np.arange(7), blocks_per_rank=2, ranks=2)
    assert [s.tolist() for s in steps] == [[0, 1, 2, 3], [4, 5, 6]]


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--num-samples", "4", "--layers", "bottleneck,nonsense"], "--layers"),
        (["--num-samples", "4", "--classes", "tabby,notaclass"], "--classes"),
        (["--num-samples", "-1"], "--num-samples"),
        (["--num-samples", "4", "--samples-per-class", "0"], "--samples-per-class"),
        (["--num-samples", "4", "--dtype", "bf16"], "--dtype"),
        (["--num-samples", "4", "--checkpoint", "missing.pt"], "--checkpoint"),
        (["--num-samples", "4", "--preset", "huge"], "--preset"),
    ],
)
def test_bad_flags_fail_in_one_line_before_touching_the_lake(tmp_path, capsys, args, flag):
    lake = tmp_path / "lake"
    assert main(["generate", "--lake", str(lake), "--device", "cpu", "--no-progress",
                 *(["--preset", "micro"] if "--preset" not in args else []), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err, err
    assert not lake.exists()


def test_generation_group_of_another_model_is_refused(tmp_path):
    import torch

    import models

    weights = tmp_path / "micro-seed1.pt"
    torch.save(models.build_generator("micro", seed=1).state_dict(), weights)
    lake = tmp_path / "lake"
    assert generate(lake, "--num-samples", 1, "--checkpoint", weights, "--layers", "bottleneck") == 0
    g = read(lake, "generation/enc.8x8_block2")
    assert g.attrs["weights"] == "checkpoint" and g.attrs["checkpoint"] == "micro-seed1.pt"
    assert g.sample_id.values[0].startswith(f"gen/{g.attrs['model_id']}/s0/")

    before = tree_digest(lake)
    result = generate_process(lake, "--num-samples", 1, "--layers", "bottleneck")  # random weights now
    assert result.returncode == 2
    err = result.stderr.strip()
    # Another network is another model of the registry: without --model it is refused (test_several_models.py).
    assert len(err.splitlines()) == 1 and err.startswith("error: --model: ") and "pass --model NAME" in err, err
    assert tree_digest(lake) == before


def test_write_behind_keeps_order_and_raises_write_errors():
    import threading

    from ingest.overlap import write_behind

    written, threads = [], set()

    def write(item: int) -> None:
        threads.add(threading.get_ident())
        written.append(item)

    write_behind(iter(range(50)), write)
    assert written == list(range(50)) and threading.get_ident() not in threads

    def failing(item: int) -> None:
        if item == 3:
            raise OSError("disk full")

    produced = []

    def items():
        for i in range(10):
            produced.append(i)
            yield i

    with pytest.raises(OSError, match="disk full"):
        write_behind(items(), failing)
    assert len(produced) <= 5  # stops within one batch of the failure
