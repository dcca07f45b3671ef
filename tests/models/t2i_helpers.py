"""Shared pieces of the models/t2i tests: tiny bases built once per module, diffusers' own pipelines."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def tiny_base(tmp_path_factory, family: str, seed: int = 0) -> Path:
    """A tiny diffusers-format base folder of ``family`` written by ``build_tiny_base`` into a fresh tmp dir."""
    from models.t2i import build_tiny_base

    return build_tiny_base(tmp_path_factory.mktemp(f"base_{family}") / family, family=family, seed=seed)


def diffusers_pipeline(model, base: Path):
    """diffusers' own pipeline over ``model``'s components with an LCMScheduler (no image processor, no safety checker)."""
    from diffusers import LCMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

    scheduler = LCMScheduler.from_config(json.loads((base / "scheduler" / "scheduler_config.json").read_text()))
    if model.family.name == "sdxl":
        return StableDiffusionXLPipeline(
            vae=model.vae, text_encoder=model.text_encoders[0], text_encoder_2=model.text_encoders[1],
            tokenizer=model.tokenizers[0], tokenizer_2=model.tokenizers[1], unet=model.unet, scheduler=scheduler,
            image_encoder=None, feature_extractor=None, add_watermarker=False)
    return StableDiffusionPipeline(
        vae=model.vae, text_encoder=model.text_encoders[0], tokenizer=model.tokenizers[0], unet=model.unet,
        scheduler=scheduler, safety_checker=None, feature_extractor=None, image_encoder=None,
        requires_safety_checker=False)


def unet_eps(model, x: torch.Tensor, t: int, embeds, height: int, width: int) -> torch.Tensor:
    """The bare UNet's eps for latents ``x`` at timestep ``t``, conditioned as the issue describes."""
    n = x.shape[0]
    added = None
    if model.family.name == "sdxl":
        time_ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=torch.float32).repeat(n, 1)
        added = {"text_embeds": embeds.pooled, "time_ids": time_ids}
    with torch.no_grad():
        return model.unet(x, torch.tensor(t), encoder_hidden_states=embeds.embeds, added_cond_kwargs=added).sample
