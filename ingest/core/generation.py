"""What a generated sample is a function of: its class (`ClassPlan`, from the seed and the flags) and its
noise (from the seed and its index), and the pass that turns a compute block of indices into images.

Shared by `ingest generate` and the edits that recompute or start from generated samples.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lake.layout import ONE_STEP_SCHEDULE

from .forward import BlockOutput, generate_block, generate_steps_block, heun_block

NUM_CLASSES = 1000
ONE_STEP = ONE_STEP_SCHEDULE  # the default schedule: DMD2's one-step generator, today's samples and ids
SIGMA_LIMIT = 80.0  # the generator is conditioned on sigma <= 80 (EDM's sigma_max for ImageNet-64)
NOISE_SHAPE = (3, 64, 64)


@dataclass(frozen=True)
class ClassPlan:
    """Which class sample `index` gets: a pure function of (seed, index) and the flags."""

    seed: int
    samples_per_class: int | None = None
    classes: tuple[int, ...] | None = None  # in the order given; None: all 1000 in standard order

    def class_of(self, index: int) -> int:
        import models

        pool = self.classes or tuple(range(NUM_CLASSES))
        if self.samples_per_class is not None:
            return pool[(index // self.samples_per_class) % len(pool)]
        return pool[models.sample_class(self.seed, index, num_classes=len(pool))]

    def classes_of(self, indices: np.ndarray) -> np.ndarray:
        return np.array([self.class_of(int(i)) for i in indices], dtype=np.int64)


def generate_indices(module: Any, device: Any, seed: int, indices: np.ndarray, class_ids: Any,
                     sigmas: Sequence[float], layers: Sequence[str], noise_shape: tuple[int, ...] = NOISE_SHAPE,
                     heun: Any = None) -> BlockOutput:
    """Generate samples `indices` of `seed` (one compute block) with `class_ids` on schedule `sigmas`, capturing `layers`.

    One step at 80 is `generate_block` on each index's one-step noise (`models.sample_noise`);
    any other schedule is `generate_steps_block` on every step's noise (`models.step_noise_batch`).
    With `heun` (a `models.heun.HeunConfig`) it is EDM's sampler instead (`heun_block`; `sigmas` unused),
    from the same starting noise as the one-step generator's sample.
    """
    import models
    import torch

    if heun is not None:
        return heun_block(module, seed, [int(i) for i in indices], class_ids.to(device), heun, layers)
    if tuple(sigmas) != ONE_STEP:
        noises = models.step_noise_batch(seed, [int(i) for i in indices], len(sigmas), noise_shape)
        return generate_steps_block(module, noises.to(device), class_ids, sigmas, layers)
    noise = torch.stack([models.sample_noise(seed, int(i), noise_shape) for i in indices]).to(device)
    return generate_block(module, noise, class_ids, layers)
