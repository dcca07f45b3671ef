"""`python -m ingest activations`: the denoiser probe, its layout, resumption over samples and sigmas."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import xarray as xr

from ingest.probing import plan_steps
from ingest.options import parse_sigmas
from ingest.cli import main
from ingest.errors import InputError
from ingest.pipeline import SampleBatch, SampleSink
from lake import LakeWriter, Provenance, open_lake
from tests.conftest import REPO, photo_like_images, tree_digest

BASE = ["--preset", "micro", "--device", "cpu", "--no-progress"]
BOTTLENECK, MID = "enc.8x8_block2", "dec.8x8_in0"


def make_lake(path, real: int, generated: int):
    """A lake with `real` photo-like real samples followed by `generated` ones."""
    with LakeWriter.open(path, Provenance(job="test")) as writer:
        sink = SampleSink(writer)
        for source, n, seed in [("real", real, 1), ("generated", generated, 2)]:
            if n:
                sink.write(SampleBatch(
                    images=photo_like_images(n, seed), sample_ids=[f"{source}/{i}" for i in range(n)],
                    class_ids=np.arange(n) * 37 % 1000, origins=["test"] * n, source=source,
                    split="val" if source == "real" else "generated"))
    return path


def probe(lake, *args: str) -> int:
    return main(["activations", "--lake", str(lake), *BASE, *map(str, args)])


def read(lake, group: str) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_zarr(lake, group=group).load()


def by_sample(ds: xr.Dataset) -> xr.Dataset:
    return ds.swap_dims(sample="sample_id").sortby("sample_id").sortby("sigma")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """8 real then 4 generated samples, probed once at two sigmas."""
    base = tmp_path_factory.mktemp("act")
    lake = make_lake(base / "samples", real=8, generated=4)
    shutil.copytree(lake, base / "probed")
    assert probe(base / "probed", "--layers", "bottleneck,mid", "--sigmas", "0.5,80") == 0
    return base / "samples", base / "probed"


def test_probe_layout_labels_and_values(small):
    import torch
    from torch.nn import functional as F

    import models

    _, lake = small
    samples = read(lake, "samples")
    for layer in (BOTTLENECK, MID):
        ds = read(lake, f"activations/{layer}")
        assert ds["mean"].dims == ("sample", "sigma", "channel") and ds["mean"].dtype == np.float32
        assert ds.sigma.values.tolist() == [0.5, 80.0] and ds.sigma.dtype == np.float32
        assert ds.channel.values.tolist() == list(range(ds.sizes["channel"]))
        assert ds.sample_id.values.tolist() == samples.sample_id.values.tolist()
        assert ds.source.values.tolist() == samples.source.values.tolist()
        assert ds.class_id.values.tolist() == samples.class_id.values.tolist()
        assert ds["probed"].values.all() and np.isfinite(ds["mean"].values).all()
        assert {k: ds.attrs[k] for k in ("layer", "model_id", "weights", "noise_seed")} == {
            "layer": layer, "model_id": "micro-random-seed0", "weights": "random", "noise_seed": 0}
        assert "x0 + sigma * eps" in ds.attrs["probe"]
        assert not np.allclose(ds["mean"].values[:, 0], ds["mean"].values[:, 1])  # sigma matters

    # The probe, computed by hand for the generated samples (rows 8..11) at sigma 80.
    generator = models.load_generator("micro", device="cpu")
    images = torch.from_numpy(samples.image.values[8:12]).permute(0, 3, 1, 2).float()
    x0 = images / 127.5 - 1
    eps = torch.stack([models.probe_noise(0, s) for s in samples.sample_id.values[8:12]])
    labels = F.one_hot(torch.as_tensor(samples.class_id.values[8:12], dtype=torch.int64), 1000).float()
    with models.capture(generator.module, [BOTTLENECK, MID]) as acts:
        generator.module(x0 + 80 * eps, torch.full((4,), 80.0), labels)
    for layer in (BOTTLENECK, MID):
        stored = read(lake, f"activations/{layer}")["mean"].values[8:12, 1]
        np.testing.assert_array_equal(stored, acts[layer].mean(dim=(2, 3)).numpy())


def test_resume_over_sources_and_new_sigmas_matches_one_run(small, tmp_path):
    samples, one_run = small
    lake = tmp_path / "lake"
    shutil.copytree(samples, lake)
    assert probe(lake, "--layers", "bottleneck", "--sigmas", "80", "--source", "real") == 0
    first = read(lake, f"activations/{BOTTLENECK}")
    assert first.sizes["sample"] == 8 and set(first.source.values) == {"real"}

    # Generated samples at two sigmas: the axis grows, real rows at 0.5 are "not probed" (NaN).
    assert probe(lake, "--layers", "bottleneck,mid", "--sigmas", "0.5,80", "--source", "generated") == 0
    mixed = read(lake, f"activations/{BOTTLENECK}")
    assert mixed.sigma.values.tolist() == [80.0, 0.5] and mixed.sizes["sample"] == 12
    real = mixed.source.values == "real"
    assert np.isnan(mixed["mean"].values[real, 1]).all() and not mixed["probed"].values[real, 1].any()
    assert mixed["probed"].values[~real].all()
    np.testing.assert_array_equal(mixed["mean"].values[real, 0], first["mean"].values[:, 0])
    assert read(lake, f"activations/{MID}").sizes["sample"] == 4

    assert probe(lake, "--layers", "bottleneck,mid", "--sigmas", "0.5,80") == 0
    for layer in (BOTTLENECK, MID):
        got, ref = by_sample(read(lake, f"activations/{layer}")), by_sample(read(one_run, f"activations/{layer}"))
        assert got["probed"].values.all()
        np.testing.assert_array_equal(got["mean"].values, ref["mean"].values)
        np.testing.assert_array_equal(got.class_id.values, ref.class_id.values)

    before = tree_digest(lake / "activations")
    assert probe(lake, "--layers", "bottleneck,mid", "--sigmas", "80") == 0  # nothing left to do
    assert tree_digest(lake / "activations") == before


def probed_pairs(lake) -> int:
    try:
        lk = open_lake(lake)
        if not lk.has(f"activations/{BOTTLENECK}"):
            return 0
        return int(lk.column(f"activations/{BOTTLENECK}", "probed").sum())
    except Exception:  # the lake may be mid-creation
        return 0


def test_kill_minus_9_then_rerun_is_identical(tmp_path):
    samples = make_lake(tmp_path / "samples", real=28, generated=4)
    reference, lake = tmp_path / "reference", tmp_path / "lake"
    shutil.copytree(samples, reference)
    shutil.copytree(samples, lake)
    # Four commits of 8 samples x 4 sigmas: after the first, three more leave the kill a wide window (with 16
    # samples, two commits, the job once committed its last between the check and the kill, in CI).
    args = ["--layers", "bottleneck", "--sigmas", "0.5,2,10,80", "--batch-size", "8"]
    command = [sys.executable, "-m", "ingest", "activations", "--lake", str(lake), *BASE, *args]
    # The reference runs in a fresh process too: CPU results depend on intra-op thread
    # state, which this long test session may have changed in its own process.
    subprocess.run([*command[:4], "--lake", str(reference), *command[6:]], cwd=REPO, check=True, capture_output=True)
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while process.poll() is None and probed_pairs(lake) < 32 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "the job finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert 32 <= probed_pairs(lake) < 128

    subprocess.run(command, cwd=REPO, check=True, capture_output=True)
    got, ref = read(lake, f"activations/{BOTTLENECK}"), read(reference, f"activations/{BOTTLENECK}")
    for name in [*ref.data_vars, *ref.coords]:
        np.testing.assert_array_equal(got[name].values, ref[name].values, err_msg=name)


def test_keep_spatial_stores_full_maps_in_float16(small, tmp_path):
    samples, _ = small
    lake = tmp_path / "lake"
    shutil.copytree(samples, lake)
    assert probe(lake, "--layers", "bottleneck", "--sigmas", "2", "--keep-spatial", "--source", "generated") == 0
    ds = read(lake, f"activations/{BOTTLENECK}")
    assert ds["spatial"].dims == ("sample", "sigma", "channel", "y", "x") and ds["spatial"].dtype == np.float16
    assert ds["spatial"].shape == (4, 1, ds.sizes["channel"], 8, 8)
    np.testing.assert_allclose(ds["spatial"].values.astype(np.float32).mean(axis=(3, 4)), ds["mean"].values,
                               rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--layers", "bottleneck", "--sigmas", "0.5,80", "--noise-seed", "1"], "noise_seed"),
        (["--layers", "bottleneck", "--sigmas", "2", "--keep-spatial"], "--keep-spatial"),
        (["--layers", "nonsense"], "--layers"),
        (["--layers", "bottleneck", "--sigmas", "0.5,-1"], "--sigmas"),
        (["--layers", "bottleneck", "--sigmas", "a"], "--sigmas"),
    ],
)
def test_bad_requests_fail_in_one_line_and_leave_the_lake_unchanged(small, tmp_path, capsys, args, needle):
    _, probed = small
    lake = tmp_path / "lake"
    shutil.copytree(probed, lake)
    before = tree_digest(lake)
    capsys.readouterr()
    assert probe(lake, *args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert tree_digest(lake) == before


def test_another_model_or_a_missing_lake_is_refused(small, tmp_path, capsys):
    import torch

    import models

    _, probed = small
    lake = tmp_path / "lake"
    shutil.copytree(probed, lake)
    weights = tmp_path / "other.pt"
    torch.save(models.build_generator("micro", seed=5).state_dict(), weights)
    before = tree_digest(lake)
    capsys.readouterr()
    assert probe(lake, "--layers", "mid", "--checkpoint", weights) == 2
    err = capsys.readouterr().err.strip()
    # Another network is another model of the registry: it needs a name (tests/ingest/test_several_models.py).
    assert len(err.splitlines()) == 1 and err.startswith("error: --model: ") and "pass --model NAME" in err
    assert tree_digest(lake) == before

    assert probe(tmp_path / "nowhere", "--layers", "mid") == 2
    assert "no lake" in capsys.readouterr().err and not (tmp_path / "nowhere").exists()

    only_real = make_lake(tmp_path / "only_real", real=2, generated=0)
    assert probe(only_real, "--layers", "mid", "--source", "generated") == 2
    assert "--source generated" in capsys.readouterr().err


def test_sigma_parsing_and_step_planning():
    assert parse_sigmas("0.5, 2,10,80,2") == [0.5, 2.0, 10.0, 80.0]
    assert parse_sigmas("0.1") == [float(np.float32(0.1))]
    with pytest.raises(InputError, match="--sigmas"):
        parse_sigmas("0")
    need = np.zeros((20, 2), dtype=bool)
    need[3, 0] = need[17, 1] = need[18, 1] = True
    steps = plan_steps(need, block=8, batch_size=8)
    assert [s.blocks.tolist() for s in steps] == [[0], [2]]
    assert [s.block_sigmas.tolist() for s in steps] == [[[True, False]], [[False, True]]]


def test_layer_shapes_match_a_forward_pass():
    import torch

    import models
    from ingest.core.models import layer_shapes

    module = models.build_generator("micro")
    names = models.layer_names(module)
    with models.capture(module, names) as acts:
        module(torch.zeros(1, 3, 64, 64), torch.ones(1), torch.zeros(1, 1000))
    assert layer_shapes(module, names) == {n: tuple(acts[n].shape[1:]) for n in names}
