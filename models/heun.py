"""EDM's sampler (Karras et al. 2022, Algorithm 2): Heun steps on the Karras schedule, optionally stochastic.

How DMD2's teacher (EDM's ImageNet-64 model) makes its images. The same arithmetic as EDM's
published ``edm_sampler`` (float64 state, a second-order correction on every step but the
last, the schedule ending at sigma 0), with one change that makes samples reproducible per
sample: every random draw is keyed, never taken from a running stream. The starting noise of
sample ``index`` is `generation.sample_noise(seed, index)` (the one-step generator's, so both
models start from the same latent), and the churn noise of step ``i`` comes from the stream
``(seed, index, HEUN_STREAM, i)``, drawn on every step as EDM draws it, used only where the
step's gamma is not 0. Batch size, resume and sharding therefore change nothing.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .generation import _labels, _rng, sample_noise, to_uint8_nhwc

HEUN_STREAM = 3  # third SeedSequence word of the churn noise: (seed, index, HEUN_STREAM, step)


@dataclass(frozen=True)
class HeunConfig:
    """EDM sampler settings. The defaults are EDM's deterministic sampler; `imagenet64` is EDM's ImageNet-64 setting."""

    steps: int = 18
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    s_churn: float = 0.0
    s_min: float = 0.0
    s_max: float = math.inf
    s_noise: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps!r}")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {self.sigma_min} and {self.sigma_max}")
        if self.s_churn < 0 or self.s_noise < 0:
            raise ValueError("s_churn and s_noise must not be negative")

    @classmethod
    def imagenet64(cls, steps: int = 256) -> HeunConfig:
        """EDM's ImageNet-64 sampler (its paper's Table 5): 256 stochastic steps, S_churn 40, S_min 0.05, S_max 50, S_noise 1.003."""
        return cls(steps=steps, s_churn=40.0, s_min=0.05, s_max=50.0, s_noise=1.003)

    @classmethod
    def from_schedule(cls, steps: int, churn: float = 0.0) -> HeunConfig:
        """The sampler a ``heun<K>[-churn<C>]`` schedule id names (`lake.layout.HeunSchedule`): EDM's
        deterministic sampler without churn, else EDM's ImageNet-64 stochastic setting with S_churn `churn`."""
        if not churn:
            return cls(steps=steps)
        return cls(steps=steps, s_churn=float(churn), s_min=0.05, s_max=50.0, s_noise=1.003)

    def step_sigmas(self) -> list[float]:
        """The sigma each step's first network pass sees (t_hat: t_i raised by the step's churn), in step order."""
        return [float(t) * (1 + self.gamma(float(t))) for t in self.time_steps()[:-1].tolist()]

    def time_steps(self) -> torch.Tensor:
        """t_0 > ... > t_(N-1) on the Karras schedule, then t_N = 0 (float64)."""
        i = torch.arange(self.steps, dtype=torch.float64)
        if self.steps == 1:
            t = torch.tensor([self.sigma_max], dtype=torch.float64)
        else:
            t = (self.sigma_max ** (1 / self.rho) + i / (self.steps - 1)
                 * (self.sigma_min ** (1 / self.rho) - self.sigma_max ** (1 / self.rho))) ** self.rho
        return torch.cat([t, torch.zeros(1, dtype=torch.float64)])

    def gamma(self, t_cur: float) -> float:
        """How much step noise is added at sigma `t_cur` (0 outside [s_min, s_max])."""
        return min(self.s_churn / self.steps, math.sqrt(2) - 1) if self.s_min <= t_cur <= self.s_max else 0.0


def churn_noise(seed: int, index: int, step: int, shape: Sequence[int] = (3, 64, 64)) -> torch.Tensor:
    """Standard-normal float32 noise (CPU) for the churn of `step` of sample `index` of the run seeded `seed`."""
    return torch.from_numpy(_rng(seed, index, HEUN_STREAM, step).standard_normal(tuple(shape), dtype=np.float32))


@dataclass(frozen=True)
class HeunStep:
    """One step's first pass: the sigma the network saw (t_hat) and its denoised estimate there; the image after the last step."""

    index: int
    t_hat: float
    denoised: torch.Tensor  # float32 NCHW on the network's device: this step's x0_hat
    image: torch.Tensor | None = None  # float64 NCHW at sigma 0, on the last step only


@torch.no_grad()
def heun_steps(G, seed: int, indices: Sequence[int], class_ids: torch.Tensor | Sequence[int],
               config: HeunConfig = HeunConfig(), shape: Sequence[int] = (3, 64, 64)) -> Iterator[HeunStep]:
    """Sample `indices` of the run seeded `seed` with EDM's sampler; yields each step right after its first pass.

    A step is yielded right after its first network pass (at t_hat), so activation hooks
    still hold that pass; the Heun correction's second pass runs when the caller asks for
    the next step. The last step (no correction, as in EDM) carries the final image.
    """
    module = getattr(G, "module", G)  # accept a LoadedGenerator too
    device = next(module.parameters()).device
    indices = [int(i) for i in indices]
    onehot = _labels(module, class_ids, len(indices), device)
    t_steps = config.time_steps().to(device)
    x_next = torch.stack([sample_noise(seed, i, shape) for i in indices]).to(device=device, dtype=torch.float64) * t_steps[0]
    for step in range(config.steps):
        t_cur, t_next = t_steps[step], t_steps[step + 1]
        x_cur = x_next
        t_hat = t_cur + config.gamma(float(t_cur)) * t_cur
        noise = torch.stack([churn_noise(seed, i, step, shape) for i in indices]).to(device=device, dtype=torch.float64)
        x_hat = x_cur + (t_hat ** 2 - t_cur ** 2).sqrt() * config.s_noise * noise
        denoised = module(x_hat, t_hat, onehot)  # one sigma for the batch, as EDM passes it
        d_cur = (x_hat - denoised.to(torch.float64)) / t_hat
        x_next = x_hat + (t_next - t_hat) * d_cur
        if step == config.steps - 1:
            yield HeunStep(step, float(t_hat), denoised, x_next)
            return
        yield HeunStep(step, float(t_hat), denoised)
        d_prime = (x_next - module(x_next, t_next, onehot).to(torch.float64)) / t_next
        x_next = x_hat + (t_next - t_hat) * (0.5 * d_cur + 0.5 * d_prime)


@torch.no_grad()
def heun_generate(G, seed: int, indices: Sequence[int], class_ids: torch.Tensor | Sequence[int],
                  config: HeunConfig = HeunConfig()) -> torch.Tensor:
    """The final images of `heun_steps` as uint8 NHWC (DMD2's evaluation rounding), on the CPU."""
    *_, last = heun_steps(G, seed, indices, class_ids, config)
    assert last.image is not None  # the last step always carries it
    return to_uint8_nhwc(last.image.to(torch.float32)).cpu()
