"""Fusing a UNet LoRA (DMD2's four-step SDXL LoRA and the usual formats) into the base UNet.

diffusers fuses LoRAs only through the PEFT backend (``load_lora_weights``/``fuse_lora``
raise "PEFT backend is required" without the ``peft`` package), and all we ever need is
the fused weight, so we do the fusion ourselves: W += scale * (alpha / rank) * B @ A, per
Linear or Conv2d module. diffusers' own converters normalise the key formats first:
kohya/A1111 (``lora_unet_...lora_down.weight`` + ``.alpha``), diffusers
(``unet.<module>.lora.down.weight`` / ``.lora.up.weight``, what
``StableDiffusionXLPipeline.save_lora_weights`` writes and DMD2 ships), old diffusers
attention processors (``.to_q_lora.down``) and PEFT (``<module>.lora_A.weight``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from ..checkpoint import CheckpointError, read_state_dict
from .errors import T2ILoadError

_SHOW = 5


def normalise_lora(state: Mapping[str, torch.Tensor], unet_config=None, source: str = "<LoRA>"
                   ) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], dict[str, float]]:
    """``{module path: (A (down), B (up))}`` and ``{module path: alpha}`` of a UNet LoRA state dict.

    Raises T2ILoadError for text-encoder LoRA weights (only UNet LoRAs are fused) and for
    keys that are neither a LoRA down/up weight nor an alpha.
    """
    from diffusers.loaders.lora_conversion_utils import (_convert_non_diffusers_lora_to_diffusers,
                                                         _maybe_map_sgm_blocks_to_diffusers)
    from diffusers.utils.state_dict_utils import DIFFUSERS_TO_PEFT, UNET_TO_DIFFUSERS

    state = dict(state)
    alphas: dict[str, float] = {}
    if state and all(k.startswith(("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")) for k in state):
        if unet_config is not None:
            state = _maybe_map_sgm_blocks_to_diffusers(state, unet_config)
        converted, kohya_alphas = _convert_non_diffusers_lora_to_diffusers(state)
        state = dict(converted)
        # diffusers names them after the converted key ("unet.<...>.alpha"): canonicalised below.
        state.update({k: torch.tensor(float(v)) for k, v in (kohya_alphas or {}).items()})
    text = [k for k in state if k.startswith(("text_encoder.", "text_encoder_2.", "te."))]
    if text:
        raise T2ILoadError(f"LoRA {source} has text-encoder weights ({text[0]}, ...); only UNet LoRAs are supported")

    def canonical(key: str) -> str:
        for prefix in ("unet.", "base_model.model."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        key = key.replace(".processor.", ".")  # attention-processor LoRAs name attn1.processor.to_q_lora
        for old, new in (*UNET_TO_DIFFUSERS.items(), *DIFFUSERS_TO_PEFT.items()):
            if old in key:
                key = key.replace(old, new)
                break
        return key.replace(".lora_A.default.", ".lora_A.").replace(".lora_B.default.", ".lora_B.")

    downs: dict[str, torch.Tensor] = {}
    ups: dict[str, torch.Tensor] = {}
    bad: list[str] = []
    for key, value in state.items():
        k = canonical(key)
        if k.endswith(".lora_A.weight"):
            downs[k[: -len(".lora_A.weight")]] = value
        elif k.endswith(".lora_B.weight"):
            ups[k[: -len(".lora_B.weight")]] = value
        elif k.endswith(".alpha"):
            module = k[: -len(".alpha")]
            for suffix in (".lora_A.weight", ".lora_B.weight"):  # kohya alphas converted by diffusers
                module = module.removesuffix(suffix)
            alphas[module] = float(value.item() if isinstance(value, torch.Tensor) else value)
        else:
            bad.append(key)
    unpaired = sorted(set(downs) ^ set(ups))
    if bad or unpaired:
        what = bad[:_SHOW] if bad else unpaired[:_SHOW]
        raise T2ILoadError(f"LoRA {source}: not a LoRA down/up pair: {', '.join(what)}")
    if not downs:
        raise T2ILoadError(f"LoRA {source} holds no LoRA weights")
    return {m: (downs[m], ups[m]) for m in sorted(downs)}, alphas


def _metadata_alpha(file: Path) -> tuple[float | None, dict[str, float]]:
    """(lora_alpha, alpha_pattern) from the PEFT config diffusers stores in a safetensors header, if any.

    ``save_lora_weights`` writes it under "lora_adapter_metadata", its keys prefixed "unet."
    when saved through a pipeline.
    """
    if file.suffix.lower() != ".safetensors":
        return None, {}
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as f:
        raw = (f.metadata() or {}).get("lora_adapter_metadata")
    if not raw:
        return None, {}
    try:
        meta = {k.removeprefix("unet."): v for k, v in json.loads(raw).items()}
    except ValueError as e:
        raise T2ILoadError(f"LoRA {file}: unreadable lora_adapter_metadata ({e})") from e
    alpha = meta.get("lora_alpha")
    return (float(alpha) if alpha is not None else None), {k: float(v) for k, v in (meta.get("alpha_pattern") or {}).items()}


def lora_delta(weight_shape: torch.Size, down: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """B @ A in float32, shaped like the weight (Linear (out, in), or Conv2d (out, in, kh, kw) with B 1x1)."""
    delta = up.to(torch.float32).flatten(1) @ down.to(torch.float32).flatten(1)
    return delta.reshape(weight_shape)


def fuse_lora(unet, path: str | Path, scale: float = 1.0) -> list[str]:
    """Fuse the LoRA at ``path`` into ``unet`` in place; returns the module paths it changed.

    Every LoRA module must exist in ``unet`` with matching shapes, else T2ILoadError naming
    the file and the first bad keys (a LoRA made for another base is refused, not half-applied).
    """
    file = Path(path)
    try:
        state = read_state_dict(file)
    except (CheckpointError, OSError, FileNotFoundError) as e:
        raise T2ILoadError(f"LoRA {file} is unreadable: {e}") from e
    pairs, alphas = normalise_lora(state, getattr(unet, "config", None), source=str(file))
    default_alpha, alpha_pattern = _metadata_alpha(file)
    modules = dict(unet.named_modules())
    unknown = [m for m in pairs if m not in modules or not hasattr(modules[m], "weight")]
    if unknown:
        more = f" (+{len(unknown) - _SHOW} more)" if len(unknown) > _SHOW else ""
        raise T2ILoadError(f"LoRA {file}: {len(unknown)} key(s) match no UNet module: {', '.join(unknown[:_SHOW])}{more}")
    deltas: dict[str, torch.Tensor] = {}
    mismatched: list[str] = []
    for name, (down, up) in pairs.items():
        weight = modules[name].weight
        rank = down.shape[0]
        fits = (up.shape[0] == weight.shape[0] and up.shape[1] == rank and down.shape[1] == weight.shape[1]
                and down.flatten(1).shape[1] * up.flatten(1).shape[0] == weight.numel()
                and up.flatten(1).shape[1] == rank)
        if not fits:
            mismatched.append(f"{name} (A {tuple(down.shape)}, B {tuple(up.shape)} vs weight {tuple(weight.shape)})")
            continue
        alpha = alphas.get(name)
        if alpha is None:
            alpha = next((a for pat, a in alpha_pattern.items() if re.match(rf"(.*\.)?{pat}$", name)), default_alpha)
        # Without any alpha, diffusers/peft take alpha = rank: the delta is B @ A as stored.
        factor = scale * (alpha / rank if alpha is not None else 1.0)
        deltas[name] = factor * lora_delta(weight.shape, down, up)
    if mismatched:
        more = f" (+{len(mismatched) - _SHOW} more)" if len(mismatched) > _SHOW else ""
        raise T2ILoadError(f"LoRA {file} does not fit the base UNet: {', '.join(mismatched[:_SHOW])}{more}")
    # Only now, with every module checked, change the weights: nothing is half-applied.
    with torch.no_grad():
        for name, delta in deltas.items():
            weight = modules[name].weight
            weight.copy_((weight.to(torch.float32) + delta).to(weight.dtype))
    return list(deltas)
