"""One-step and multi-step generation, and reproducible per-sample randomness.

Every random draw is keyed by stable integers (seed, sample index, ...) through
numpy's SeedSequence and made on the CPU, so a sample's noise and class are pure
functions of their key: the same whatever the batch it is generated in or the
device the network runs on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.nn import functional as F

SIGMA_MAX = 80.0  # DMD2's conditioning sigma for ImageNet-64
NUM_CLASSES = 1000
_CLASS_STREAM = 1  # third SeedSequence word: keeps class draws apart from noise draws
STEP_STREAM = 2  # third SeedSequence word of the noise of multi-step steps >= 1: (seed, index, STEP_STREAM, step)
SIGMA_MIN = 0.5  # the smallest sigma the --steps schedules go down to (EDM's ImageNet-64 sampler uses 0.002;
#                  DMD2's generator is trained for sigma 80 only, and below 0.5 a step changes little at uint8)
KARRAS_RHO = 7.0


def _rng(*key: int) -> np.random.Generator:
    for k in key:
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 0:
            raise ValueError(f"random keys must be non-negative integers, got {key!r}")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(k) for k in key])))


def sample_noise(seed: int, index: int, shape: Sequence[int] = (3, 64, 64)) -> torch.Tensor:
    """Standard-normal float32 noise (CPU) for sample ``index`` of the run seeded ``seed``."""
    return torch.from_numpy(_rng(seed, index).standard_normal(tuple(shape), dtype=np.float32))


def sample_class(seed: int, index: int, samples_per_class: int | None = None,
                 num_classes: int = NUM_CLASSES) -> int:
    """Class of sample ``index``: uniform from its own RNG stream, or blocks of ``samples_per_class``.

    With ``samples_per_class=K``, indices 0..K-1 get class 0, K..2K-1 class 1, and
    so on, wrapping after ``num_classes`` classes.
    """
    if samples_per_class is not None:
        if samples_per_class < 1:
            raise ValueError(f"samples_per_class must be >= 1, got {samples_per_class}")
        return (index // samples_per_class) % num_classes
    return int(_rng(seed, index, _CLASS_STREAM).integers(0, num_classes))


def sample_batch(seed: int, indices: Sequence[int], samples_per_class: int | None = None,
                 shape: Sequence[int] = (3, 64, 64),
                 num_classes: int = NUM_CLASSES) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise (N, *shape) and class ids (N,) for the given sample indices (CPU tensors)."""
    noise = torch.stack([sample_noise(seed, i, shape) for i in indices])
    classes = torch.tensor([sample_class(seed, i, samples_per_class, num_classes) for i in indices],
                           dtype=torch.int64)
    return noise, classes


