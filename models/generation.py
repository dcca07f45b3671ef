"""One-step generation and reproducible per-sample randomness.

Every random draw is keyed by stable integers (seed, sample index, ...) through
numpy's SeedSequence and made on the CPU, so a sample's noise and class are pure
functions of their key: the same whatever the batch it is generated in or the
device the network runs on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional as F

SIGMA_MAX = 80.0  # DMD2's conditioning sigma for ImageNet-64
NUM_CLASSES = 1000
_CLASS_STREAM = 1  # third SeedSequence word: keeps class draws apart from noise draws


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
    class_ids = torch.as_tensor(class_ids, dtype=torch.int64, device=device).reshape(-1)
    if class_ids.shape[0] != noise.shape[0]:
        raise ValueError(f"got {noise.shape[0]} noise tensors but {class_ids.shape[0]} class ids")
    if class_ids.numel() and not 0 <= int(class_ids.min()) <= int(class_ids.max()) < module.label_dim:
        raise ValueError(f"class ids must lie in [0, {module.label_dim}), got {class_ids.tolist()}")
    onehot = F.one_hot(class_ids, module.label_dim).to(torch.float32)
    sigma = torch.full((noise.shape[0],), float(sigma_max), device=device)
    D = module(noise * sigma_max, sigma, onehot)
    return to_uint8_nhwc(D)
