"""Probe reconstructions: `ingest activations --reconstructions` and `ingest.reconstruct.reconstruct_sample`.

Stored and on-demand reconstructions agree bit for bit; the noisy image is the documented
x0 + sigma * eps; batch size, resumption and kill -9 change nothing; a group of another
model or noise seed is refused.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ingest.probing import plan_steps
from ingest.errors import InputError
from ingest.core import reconstruct_sample, stored_reconstruction
from ingest.core.recorded import load_probe_model, probe_setup
from lake import open_lake
from tests.conftest import REPO, tree_digest
from tests.ingest.test_activations import BASE, BOTTLENECK, by_sample, make_lake, probe, read

SIGMAS = [0.5, 10.0]


@pytest.fixture(scope="module")
def lakes(tmp_path_factory):
    """8 real then 4 generated samples (two compute blocks, the second partly filled); a copy probed at
    0.5 and 10 with --reconstructions and a copy probed without."""
    base = tmp_path_factory.mktemp("recon")
    samples = make_lake(base / "samples", real=8, generated=4)
    shutil.copytree(samples, base / "rebuilt")
    shutil.copytree(samples, base / "plain")
    assert probe(base / "rebuilt", "--layers", "bottleneck", "--sigmas", "0.5,10", "--reconstructions") == 0
    assert probe(base / "plain", "--layers", "bottleneck", "--sigmas", "0.5,10") == 0
    return samples, base / "rebuilt", base / "plain"


def documented_noise(noise_seed: int, sample_id: str) -> np.ndarray:
    """eps as the README documents it: PCG64 seeded by (noise_seed, blake2b-64 of the id), (3, 64, 64) float32."""
    key = int.from_bytes(hashlib.blake2b(sample_id.encode("utf-8"), digest_size=8).digest(), "little")
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([noise_seed, key])))
    return rng.standard_normal((3, 64, 64), dtype=np.float32)


def documented_noisy(image: np.ndarray, sample_id: str, sigma: float, noise_seed: int = 0) -> np.ndarray:
    """x0 + sigma * eps with x0 = image / 127.5 - 1 (HWC uint8), clipped to [-1, 1], as uint8 (truncating)."""
    x0 = image.astype(np.float32) / np.float32(127.5) - np.float32(1)
    x = x0 + np.float32(sigma) * documented_noise(noise_seed, sample_id).transpose(1, 2, 0)
    return ((np.clip(x, -1, 1) + np.float32(1)) * np.float32(127.5)).astype(np.uint8)


def test_stored_layout_noisy_formula_and_network_output(lakes):
    import torch
    from torch.nn import functional as F

    import models

    _, lake, plain = lakes
    samples = read(lake, "samples")
    ds = read(lake, "reconstructions")
    assert ds.sigma.values.tolist() == SIGMAS and ds.sigma.dtype == np.float32
    for name in ("noisy", "x0_hat"):
        assert ds[name].dims == ("sample", "sigma", "y", "x", "channel") and ds[name].dtype == np.uint8
        assert ds[name].shape == (12, 2, 64, 64, 3)
    assert ds["probed"].values.all()
    assert ds.sample_id.values.tolist() == samples.sample_id.values.tolist()
    assert ds.class_id.values.tolist() == samples.class_id.values.tolist()
    assert {k: ds.attrs[k] for k in ("model_id", "weights", "noise_seed", "compute_block")} == {
        "model_id": "micro-random-seed0", "weights": "random", "noise_seed": 0, "compute_block": 8}
    assert "x0 + sigma * eps" in ds.attrs["probe"]

    # The noisy image is the documented formula, recomputed here from scratch.
    for row, sample_id in enumerate(samples.sample_id.values.tolist()):
        for k, sigma in enumerate(SIGMAS):
            expected = documented_noisy(samples.image.values[row], sample_id, sigma)
            np.testing.assert_array_equal(ds["noisy"].values[row, k], expected, err_msg=f"{sample_id} sigma {sigma}")
    assert not np.array_equal(ds["noisy"].values[:, 0], ds["noisy"].values[:, 1])

    # x0_hat is the network's full output on that input: the generated rows 8..11 are one
    # compute block, run by hand here in one call.
    generator = models.load_generator("micro", device="cpu")
    images = torch.from_numpy(samples.image.values[8:12]).permute(0, 3, 1, 2).float()
    eps = torch.stack([torch.from_numpy(documented_noise(0, s)) for s in samples.sample_id.values[8:12]])
    labels = F.one_hot(torch.as_tensor(samples.class_id.values[8:12], dtype=torch.int64), 1000).float()
    for k, sigma in enumerate(SIGMAS):
        with torch.inference_mode():
            out = generator.module(images / 127.5 - 1 + sigma * eps, torch.full((4,), sigma), labels)
        np.testing.assert_array_equal(ds["x0_hat"].values[8:12, k], models.to_uint8_nhwc(out).numpy())

    # The activations of the full pass are those of the probe that stops early: same eps, same bits.
    got, ref = read(lake, f"activations/{BOTTLENECK}"), read(plain, f"activations/{BOTTLENECK}")
    np.testing.assert_array_equal(got["mean"].values, ref["mean"].values)
    assert not open_lake(plain).has("reconstructions")


def test_on_demand_equals_stored_bit_for_bit(lakes):
    _, lake, plain = lakes
    model = load_probe_model(lake, device="cpu")
    assert model.setup.group == "reconstructions" and model.setup.sigmas == SIGMAS
    for sample_id in ("real/3", "generated/2"):  # a full block and the partly filled last one
        stored = stored_reconstruction(lake, sample_id)
        assert stored is not None and stored.sigmas == SIGMAS
        fresh = reconstruct_sample(lake, sample_id, model=model)
        assert fresh.sigmas == SIGMAS
        np.testing.assert_array_equal(fresh.noisy, stored.noisy, err_msg=sample_id)
        np.testing.assert_array_equal(fresh.x0_hat, stored.x0_hat, err_msg=sample_id)

    # Sigmas in any order, stored or not; loading the model from the lake's records by itself.
    real = stored_reconstruction(lake, "real/3")
    assert real is not None
    other = reconstruct_sample(lake, "real/3", [10, 2], device="cpu")
    assert other.sigmas == [10.0, 2.0] and other.x0_hat.shape == (2, 64, 64, 3)
    np.testing.assert_array_equal(other.x0_hat[0], real.x0_hat[1])
    image = open_lake(lake).images([3])[0]
    np.testing.assert_array_equal(other.noisy[1], documented_noisy(image, "real/3", 2.0))

    # Alone in its forward call the sample may differ in the network's last bits only.
    alone = reconstruct_sample(lake, "real/3", model=model, exact=False)
    assert np.abs(alone.x0_hat.astype(int) - real.x0_hat.astype(int)).max() <= 1
    np.testing.assert_array_equal(alone.noisy, real.noisy)

    # A lake probed without --reconstructions: the layer's set-up (alias allowed) gives the same bits.
    setup = probe_setup(plain, "bottleneck")
    assert (setup.group, setup.dtype, setup.noise_seed) == (f"activations/{BOTTLENECK}", "fp32", 0)
    on_plain = reconstruct_sample(plain, "generated/2", layer="bottleneck", device="cpu")
    np.testing.assert_array_equal(on_plain.x0_hat, stored_reconstruction(lake, "generated/2").x0_hat)

    with pytest.raises(InputError, match="no sample 'nope'"):
        reconstruct_sample(lake, "nope", model=model)
    assert stored_reconstruction(lake, "nope") is None


def count_passes(monkeypatch) -> dict[str, int]:
    """Count the job's network passes by kind: full (reconstructions) and cut short (probe only)."""
    from ingest.core import forward

    calls = {"full": 0, "probe": 0}
    for module, name, kind in [(forward, "denoise_block", "full"), (forward, "probe_block", "probe")]:
        original = getattr(module, name)

        def counted(*args, _original=original, _kind=kind, **kwargs):
            calls[_kind] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)
    return calls


