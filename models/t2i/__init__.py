"""Text-to-image DMD2 (SDXL and SD v1.5) on diffusers components, with activation capture.

    from lake.layout import prompt_id
    from models.t2i import FAMILIES, load_t2i, encode_prompts, t2i_generate

    model = load_t2i("sdxl-base-1.0/", checkpoint="dmd2_sdxl_4step_unet_fp16.bin", device="cuda", dtype="fp16")
    prompts = ["a photo of a cat"]
    embeds = encode_prompts(model, prompts)
    pid = prompt_id(prompts[0])
    result = t2i_generate(model, embeds.take([0, 0]), [(0, pid, 0), (0, pid, 1)],
                          FAMILIES["sdxl"].default_timesteps[4], 1024, 1024, sites=["mid"])

Imported only by whoever uses it (``import models`` does not): diffusers and transformers
are imported inside the functions that need them.
"""

from __future__ import annotations

from .clip_vocab import clip_bpe_path, convert_clip_bpe
from .errors import T2ILoadError
from .families import FAMILIES, T2IFamily, get_family
from .loading import LoadedT2I, alphas_cumprod_from_config, base_sha256, detect_family, load_t2i
from .sampling import T2IResult, decode_latents, latent_noise, resolve_sites, t2i_generate, timestep_sigmas
from .text import PromptEmbeds, Truncation, encode_prompts, truncated_prompts
from .tiny import build_tiny_base, save_tiny_dmd2_unet, save_tiny_lora

__all__ = [
    "FAMILIES", "T2IFamily", "get_family", "load_t2i", "LoadedT2I", "T2ILoadError", "detect_family",
    "base_sha256", "alphas_cumprod_from_config", "encode_prompts", "PromptEmbeds", "truncated_prompts", "Truncation",
    "t2i_generate", "T2IResult", "resolve_sites", "timestep_sigmas", "latent_noise", "decode_latents",
    "build_tiny_base", "save_tiny_dmd2_unet", "save_tiny_lora", "clip_bpe_path", "convert_clip_bpe",
]
