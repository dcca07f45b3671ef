"""Capturing and replacing block activations by layer name.

Layer names are the U-Net's block names (``enc.64x64_conv``, ``enc.32x32_down``,
``dec.8x8_in0``, ``dec.64x64_block3``, ...) plus ``out_conv`` (the raw network
output F), in forward order. A few readable aliases map onto them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
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


def _replacement_mask(output: torch.Tensor, mask: torch.Tensor | None, channels: Sequence[int] | None) -> torch.Tensor | None:
    """(C, H, W) bool: where a block's output is replaced; None means everywhere."""
    if mask is None and channels is None:
        return None
    c, h, w = output.shape[1:]
    where = torch.ones((c, h, w), dtype=torch.bool, device=output.device)
    if mask is not None:
        if tuple(mask.shape) != (h, w):
            raise ValueError(f"mask has shape {tuple(mask.shape)}, the layer's map is {h}x{w}")
        where &= mask.to(device=output.device, dtype=torch.bool)[None]
    if channels is not None:
        chosen = torch.zeros(c, dtype=torch.bool, device=output.device)
        chosen[torch.as_tensor(list(channels), dtype=torch.int64, device=output.device)] = True
        where &= chosen[:, None, None]
    return where


@contextmanager
def replace(G, layer: str, value: torch.Tensor, mask: torch.Tensor | None = None,
            channels: Sequence[int] | None = None) -> Iterator[None]:
    """Replace the output of block `layer` by `value` during forward passes of ``G`` (activation masking).

    `value` is one map (C, H, W) or (1, C, H, W), broadcast over the batch. With `mask`
    (H x W bool) only those spatial positions are replaced, with `channels` (indices) only
    those channels; both together replace their intersection, and the rest of the output
    is the block's own. Everything downstream (later blocks, and for an encoder block its
    skip connection) sees the replaced output. The hook is removed on exit, also when the
    body raises. Enter `replace` before `capture` to capture the replaced values: hooks run
    in registration order, each seeing what the previous one returned.

        with replace(G, "bottleneck", mean_map, mask=centre):
            images = one_step_generate(G, noise, classes)
    """
    name = resolve_layers(layer, G)[0]
    module = _modules(G)[name]
    if value.dim() == 4:
        if value.shape[0] != 1:
            raise ValueError(f"value must be one map (C, H, W) or (1, C, H, W), got {tuple(value.shape)}")
        value = value[0]
    if channels is not None:
        channels = [int(c) for c in channels]
        if any(not 0 <= c < value.shape[0] for c in channels):
            raise ValueError(f"channels must lie in [0, {value.shape[0]}), got {channels}")

    def hook(module, inputs, output):
        if tuple(output.shape[1:]) != tuple(value.shape):
            raise ValueError(f"{name} outputs {tuple(output.shape[1:])} per sample, the replacement is {tuple(value.shape)}")
        replacement = value.to(device=output.device, dtype=output.dtype).expand_as(output)
        where = _replacement_mask(output, mask, channels)
        # A fresh tensor either way: the block's own output may be referenced elsewhere (skips).
        return replacement.clone() if where is None else torch.where(where, replacement, output)

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