def sample_id_hash(sample_id: str) -> int:
    """Stable unsigned 64-bit hash of a sample id (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(sample_id.encode("utf-8"), digest_size=8).digest(), "little")


def probe_noise(noise_seed: int, sample_id: str, shape: Sequence[int] = (3, 64, 64)) -> torch.Tensor:
    """Standard-normal float32 noise (CPU) for probing the stored sample ``sample_id``."""
    return torch.from_numpy(
        _rng(noise_seed, sample_id_hash(sample_id)).standard_normal(tuple(shape), dtype=np.float32))


def to_uint8_nhwc(D: torch.Tensor) -> torch.Tensor:
    """Denoised images in [-1, 1] (NCHW) to uint8 NHWC, truncating like the DMD2 evaluation code."""
    return ((D + 1) * 127.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def step_noise(seed: int, index: int, step: int, shape: Sequence[int] = (3, 64, 64)) -> torch.Tensor:
    """Standard-normal float32 noise (CPU) of `step` of sample ``index`` of a multi-step run seeded ``seed``.

    Step 0 is exactly `sample_noise(seed, index)`, so a schedule starting at 80 begins
    with the very pass that makes the one-step sample; each later step draws from its own
    stream ``(seed, index, STEP_STREAM, step)``, independent of the batch and of the
    other steps.
    """
    if not isinstance(step, (int, np.integer)) or isinstance(step, bool) or step < 0:
        raise ValueError(f"step must be a non-negative integer, got {step!r}")
    if step == 0:
        return sample_noise(seed, index, shape)
    return torch.from_numpy(_rng(seed, index, STEP_STREAM, step).standard_normal(tuple(shape), dtype=np.float32))


def step_noise_batch(seed: int, indices: Sequence[int], steps: int, shape: Sequence[int] = (3, 64, 64)) -> torch.Tensor:
    """The noise of every step of the given samples: (steps, N, *shape) float32 on the CPU."""
    return torch.stack([torch.stack([step_noise(seed, int(i), k, shape) for i in indices]) for k in range(steps)])


def karras_sigmas(steps: int, sigma_max: float = SIGMA_MAX, sigma_min: float = SIGMA_MIN,
                  rho: float = KARRAS_RHO) -> list[float]:
    """The input sigma of each of `steps` steps, Karras et al. (2022) eq. 5: decreasing from `sigma_max` to `sigma_min`.

    ``sigma_i = (sigma_max^(1/rho) + i/(K-1) * (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho``;
    one step is ``[sigma_max]`` (the one-step generator). ``karras_sigmas(4)`` is about
    ``[80, 21.36, 4.19, 0.5]``. The ends are exact (no rounding error at sigma_min).
    """
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min} and {sigma_max}")
    if steps == 1:
        return [float(sigma_max)]
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    inner = [(hi + i / (steps - 1) * (lo - hi)) ** rho for i in range(1, steps - 1)]
    return [float(sigma_max), *(float(v) for v in inner), float(sigma_min)]


def _labels(module, class_ids: torch.Tensor | Sequence[int], n: int, device: torch.device) -> torch.Tensor:
    """One-hot float32 labels on `device`, after checking count and range of `class_ids`."""
    class_ids = torch.as_tensor(class_ids, dtype=torch.int64, device=device).reshape(-1)
    if class_ids.shape[0] != n:
        raise ValueError(f"got {n} noise tensors but {class_ids.shape[0]} class ids")
    if class_ids.numel() and not 0 <= int(class_ids.min()) <= int(class_ids.max()) < module.label_dim:
        raise ValueError(f"class ids must lie in [0, {module.label_dim}), got {class_ids.tolist()}")
    return F.one_hot(class_ids, module.label_dim).to(torch.float32)


@torch.no_grad()
def denoise_steps(G, noises: torch.Tensor | Sequence[torch.Tensor], class_ids: torch.Tensor | Sequence[int],
                  sigmas: Sequence[float]) -> Iterator[torch.Tensor]:
    """Multi-step sampling with the one-step generator, as DMD2 samples its multi-step models; yields each step.

    ``x = sigma_0 * eps_0``; at step i ``x0_hat_i = D(x, sigma_i, onehot(class))``, and if a
    step follows, ``x = x0_hat_i + sigma_(i+1) * eps_(i+1)``. ``noises`` holds one
    standard-normal (N, C, H, W) tensor per step (eps_i; `step_noise_batch`). Yields
    each step's x0_hat as the network returns it (float, NCHW, on G's device), right
    after that step's forward pass, so hooks (`capture`) still hold that pass.

    The re-noised input is built from the float x0_hat, not its uint8 image: DMD2's
    multi-step code works on floats, and quantising would add an error of up to 1/127.5
    that the network never saw in training. (Both are pure functions of the key, so
    determinism does not depend on the choice.)
    """
    if not len(sigmas):
        raise ValueError("a schedule needs at least one sigma")
    if len(noises) != len(sigmas):
        raise ValueError(f"got {len(noises)} noise tensors for {len(sigmas)} steps; one per step")
    module = getattr(G, "module", G)  # accept a LoadedGenerator too
    device = next(module.parameters()).device
    first = noises[0].to(device=device, dtype=torch.float32)
    onehot = _labels(module, class_ids, first.shape[0], device)
    # The same ops as one_step_generate, so step 0 at sigma 80 is its pass bit for bit.
    x = first * float(sigmas[0])
    for i, sigma in enumerate(sigmas):
        x0_hat = module(x, torch.full((x.shape[0],), float(sigma), device=device), onehot)
        yield x0_hat
        if i + 1 < len(sigmas):
            x = x0_hat + float(sigmas[i + 1]) * noises[i + 1].to(device=device, dtype=torch.float32)


@torch.no_grad()
def multi_step_generate(G, noises: torch.Tensor | Sequence[torch.Tensor], class_ids: torch.Tensor | Sequence[int],
                        sigmas: Sequence[float]) -> torch.Tensor:
    """Generate images in ``len(sigmas)`` steps (`denoise_steps`); every step's x0_hat as uint8 (N, K, H, W, C).

    The last step (``[:, -1]``) is the final image. With ``sigmas=[80]`` and
    ``noises=[noise]`` this is `one_step_generate` bit for bit.
    """
    return torch.stack([to_uint8_nhwc(x0_hat) for x0_hat in denoise_steps(G, noises, class_ids, sigmas)], dim=1)


@torch.no_grad()
def one_step_generate(G, noise: torch.Tensor, class_ids: torch.Tensor | Sequence[int],
                      sigma_max: float = SIGMA_MAX) -> torch.Tensor:
    """Generate images in one step: ``D(noise * sigma_max, sigma_max, onehot(class_ids))``.

    ``noise`` is (N, C, H, W) standard normal; it and the labels are moved to
    ``G``'s device. Returns uint8 NHWC on that device.
    """
    module = getattr(G, "module", G)  # accept a LoadedGenerator too
    device = next(module.parameters()).device
    noise = noise.to(device=device, dtype=torch.float32)
    onehot = _labels(module, class_ids, noise.shape[0], device)
    sigma = torch.full((noise.shape[0],), float(sigma_max), device=device)
    D = module(noise * sigma_max, sigma, onehot)
    return to_uint8_nhwc(D)