def test_batch_size_and_resume_are_bit_identical(lakes, tmp_path, monkeypatch):
    samples, one_run, _ = lakes
    lake = tmp_path / "lake"
    shutil.copytree(samples, lake)
    calls = count_passes(monkeypatch)
    assert probe(lake, "--layers", "bottleneck", "--sigmas", "10", "--source", "real", "--reconstructions",
                 "--batch-size", "8") == 0
    assert calls == {"full": 1, "probe": 0}  # one block (the 8 real rows) at one sigma
    # Activations only: the reconstructions stay as they were (no new sigma on their axis either).
    assert probe(lake, "--layers", "bottleneck", "--sigmas", "0.5,10", "--batch-size", "16") == 0
    assert calls == {"full": 1, "probe": 3}
    partial = read(lake, "reconstructions")
    assert partial.sigma.values.tolist() == [10.0] and partial.sizes["sample"] == 8

    # With --reconstructions again the activations are complete: only the missing
    # reconstructions run (real at 0.5; generated at 0.5 and 10), and the activations stay untouched.
    activations = tree_digest(lake / "activations")
    assert probe(lake, "--layers", "bottleneck", "--sigmas", "0.5,10", "--reconstructions", "--batch-size", "24") == 0
    assert calls == {"full": 4, "probe": 3}
    assert tree_digest(lake / "activations") == activations

    got, ref = by_sample(read(lake, "reconstructions")), by_sample(read(one_run, "reconstructions"))
    assert got.sigma.values.tolist() == ref.sigma.values.tolist() == SIGMAS
    for name in ("noisy", "x0_hat", "probed", "class_id"):
        np.testing.assert_array_equal(got[name].values, ref[name].values, err_msg=name)
    got, ref = by_sample(read(lake, f"activations/{BOTTLENECK}")), by_sample(read(one_run, f"activations/{BOTTLENECK}"))
    np.testing.assert_array_equal(got["mean"].values, ref["mean"].values)

    before = {group: tree_digest(lake / group) for group in ("reconstructions", "activations")}
    assert probe(lake, "--layers", "bottleneck", "--sigmas", "10", "--reconstructions") == 0  # nothing left to do
    assert calls == {"full": 4, "probe": 3}
    assert {group: tree_digest(lake / group) for group in before} == before


