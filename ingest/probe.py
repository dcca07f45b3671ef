"""The network side of `ingest generate` and `ingest activations`: load a generator, run it
in fixed blocks, and reduce captured block outputs to what the lake stores.

Determinism. On CPU (oneDNN) and GPU (cuDNN) a sample's output depends in its low bits
on the *other* samples in the same forward call. So the network only ever runs on
fixed *compute blocks*, whose membership is a function of the data alone (generated
indices k*B .. k*B+B-1; rows k*B .. of the samples table when probing), never of
--batch-size, resumption or the number of processes. The same block always produces
the same bits on the same device type and thread count.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from .errors import InputError

# Samples per network call, by device type. Small on CPU (little to gain from more,
# and padding a partial block costs whole forwards); larger on accelerators, where
# a call must carry enough work to keep the device busy.
COMPUTE_BLOCK = {"cpu": 8, "cuda": 32, "mps": 16}


def compute_block(device: Any) -> int:
    """Samples per network call on `device` (a torch.device or its type name)."""
    return COMPUTE_BLOCK.get(getattr(device, "type", str(device)), 8)


def conditioning_classes(class_ids: Any) -> Any:
    """The classes to condition a compute block's rows on: a row without a class (-1: a
    text-to-image sample) gets class 0. Such rows are never probed themselves, but they can
    share a compute block with rows that are, and the block runs whole (bit-exactness)."""
    import numpy as np

    return np.maximum(np.asarray(class_ids, dtype=np.int64), 0)


def add_model_flags(parser: argparse.ArgumentParser, multi_process: bool = False) -> None:
    """--preset, --checkpoint, --device, --dtype: which network, with which weights, where."""
    parser.add_argument("--preset", default="dmd2-imagenet64",
                        help="network architecture: dmd2-imagenet64 (the released model) or tiny (1/6 width, "
                        "same layer names; for tests and CPU demos). Default dmd2-imagenet64")
    parser.add_argument("--checkpoint", default=None, metavar="PATH",
                        help="generator weights (.bin/.pt/.pth/.safetensors, or the DMD2 release directory). "
                        "Without it the network has seeded random weights, recorded as weights=random everywhere")
    launched = "; under `accelerate launch` each process uses its own GPU (cpu: gloo processes)" if multi_process else ""
    parser.add_argument("--device", default="auto",
                        help=f"auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps{launched}")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"],
                        help="compute precision: fp32 (default) or bf16 (CUDA only); stored activations are float32 either way")


@dataclass(frozen=True)
class ModelSpec:
    """Which network to load, with which weights, where: what the model flags say, as a value."""

    preset: str = "dmd2-imagenet64"
    checkpoint: str | None = None  # None: seeded random weights (recorded as weights=random)
    device: str = "auto"  # auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps
    dtype: str = "fp32"  # fp32 or bf16 (CUDA only)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ModelSpec:
        """The spec the parsed --preset/--checkpoint/--device/--dtype flags describe."""
        return cls(preset=args.preset, checkpoint=args.checkpoint, device=args.device, dtype=args.dtype)


@dataclass(frozen=True)
class ModelIdentity:
    """What the lake records about the network that produced a result."""

    model_id: str
    preset: str
    weights: str  # "random" or "checkpoint"
    checkpoint_name: str | None
    checkpoint_sha256: str | None
    dtype: str

    def attrs(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "preset": self.preset, "weights": self.weights,
                "checkpoint": self.checkpoint_name or "", "checkpoint_sha256": self.checkpoint_sha256 or ""}


def load_model(spec: ModelSpec, device: Any = None) -> tuple[Any, ModelIdentity]:
    """Load the generator `spec` names (on `device` when given); every failure is an InputError naming the flag."""
    import models

    requested = spec.device if device is None else device
    try:
        models.get_preset(spec.preset)
    except ValueError as exc:
        raise InputError(f"--preset: {exc}") from None
    try:
        torch_device = models.pick_device(None if requested == "auto" else str(requested))
    except ValueError as exc:
        raise InputError(f"--device: {exc}") from None
    try:
        models.pick_dtype(spec.dtype, torch_device)
    except ValueError as exc:
        raise InputError(f"--dtype: {exc}") from None
    try:
        loaded = models.load_generator(spec.preset, checkpoint=spec.checkpoint, device=str(torch_device), dtype=spec.dtype)
    except (FileNotFoundError, ValueError) as exc:  # CheckpointError and CheckpointMismatchError are ValueErrors
        raise InputError(f"--checkpoint {spec.checkpoint}: {exc}") from None
    identity = ModelIdentity(
        model_id=loaded.model_id, preset=loaded.preset, weights=loaded.weights,
        checkpoint_name=loaded.checkpoint_name, checkpoint_sha256=loaded.checkpoint_sha256, dtype=spec.dtype,
    )
    return loaded, identity


def random_weights_note(identity: ModelIdentity) -> str | None:
    """A one-line warning when the network is untrained, so nobody mistakes it for DMD2."""
    if identity.weights != "random":
        return None
    return (f"note: no --checkpoint: {identity.preset} runs with seeded random weights "
            f"(model_id {identity.model_id}); everything written records weights=random")


def resolve_layer_flag(text: str | None, module: Any, flag: str = "--layers") -> list[str]:
    """Canonical layer names from a comma-separated flag (aliases allowed), in the order given."""
    import models

    names = [t.strip() for t in (text or "").split(",") if t.strip()]
    if not names:
        return []
    try:
        return models.resolve_layers(names, module)
    except ValueError as exc:
        raise InputError(f"{flag}: {exc}") from None


@dataclass
class BlockOutput:
    """One compute block's results, still on the network's device (so blocks queue up without syncing)."""

    means: dict[str, Any]  # layer -> (n, C) float32 tensor; (n, K, C) for K-step generation
    spatial: dict[str, Any]  # layer -> (n, C, H, W) float16 tensor (only when asked for)
    images: Any = None  # (n, 64, 64, 3) uint8 tensor, generation only (the last step's x0_hat)
    steps: Any = None  # (n, K, 64, 64, 3) uint8 tensor: every step's x0_hat, K-step generation only


def _reduce(acts: dict[str, Any], layers: Sequence[str], keep_spatial: bool) -> tuple[dict[str, Any], dict[str, Any]]:
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
        means, _ = _reduce(acts, layers, keep_spatial=False)
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
            per_step.append(_reduce(acts, layers, keep_spatial=False)[0])
    steps = torch.stack(images, dim=1)
    means = {name: torch.stack([step[name] for step in per_step], dim=1) for name in layers}
    return BlockOutput(means=means, spatial={}, images=steps[:, -1], steps=steps)


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
        means, spatial = _reduce(acts, layers, keep_spatial)
    return BlockOutput(means=means, spatial=spatial)


def layer_shapes(module: Any, layers: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """(channels, height, width) of each layer's output, read off the network without running it.

    Every block knows its output channels; its resolution is in its name
    (``enc.8x8_block2``), and the output convolution works at full resolution.
    """
    import re

    shapes = {}
    for name in layers:
        block = module.get_submodule(f"model.{name}")
        match = re.search(r"(\d+)x(\d+)", name)
        height, width = (int(match.group(1)), int(match.group(2))) if match else (module.img_resolution,) * 2
        shapes[name] = (int(block.out_channels), height, width)
    return shapes
