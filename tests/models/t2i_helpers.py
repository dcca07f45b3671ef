"""Shared pieces of the models/t2i tests: tiny bases built once per module, the bare UNet's eps."""

from __future__ import annotations

from pathlib import Path

import torch


def tiny_base(tmp_path_factory, family: str, seed: int = 0) -> Path:
    """A tiny diffusers-format base folder of ``family`` written by ``build_tiny_base`` into a fresh tmp dir."""
    from models.t2i import build_tiny_base

    return build_tiny_base(tmp_path_factory.mktemp(f"base_{family}") / family, family=family, seed=seed)


def unet_eps(model, x: torch.Tensor, t: int, embeds, height: int, width: int) -> torch.Tensor:
    """The bare UNet's eps for latents ``x`` at timestep ``t``, conditioned as the issue describes."""
    n = x.shape[0]
    added = None
    if model.family.name == "sdxl":
        time_ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=torch.float32).repeat(n, 1)
        added = {"text_embeds": embeds.pooled, "time_ids": time_ids}
    with torch.no_grad():
        return model.unet(x, torch.tensor(t), encoder_hidden_states=embeds.embeds, added_cond_kwargs=added).sample