def probed_cells(lake, group: str) -> int:
    try:
        lk = open_lake(lake)
        return int(lk.column(group, "probed").sum()) if lk.has(group) else 0
    except Exception:  # the lake may be mid-creation
        return 0


def test_kill_minus_9_then_rerun_is_identical(tmp_path):
    samples = make_lake(tmp_path / "samples", real=12, generated=4)  # two compute blocks, one step each
    reference, lake = tmp_path / "reference", tmp_path / "lake"
    shutil.copytree(samples, reference)
    shutil.copytree(samples, lake)
    args = ["--layers", "bottleneck", "--sigmas", "0.5,80", "--batch-size", "8", "--reconstructions"]
    command = [sys.executable, "-m", "ingest", "activations", *BASE, *args, "--lake"]
    # Both in fresh processes: CPU results depend on the intra-op thread state of the process.
    subprocess.run([*command, str(reference)], cwd=REPO, check=True, capture_output=True)
    process = subprocess.Popen([*command, str(lake)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while process.poll() is None and probed_cells(lake, "reconstructions") < 16 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "the job finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    # What a reader sees after the kill: whole batches, activations and reconstructions from the same commits.
    done = probed_cells(lake, "reconstructions")
    assert 16 <= done < 32 and done == probed_cells(lake, f"activations/{BOTTLENECK}")

    subprocess.run([*command, str(lake)], cwd=REPO, check=True, capture_output=True)
    for group in ("reconstructions", f"activations/{BOTTLENECK}"):
        got, ref = read(lake, group), read(reference, group)
        for name in [*ref.data_vars, *ref.coords]:
            np.testing.assert_array_equal(got[name].values, ref[name].values, err_msg=f"{group}/{name}")
    assert tree_digest(lake / "reconstructions") == tree_digest(reference / "reconstructions")


def test_another_model_or_noise_seed_is_refused(lakes, tmp_path, capsys):
    import torch

    import models

    _, rebuilt, _ = lakes
    lake = tmp_path / "lake"
    shutil.copytree(rebuilt, lake)
    weights = tmp_path / "other.pt"
    torch.save(models.build_generator("micro", seed=5).state_dict(), weights)
    before = tree_digest(lake)
    capsys.readouterr()
    # Another network is another model of the registry, refused without --model (and with it, since
    # reconstructions hold the first model's outputs); `mid` has no activation group yet, so for another
    # noise seed it is the reconstructions group that refuses.
    for extra, needle in [(["--checkpoint", str(weights)], "error: --model: "),
                          (["--checkpoint", str(weights), "--model", "other"], "error: --reconstructions: "),
                          (["--noise-seed", "1"], "reconstructions was computed with")]:
        assert probe(lake, "--layers", "mid", "--sigmas", "0.5", "--reconstructions", *extra) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err and (extra[0] != "--noise-seed" or "noise_seed" in err), err
        assert tree_digest(lake) == before

    with pytest.raises(InputError, match="no probes yet"):
        reconstruct_sample(make_lake(tmp_path / "unprobed", real=1, generated=0), "real/0")


def test_a_checkpoint_is_found_through_provenance_and_checked(tmp_path):
    import torch

    import models

    lake = make_lake(tmp_path / "lake", real=2, generated=0)
    weights, other = tmp_path / "weights.pt", tmp_path / "other.pt"
    torch.save(models.build_generator("micro", seed=3).state_dict(), weights)
    torch.save(models.build_generator("micro", seed=4).state_dict(), other)
    assert probe(lake, "--layers", "bottleneck", "--sigmas", "2", "--reconstructions", "--checkpoint", weights) == 0
    stored = stored_reconstruction(lake, "real/1")
    assert stored is not None
    # Found where the provenance record says it was, and checked against the recorded sha256.
    fresh = reconstruct_sample(lake, "real/1", device="cpu")
    np.testing.assert_array_equal(fresh.x0_hat, stored.x0_hat)

    moved = tmp_path / "moved.pt"
    weights.rename(moved)
    with pytest.raises(InputError, match=r"^[^\n]*pass checkpoint=PATH[^\n]*$"):
        reconstruct_sample(lake, "real/1", device="cpu")
    with pytest.raises(InputError, match=r"^checkpoint .*other\.pt: this is model micro-\w+, but .* ran micro-"):
        reconstruct_sample(lake, "real/1", device="cpu", checkpoint=str(other))
    np.testing.assert_array_equal(reconstruct_sample(lake, "real/1", device="cpu", checkpoint=str(moved)).x0_hat,
                                  stored.x0_hat)
    other.rename(weights)  # another file where the record points: its sha256 gives it away
    with pytest.raises(InputError, match="changed since the probes"):
        reconstruct_sample(lake, "real/1", device="cpu")


def test_full_passes_are_planned_only_where_reconstructions_are_missing():
    need = np.zeros((20, 2), dtype=bool)
    need[3, 0] = need[17, 1] = need[18, 1] = True
    full = np.zeros_like(need)
    full[18, 1] = True
    steps = plan_steps(need, block=8, batch_size=16, full=full)
    assert [s.blocks.tolist() for s in steps] == [[0, 2]]
    assert steps[0].block_sigmas.tolist() == [[True, False], [False, True]]
    assert steps[0].full is not None and steps[0].full.tolist() == [[False, False], [False, True]]
    assert plan_steps(need, block=8, batch_size=16)[0].full is None
