"""Our implementation of the DMD2 ImageNet-64 one-step generator.

    from models import load_generator, one_step_generate, sample_batch, capture

    gen = load_generator("dmd2-imagenet64", checkpoint="pytorch_model.bin", device="cuda")
    noise, classes = sample_batch(seed=0, indices=range(8))
    with capture(gen.module, ["bottleneck"]) as acts:
        images = one_step_generate(gen.module, noise, classes)  # uint8 NHWC
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Before torch: importing .threads sets OMP_WAIT_POLICY, which libgomp reads once, when torch loads it.
from .threads import ThreadConfig, configure_threads  # isort: skip

import torch
from torch import nn

from .capture import LAYER_ALIASES, capture, layer_names, replace, resolve_layers
from .checkpoint import CheckpointError, CheckpointMismatchError, load_checkpoint
from .device import pick_device, pick_dtype
from .generation import (denoise_steps, karras_sigmas, multi_step_generate, one_step_generate, probe_noise,
                         sample_batch, sample_class, sample_noise, step_noise, step_noise_batch, to_uint8_nhwc)
from .networks import EDMPrecond
from .presets import PRESETS, GeneratorConfig, get_preset

__all__ = [
    "build_generator", "load_generator", "LoadedGenerator", "GeneratorConfig", "PRESETS", "get_preset",
    "layer_names", "resolve_layers", "capture", "replace", "LAYER_ALIASES",
    "one_step_generate", "sample_noise", "sample_class", "sample_batch", "probe_noise", "to_uint8_nhwc",
    "multi_step_generate", "denoise_steps", "karras_sigmas", "step_noise", "step_noise_batch",
    "pick_device", "pick_dtype", "CheckpointError", "CheckpointMismatchError", "configure_threads", "ThreadConfig",
]


def _finish(module: nn.Module) -> nn.Module:
    # Inference only: eval mode, and no parameter gradients (input gradients still work).
    return module.eval().requires_grad_(False)


def build_generator(preset: str, seed: int = 0) -> nn.Module:
    """Network of ``preset`` on the CPU in fp32 and eval mode, with random weights fixed by ``seed``."""
    return _finish(EDMPrecond(**get_preset(preset).network_kwargs(), init_seed=seed))


@dataclass(frozen=True)
class LoadedGenerator:
    """A ready-to-run generator and where its weights came from."""

    module: nn.Module
    preset: str
    weights: str  # "random" or "checkpoint"
    checkpoint_name: str | None
    checkpoint_sha256: str | None
    device: torch.device
    dtype: torch.dtype
    seed: int | None = None  # the init seed for random weights

    @property
    def model_id(self) -> str:
        """Short stable identifier of the weights, e.g. ``dmd2-imagenet64-3f2a9c01b7de``."""
        # The id grammar is the lake's (lake.layout); lake never imports models, so no cycle.
        from lake.layout import checkpoint_model_id, random_model_id

        if self.weights == "checkpoint":
            return checkpoint_model_id(self.preset, self.checkpoint_sha256 or "")
        return random_model_id(self.preset, self.seed if self.seed is not None else 0)  # load_generator always sets it

    @property
    def config(self) -> GeneratorConfig:
        return get_preset(self.preset)


def load_generator(preset: str, checkpoint: str | Path | None = None, device: str | None = None,
                   dtype: str = "fp32", seed: int = 0) -> LoadedGenerator:
    """Build ``preset`` with checkpoint weights (strict load) or, without one, random weights from ``seed``.

    ``device``: None/"auto", "cpu", "cuda", "cuda:N", "mps"; ``dtype``: "fp32" or "bf16" (CUDA only).
    Raises ValueError for an unknown preset, device or dtype, FileNotFoundError for
    a missing checkpoint, CheckpointError for an unreadable one and
    CheckpointMismatchError when it does not fit the preset.
    """
    config = get_preset(preset)
    configure_threads()  # every job that runs the generator loads it here (see models.threads)
    torch_device = pick_device(device)
    torch_dtype = pick_dtype(dtype, torch_device)
    if checkpoint is None:
        module = EDMPrecond(**config.network_kwargs(), init_seed=seed)
        name = sha = None
    else:
        # No random init: every value is about to be overwritten by the strict load.
        module = EDMPrecond(**config.network_kwargs(), init_seed=None)
        info = load_checkpoint(module, checkpoint)
        name, sha = info.name, info.sha256
    module.to(device=torch_device, dtype=torch_dtype)  # in place: nn.Module.to returns the module itself
    _finish(module)
    return LoadedGenerator(
        module=module, preset=preset, weights="random" if checkpoint is None else "checkpoint",
        checkpoint_name=name, checkpoint_sha256=sha, device=torch_device, dtype=torch_dtype,
        seed=seed if checkpoint is None else None)
