"""Which network an ingest job runs: the model flags as a `ModelSpec`, loading it, and the identity
(`ModelIdentity`) every row it writes records, so nobody mistakes random weights for DMD2.

Determinism. On CPU (oneDNN) and GPU (cuDNN) a sample's output depends in its low bits
on the *other* samples in the same forward call. So the network only ever runs on
fixed *compute blocks*, whose membership is a function of the data alone (generated
indices k*B .. k*B+B-1; rows k*B .. of the samples table when probing), never of
--batch-size, resumption or the number of processes. The same block always produces
the same bits on the same device type and thread count (`compute_block` gives B).
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InputError

# Samples per network call, by device type. Small on CPU (little to gain from more,
# and padding a partial block costs whole forwards); larger on accelerators, where
# a call must carry enough work to keep the device busy.
COMPUTE_BLOCK = {"cpu": 8, "cuda": 32, "mps": 16}


def compute_block(device: Any) -> int:
    """Samples per network call on `device` (a torch.device or its type name)."""
    return COMPUTE_BLOCK.get(getattr(device, "type", str(device)), 8)


def add_model_flags(parser: argparse.ArgumentParser, multi_process: bool = False) -> None:
    """--model, --preset, --checkpoint, --device, --dtype: which network, with which weights, where."""
    parser.add_argument("--model", default=None, metavar="NAME",
                        help="the name this network has in the lake's model registry (lower-case letters, digits, "
                        "'-', '_'), e.g. teacher. Without it the network must be the lake's first model (a new "
                        "lake's first model is named after its --preset); another network is added under a new "
                        "NAME, its tables going to activations/NAME.<layer> and generation/NAME.<layer>")
    parser.add_argument("--preset", default="dmd2-imagenet64",
                        help="network architecture: dmd2-imagenet64 (the released model), tiny (1/6 width, same layer "
                        "names and attention) or micro (1/12 width, same layer names, attention only at 8x8; what the "
                        "demo and the tests run). Default dmd2-imagenet64")
    parser.add_argument("--checkpoint", default=None, metavar="PATH",
                        help="generator weights (.bin/.pt/.pth/.safetensors, the DMD2 release directory, or an EDM network "
                        "pickle .pkl such as the teacher edm-imagenet-64x64-cond-adm.pkl, read without running its code). "
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
    name: str | None = None  # --model: its registry name (None: the lake's first model; see ingest.core.registry)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ModelSpec:
        """The spec the parsed --model/--preset/--checkpoint/--device/--dtype flags describe."""
        return cls(preset=args.preset, checkpoint=args.checkpoint, device=args.device, dtype=args.dtype,
                   name=getattr(args, "model", None))


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

    from ..options import comma_list

    names = comma_list(text or "")
    if not names:
        return []
    try:
        return models.resolve_layers(names, module)
    except ValueError as exc:
        raise InputError(f"{flag}: {exc}") from None


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
