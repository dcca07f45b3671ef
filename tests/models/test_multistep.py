"""Multi-step generation with the one-step generator: schedule, per-step noise, the recurrence."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from models import (denoise_steps, karras_sigmas, multi_step_generate, one_step_generate, sample_batch, sample_noise,
                    step_noise, step_noise_batch, to_uint8_nhwc)

# Pinned like PINNED_NOISE_0_0: a changed stream construction would silently change every K-step sample.
PINNED_STEP_NOISE_0_0_1 = [0.7163344025611877, -1.6438807249069214, -0.26079317927360535]


def test_karras_schedule():
    assert karras_sigmas(1) == [80.0]
    four = karras_sigmas(4)
    assert four == pytest.approx([80.0, 21.3641, 4.19162, 0.5], rel=1e-5)
    assert four[0] == 80.0 and four[-1] == 0.5  # ends exact, no rounding error at sigma_min
    assert karras_sigmas(2) == [80.0, 0.5]
    for k in (3, 8, 40):
        sigmas = karras_sigmas(k)
        assert len(sigmas) == k and all(b < a for a, b in zip(sigmas, sigmas[1:], strict=False))
    # rho = 7 spaces the steps evenly in sigma^(1/7): the middle of 3 steps sits at that mean.
    assert karras_sigmas(3)[1] == pytest.approx(((80 ** (1 / 7) + 0.5 ** (1 / 7)) / 2) ** 7)
    assert karras_sigmas(3, sigma_max=10, sigma_min=1, rho=1) == pytest.approx([10, 5.5, 1])
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="steps"):
            karras_sigmas(bad)
    with pytest.raises(ValueError, match="sigma_min"):
        karras_sigmas(3, sigma_min=80)


def test_step_noise_starts_with_the_one_step_noise_and_is_keyed_by_step():
    assert torch.equal(step_noise(7, 3, 0), sample_noise(7, 3))
    later = [step_noise(7, 3, k) for k in (1, 2, 3)]
    assert torch.equal(later[0], step_noise(7, 3, 1))  # a pure function of (seed, index, step)
    assert not torch.equal(later[0], later[1]) and not torch.equal(later[0], sample_noise(7, 3))
    assert not torch.equal(later[0], step_noise(7, 4, 1)) and not torch.equal(later[0], step_noise(8, 3, 1))
    assert step_noise(0, 0, 1)[0, 0, :3].tolist() == pytest.approx(PINNED_STEP_NOISE_0_0_1, abs=1e-7)
    assert abs(float(later[1].mean())) < 0.05 and abs(float(later[1].std()) - 1) < 0.05
    batch = step_noise_batch(7, [3, 5], steps=3, shape=(2, 4))
    assert batch.shape == (3, 2, 2, 4)
    assert torch.equal(batch[2, 1], step_noise(7, 5, 2, shape=(2, 4)))
    with pytest.raises(ValueError):
        step_noise(7, 3, -1)


def test_one_step_schedule_is_one_step_generate_bit_for_bit(tiny_generator):
    noise, classes = sample_batch(0, range(4))
    expected = one_step_generate(tiny_generator, noise, classes)
    got = multi_step_generate(tiny_generator, noise[None], classes, [80.0])
    assert got.shape == (4, 1, 64, 64, 3) and got.dtype == torch.uint8
    assert torch.equal(got[:, 0], expected)
    # And the first step of a longer schedule from 80 is that same pass.
    noises = step_noise_batch(0, range(4), 3)
    assert torch.equal(multi_step_generate(tiny_generator, noises, classes, karras_sigmas(3))[:, 0], expected)


def test_the_recurrence_renoises_the_float_estimate(tiny_generator):
    """x = s0*eps0; x0_i = D(x, s_i); x = x0_i + s_(i+1)*eps_(i+1), written out with the bare network."""
    G = tiny_generator
    sigmas = [80.0, 20.0, 5.0, 1.5]
    noises = step_noise_batch(3, range(4), len(sigmas))
    classes = torch.tensor([1, 2, 999, 0])
    onehot = F.one_hot(classes, G.label_dim).to(torch.float32)

    def run(quantise: bool) -> list[torch.Tensor]:
        x, out = noises[0] * sigmas[0], []
        with torch.no_grad():
            for i, sigma in enumerate(sigmas):
                x0 = G(x, torch.full((4,), sigma), onehot)
                out.append(to_uint8_nhwc(x0))
                if i + 1 < len(sigmas):
                    start = to_uint8_nhwc(x0).permute(0, 3, 1, 2).float() / 127.5 - 1 if quantise else x0
                    x = start + sigmas[i + 1] * noises[i + 1]
        return out

    got = multi_step_generate(G, noises, classes, sigmas)
    expected = run(quantise=False)
    for i in range(len(sigmas)):
        assert torch.equal(got[:, i], expected[i]), f"step {i}"
    assert not torch.equal(got[:, -1], run(quantise=True)[-1])  # the choice of float matters, and is the one made
    # Each step changes the picture.
    changes = [float((got[:, i].float() - got[:, i + 1].float()).abs().mean()) for i in range(3)]
    assert min(changes) > 0
    # The yielded estimates are the network's floats (NCHW), one per step, in order.
    floats = list(denoise_steps(G, noises, classes, sigmas))
    assert len(floats) == 4 and floats[0].dtype == torch.float32 and floats[0].shape == (4, 3, 64, 64)
    assert torch.equal(to_uint8_nhwc(floats[2]), got[:, 2])


def test_bad_inputs_are_refused(tiny_generator):
    noises = step_noise_batch(0, range(2), 2)
    with pytest.raises(ValueError, match="one per step"):
        multi_step_generate(tiny_generator, noises, [0, 1], [80.0, 20.0, 5.0])
    with pytest.raises(ValueError, match="at least one sigma"):
        multi_step_generate(tiny_generator, noises[:0], [0, 1], [])
    with pytest.raises(ValueError, match="class ids"):
        multi_step_generate(tiny_generator, noises, [0, 1000], [80.0, 20.0])
    with pytest.raises(ValueError, match="2 noise tensors but 3 class ids"):
        multi_step_generate(tiny_generator, noises, [0, 1, 2], [80.0, 20.0])
