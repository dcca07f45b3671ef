"""EDM's sampler for the teacher: the published algorithm's numbers, keyed randomness, and the right answer on Gaussians."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from models import build_generator
from models.generation import sample_noise
from models.heun import HeunConfig, churn_noise, heun_generate, heun_steps


def edm_sampler(net, latents, class_labels=None, randn_like=torch.randn_like, num_steps=18, sigma_min=0.002, sigma_max=80,
                rho=7, S_churn=0, S_min=0, S_max=float("inf"), S_noise=1):
    """EDM's `edm_sampler` (Karras et al. 2022, Algorithm 2) as published, line for line; `net.round_sigma` is the identity."""
    step_indices = torch.arange(num_steps, dtype=torch.float64, device=latents.device)
    t_steps = (sigma_max ** (1 / rho) + step_indices / (num_steps - 1) * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    t_steps = torch.cat([t_steps, torch.zeros_like(t_steps[:1])])
    x_next = latents.to(torch.float64) * t_steps[0]
    for i, (t_cur, t_next) in enumerate(zip(t_steps[:-1], t_steps[1:])):
        x_cur = x_next
        gamma = min(S_churn / num_steps, np.sqrt(2) - 1) if S_min <= t_cur <= S_max else 0
        t_hat = t_cur + gamma * t_cur
        x_hat = x_cur + (t_hat ** 2 - t_cur ** 2).sqrt() * S_noise * randn_like(x_cur)
        denoised = net(x_hat, t_hat, class_labels).to(torch.float64)
        d_cur = (x_hat - denoised) / t_hat
        x_next = x_hat + (t_next - t_hat) * d_cur
        if i < num_steps - 1:
            denoised = net(x_next, t_next, class_labels).to(torch.float64)
            d_prime = (x_next - denoised) / t_next
            x_next = x_hat + (t_next - t_hat) * (0.5 * d_cur + 0.5 * d_prime)
    return x_next


SEED, INDICES, CLASSES = 4, [0, 1, 2], [1, 7, 999]


@pytest.fixture(scope="module")
def teacher():
    return build_generator("micro", seed=5)


def keyed_randn_like(indices):
    """What EDM's sampler draws on each call, from our keyed streams: step k's churn noise of every sample."""
    step = iter(range(10**6))

    def randn_like(x):
        k = next(step)
        return torch.stack([churn_noise(SEED, i, k) for i in indices]).to(x)

    return randn_like


@pytest.mark.parametrize("config", [HeunConfig(steps=4), HeunConfig(steps=5, s_churn=40, s_min=0.05, s_max=50, s_noise=1.003)],
                         ids=["deterministic", "stochastic"])
def test_the_final_images_are_the_published_algorithms_bit_for_bit(teacher, config):
    latents = torch.stack([sample_noise(SEED, i) for i in INDICES])
    onehot = torch.nn.functional.one_hot(torch.tensor(CLASSES), 1000).float()
    expected = edm_sampler(teacher, latents, onehot, keyed_randn_like(INDICES), num_steps=config.steps, S_churn=config.s_churn,
                           S_min=config.s_min, S_max=config.s_max, S_noise=config.s_noise)
    *_, last = heun_steps(teacher, SEED, INDICES, CLASSES, config)
    assert last.image is not None and last.image.dtype == torch.float64
    assert torch.equal(last.image, expected)


def test_steps_report_where_the_network_looked_and_churn_raises_sigma_only_inside_its_range(teacher):
    plain = HeunConfig(steps=4)
    assert [s.t_hat for s in heun_steps(teacher, SEED, [0], [1], plain)] == pytest.approx(plain.time_steps()[:-1].tolist(), rel=0, abs=0)
    churned = HeunConfig(steps=4, s_churn=40, s_min=0.05, s_max=50)
    schedule = churned.time_steps()[:-1].tolist()  # 80, ~9.7, ~0.48, 0.002
    t_hat = [s.t_hat for s in heun_steps(teacher, SEED, [0], [1], churned)]
    gamma = min(40 / 4, math.sqrt(2) - 1)
    assert t_hat[0] == schedule[0] and t_hat[3] == schedule[3]  # 80 > S_max, 0.002 < S_min: no churn
    assert t_hat[1] == pytest.approx(schedule[1] * (1 + gamma)) and t_hat[2] == pytest.approx(schedule[2] * (1 + gamma))


def test_a_samples_draws_do_not_depend_on_its_batch(teacher):
    """Alone or third in a batch, a sample gets the same keyed draws: its image agrees to float rounding (equal bits under
    any batch size are the job's business: it runs the network in fixed compute blocks) and repeats exactly."""
    config = HeunConfig(steps=3, s_churn=40, s_min=0.05, s_max=50, s_noise=1.003)
    *_, batch = heun_steps(teacher, SEED, [0, 1, 2, 3], [1, 2, 3, 4], config)
    *_, alone = heun_steps(teacher, SEED, [2], [3], config)
    *_, again = heun_steps(teacher, SEED, [2], [3], config)
    assert torch.equal(alone.image, again.image)
    assert (alone.image[0] - batch.image[2]).abs().max() < 1e-3 < (batch.image[0] - batch.image[1]).abs().max()
    images = heun_generate(teacher, SEED, [0, 1], [1, 2], config)
    assert images.shape == (2, 64, 64, 3) and images.dtype == torch.uint8


class GaussianDenoiser(nn.Module):
    """The exact denoiser of data ~ N(0, sd^2): D(x, sigma) = x sd^2 / (sigma^2 + sd^2)."""

    label_dim = 1000

    def __init__(self, sd: float) -> None:
        super().__init__()
        self.sd = sd
        self.anchor = nn.Parameter(torch.zeros(1))  # the sampler reads the device off the parameters

    def forward(self, x, sigma, labels):
        sigma = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1, 1, 1, 1)
        return (x.to(torch.float64) * self.sd**2 / (sigma**2 + self.sd**2)).to(torch.float32)


def test_on_gaussian_data_the_error_falls_about_fourfold_per_doubling_of_steps():
    """With the exact denoiser of N(0, 0.5^2) the deterministic sampler is linear: image = c * latent, and c is the std
    it gives the data. 18 steps give ~0.528 (not 0.5: the schedule is discrete); EDM's sampler is second order."""
    net = GaussianDenoiser(0.5)
    stds = []
    for steps in (18, 36, 72):
        *_, last = heun_steps(net, 0, [0], [0], HeunConfig(steps=steps), shape=(1, 1, 1))
        stds.append(float(last.image.flatten()[0] / sample_noise(0, 0, (1, 1, 1)).flatten()[0]))
    errors = [s - 0.5 for s in stds]
    assert stds[0] == pytest.approx(0.528, abs=0.002)
    assert 3 < errors[0] / errors[1] < 5 and 3 < errors[1] / errors[2] < 5
