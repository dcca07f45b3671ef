"""The forward passes every job runs, on one compute block at a time (see `ingest.core.models`):
one-step and K-step generation (DMD2's, or EDM's Heun sampler), probes cut short after the deepest captured layer, full
denoiser passes (probe plus reconstruction), and sampling with a block's output replaced.

Each returns what the lake stores, still on the network's device, so blocks queue up
without synchronising; torch is imported inside the functions only.
"""
from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .recorded import RunModel


def conditioning_classes(class_ids: Any) -> Any:
    """The classes to condition a compute block's rows on: a row without a class (-1: a
    text-to-image sample) gets class 0. Such rows are never probed themselves, but they can
    share a compute block with rows that are, and the block runs whole (bit-exactness)."""
    return np.maximum(np.asarray(class_ids, dtype=np.int64), 0)


@dataclass
class BlockOutput:
    """One compute block's results, still on the network's device (so blocks queue up without syncing)."""

    means: dict[str, Any]  # layer -> (n, C) float32 tensor; (n, K, C) for K-step generation
    spatial: dict[str, Any]  # layer -> (n, C, H, W) float16 tensor (only when asked for)
    images: Any = None  # (n, 64, 64, 3) uint8 tensor, generation only (the last step's x0_hat)
    steps: Any = None  # (n, K, 64, 64, 3) uint8 tensor: every step's x0_hat, K-step generation only


