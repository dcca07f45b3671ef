"""diffusers' own DMD2 pipeline over a loaded model's components: the reference our step loop
is checked against (tests) and measured against (benchmarks/bench_t2i.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def diffusers_pipeline(model: Any, base: str | Path) -> Any:
    """`StableDiffusionXLPipeline` (or `StableDiffusionPipeline`) over `model`'s components with the
    `LCMScheduler` DMD2 samples with (built from `base`'s scheduler config); no image processor,
    no safety checker, no watermarker, so nothing needs torchvision or a download."""
    from diffusers import LCMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

    scheduler = LCMScheduler.from_config(json.loads((Path(base) / "scheduler" / "scheduler_config.json").read_text()))
    if model.family.name == "sdxl":
        return StableDiffusionXLPipeline(
            vae=model.vae, text_encoder=model.text_encoders[0], text_encoder_2=model.text_encoders[1],
            tokenizer=model.tokenizers[0], tokenizer_2=model.tokenizers[1], unet=model.unet, scheduler=scheduler,
            image_encoder=None, feature_extractor=None, add_watermarker=False)
    return StableDiffusionPipeline(
        vae=model.vae, text_encoder=model.text_encoders[0], tokenizer=model.tokenizers[0], unet=model.unet,
        scheduler=scheduler, safety_checker=None, feature_extractor=None, image_encoder=None,
        requires_safety_checker=False)
