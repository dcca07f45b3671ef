"""Capturing block activations by layer name.

Layer names are the U-Net's block names (``enc.64x64_conv``, ``enc.32x32_down``,
``dec.8x8_in0``, ``dec.64x64_block3``, ...) plus ``out_conv`` (the raw network
output F), in forward order. A few readable aliases map onto them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from lake.schema import LAYER_ALIASES

from .networks import DhariwalUNet, EDMPrecond


def _unet(G) -> DhariwalUNet:
    module = getattr(G, "module", G)  # accept a LoadedGenerator too
    if isinstance(module, EDMPrecond):
        return module.model
    if isinstance(module, DhariwalUNet):
        return module
    raise TypeError(f"expected an EDMPrecond or DhariwalUNet, got {type(module).__name__}")


def _modules(G) -> dict[str, nn.Module]:
    unet = _unet(G)
    blocks = {f"enc.{k}": m for k, m in unet.enc.items()}
    blocks.update({f"dec.{k}": m for k, m in unet.dec.items()})
    blocks["out_conv"] = unet.out_conv
    return blocks


def layer_names(G) -> list[str]:
    """Canonical layer names of generator ``G`` in forward order."""
    return list(_modules(G))


def resolve_layers(names: Iterable[str] | str, G) -> list[str]:
    """Map layer names and aliases to canonical names (order kept, duplicates dropped).

    Raises ValueError for an unknown name, listing the valid layers and aliases.
    """
    if isinstance(names, str):
        names = [names]
    valid = layer_names(G)
    resolved: list[str] = []
    for name in names:
        canonical = LAYER_ALIASES.get(name, name)
        if canonical not in valid:
            aliases = ", ".join(f"{a}={c}" for a, c in LAYER_ALIASES.items())
            raise ValueError(f"unknown layer {name!r}; valid layers: {', '.join(valid)}; aliases: {aliases}")
        if canonical not in resolved:
            resolved.append(canonical)
    return resolved


class _StopForward(Exception):
    """Raised by a hook once the deepest wanted layer has run: the rest of the pass is waste."""


@contextmanager
def capture(G, layers: Iterable[str] | str, stop_early: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of ``layers`` during forward passes of ``G``.

    Yields a dict filled by forward hooks, keyed by canonical layer name (aliases
    resolved), holding each layer's output of the latest forward pass, detached.
    Hooks are removed on exit, also when the body raises.

    With ``stop_early`` the forward pass is cut short right after the deepest
    requested layer, and the ``with`` body ends there: probing the bottleneck needs
    only the encoder, so skipping the decoder (most of the FLOPs, at the highest
    resolutions) makes it several times cheaper without changing any captured value.

        with capture(G, ["bottleneck", "dec.16x16_up"]) as acts:
            G(x, sigma, labels)
        acts["enc.8x8_block2"]  # (N, C, 8, 8)
    """
    modules = _modules(G)
    names = resolve_layers(layers, G)
    acts: dict[str, torch.Tensor] = {}
    handles = []
    order = list(modules)
    deepest = max(names, key=order.index) if names else None
    stop_at = deepest if stop_early and deepest != order[-1] else None

    def hook_for(name: str):
        def hook(module, inputs, output):
            # The network never modifies a block's output in place afterwards,
            # so detaching (no copy) is safe.
            acts[name] = output.detach()
            if name == stop_at:
                raise _StopForward
        return hook

    try:
        for name in names:
            handles.append(modules[name].register_forward_hook(hook_for(name)))
        try:
            yield acts
        except _StopForward:
            pass
    finally:
        for handle in handles:
            handle.remove()