def reduce_block(acts: dict[str, Any], layers: Sequence[str], keep_spatial: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    import torch

    means = {name: acts[name].to(torch.float32).mean(dim=(2, 3)) for name in layers}
    spatial = {name: acts[name].to(torch.float16) for name in layers} if keep_spatial else {}
    return means, spatial


def generate_block(module: Any, noise: Any, class_ids: Any, layers: Sequence[str]) -> BlockOutput:
    """One-step generation of a block (models.one_step_generate), capturing `layers`."""
    import models
    import torch

    captured: AbstractContextManager[dict[str, Any]] = models.capture(module, layers) if layers else nullcontext({})
    with torch.inference_mode(), captured as acts:
        images = models.one_step_generate(module, noise, class_ids)
        means, _ = reduce_block(acts, layers, keep_spatial=False)
    return BlockOutput(means=means, spatial={}, images=images)


def generate_steps_block(module: Any, noises: Any, class_ids: Any, sigmas: Sequence[float],
                         layers: Sequence[str]) -> BlockOutput:
    """K-step generation of a block (models.denoise_steps over `sigmas`), capturing `layers` at every step.

    `noises` is (K, n, 3, 64, 64), one standard-normal tensor per step. Each step's
    captured outputs are reduced to channel means right after its pass (the hooks keep
    only the latest pass), and stacked along a step axis: means (n, K, C).
    """
    import models
    import torch

    captured: AbstractContextManager[dict[str, Any]] = models.capture(module, layers) if layers else nullcontext({})
    per_step: list[dict[str, Any]] = []
    images = []
    with torch.inference_mode(), captured as acts:
        for x0_hat in models.denoise_steps(module, noises, class_ids, sigmas):
            images.append(models.to_uint8_nhwc(x0_hat))
            per_step.append(reduce_block(acts, layers, keep_spatial=False)[0])
    steps = torch.stack(images, dim=1)
    means = {name: torch.stack([step[name] for step in per_step], dim=1) for name in layers}
    return BlockOutput(means=means, spatial={}, images=steps[:, -1], steps=steps)


def heun_block(module: Any, seed: int, indices: Sequence[int], class_ids: Any, config: Any,
               layers: Sequence[str]) -> BlockOutput:
    """EDM's Heun sampler (`models.heun.heun_steps`, `config` a HeunConfig) over a block, capturing `layers`.

    Every step's first pass (at the step's t_hat) gives that step's x0_hat image and channel
    means, as `generate_steps_block` gives DMD2's; the image is the sampler's final one.
    """
    import models
    import torch
    from models.heun import heun_steps

    captured: AbstractContextManager[dict[str, Any]] = models.capture(module, layers) if layers else nullcontext({})
    per_step: list[dict[str, Any]] = []
    images = []
    final = None
    with torch.inference_mode(), captured as acts:
        for step in heun_steps(module, seed, indices, class_ids, config):
            images.append(models.to_uint8_nhwc(step.denoised.to(torch.float32)))
            per_step.append(reduce_block(acts, layers, keep_spatial=False)[0])
            final = step.image
    assert final is not None  # the last step carries the image
    means = {name: torch.stack([step[name] for step in per_step], dim=1) for name in layers}
    return BlockOutput(means=means, spatial={}, images=models.to_uint8_nhwc(final.to(torch.float32)),
                       steps=torch.stack(images, dim=1))


def probe_block(module: Any, x0: Any, eps: Any, sigma: float, class_ids: Any, layers: Sequence[str],
                keep_spatial: bool) -> BlockOutput:
    """Run a block through the network as a denoiser at noise level `sigma`: D(x0 + sigma*eps, sigma, onehot(class)).

    `x0` and `eps` are (n, 3, 64, 64) float32 on the module's device. The pass stops
    after the deepest of `layers` (models.capture's stop_early).
    """
    import models
    import torch
    from torch.nn import functional as F

    n = x0.shape[0]
    labels = F.one_hot(class_ids.to(x0.device), module.label_dim).to(torch.float32)
    sigmas = torch.full((n,), float(sigma), dtype=torch.float32, device=x0.device)
    with torch.inference_mode():
        with models.capture(module, layers, stop_early=True) as acts:
            module(x0 + float(sigma) * eps, sigmas, labels)
        means, spatial = reduce_block(acts, layers, keep_spatial)
    return BlockOutput(means=means, spatial=spatial)


@dataclass
class DenoisedBlock:
    """A full denoiser pass over one compute block at one sigma, still on the network's device."""

    output: BlockOutput  # the captured layers' means (and spatial maps when asked)
    noisy: Any  # (n, 64, 64, 3) uint8 tensor: the pass's input, clipped
    x0_hat: Any  # (n, 64, 64, 3) uint8 tensor: the pass's output


def denoise_block(module: Any, x0: Any, eps: Any, sigma: float, class_ids: Any, layers: Sequence[str] = (),
                  keep_spatial: bool = False) -> DenoisedBlock:
    """D(x0 + sigma*eps, sigma, onehot(class)) over a whole block, capturing `layers` on the way.

    The same computation as `probe_block` but run to the end (no
    stop_early), so the captured values are bit-identical to a probe's and the output
    image comes with them. `x0` and `eps` are (n, 3, 64, 64) float32 on the module's device.
    """
    import torch
    from torch.nn import functional as F

    import models

    n = x0.shape[0]
    labels = F.one_hot(class_ids.to(x0.device), module.label_dim).to(torch.float32)
    sigmas = torch.full((n,), float(sigma), dtype=torch.float32, device=x0.device)
    captured: AbstractContextManager[dict[str, Any]] = models.capture(module, layers) if layers else nullcontext({})
    with torch.inference_mode(), captured as acts:
        noisy = x0 + float(sigma) * eps  # exactly the probe's input (probe_block spells it the same)
        x0_hat = module(noisy, sigmas, labels)
        means, spatial = reduce_block(acts, layers, keep_spatial)
        return DenoisedBlock(output=BlockOutput(means=means, spatial=spatial),
                             noisy=models.to_uint8_nhwc(noisy.clamp(-1, 1)), x0_hat=models.to_uint8_nhwc(x0_hat))


def block_inputs(images: np.ndarray, sample_ids: Sequence[str], noise_seed: int, device: Any) -> tuple[Any, Any]:
    """x0 (n, 3, 64, 64) from uint8 HWC images and each sample's probe noise eps, on `device`."""
    import torch

    import models

    x0 = torch.from_numpy(images).permute(0, 3, 1, 2).to(device, torch.float32) / 127.5 - 1
    eps = torch.stack([models.probe_noise(noise_seed, s, x0.shape[1:]) for s in sample_ids]).to(device)
    return x0, eps


@dataclass
class Passes:
    """Images and generation-pass means of a batch of edited samples (CPU, numpy)."""

    images: np.ndarray  # (n, 64, 64, 3) uint8: the last step's x0_hat
    means: dict[str, np.ndarray]  # layer -> (n, C) float32 of the first (sigma 80) pass; one-step edits only


def run_passes(model: RunModel, noises: Any, labels: Any, sigmas: Sequence[float], layers: Sequence[str] = (),
               replacement: dict[str, Any] | None = None) -> Passes:
    """Sample from `noises` (K, n, 3, 64, 64) with label vectors `labels` (n, 1000) on schedule `sigmas`.

    The recurrence and its ops are `models.denoise_steps`', so with one-hot labels this is the
    generator's own sampling; label vectors may mix classes (interpolation). `replacement`
    (`models.replace` keywords) replaces a block's output in every pass. `layers` are captured
    in the first pass (their channel means, for ``generation/<layer>``), one-step only.
    """
    from contextlib import ExitStack

    import torch

    import models

    module, device = model.module, model.device
    labels = labels.to(device=device, dtype=torch.float32)
    with torch.inference_mode(), ExitStack() as stack:
        if replacement is not None:
            stack.enter_context(models.replace(module, **replacement))  # before capture: capture sees the replaced map
        acts = stack.enter_context(models.capture(module, list(layers))) if layers else {}
        x = noises[0].to(device=device, dtype=torch.float32) * float(sigmas[0])
        means: dict[str, np.ndarray] = {}
        for i, sigma in enumerate(sigmas):
            x0_hat = module(x, torch.full((x.shape[0],), float(sigma), device=device), labels)
            if i == 0:
                means = {name: acts[name].to(torch.float32).mean(dim=(2, 3)).cpu().numpy() for name in layers}
            if i + 1 < len(sigmas):
                x = x0_hat + float(sigmas[i + 1]) * noises[i + 1].to(device=device, dtype=torch.float32)
        images = models.to_uint8_nhwc(x0_hat).cpu().numpy()
    return Passes(images=images, means=means if len(sigmas) == 1 else {})


def one_hot(class_ids: Sequence[int], num_classes: int = 1000) -> Any:
    import torch
    from torch.nn import functional as F

    return F.one_hot(torch.as_tensor(list(class_ids), dtype=torch.int64), num_classes).to(torch.float32)




def layer_map(module: Any, x: Any, sigma: float, labels: Any, layer: str) -> Any:
    """The float32 output map (C, H, W) of `layer` for one input `x` (1, 3, 64, 64) at `sigma` with label
    vectors `labels` (1, 1000); the pass stops after `layer`."""
    import models
    import torch

    with torch.inference_mode(), models.capture(module, [layer], stop_early=True) as acts:
        module(x, torch.full((1,), float(sigma), device=x.device), labels.to(x.device))
    return acts[layer][0].to(torch.float32)
