"""Tiny text-to-image components with seeded random weights, written as diffusers-format folders.

The tests, the demo and the benchmarks load them through the real loading path
(``load_t2i``), as they would a downloaded SDXL base 1.0 or SD v1.5 folder. The topologies
are the real ones (SDXL: 3 levels, DownBlock2D / CrossAttnDownBlock2D x2, text_time added
conditioning, two text encoders; SD v1.5: 4 levels, CrossAttnDownBlock2D x3 / DownBlock2D),
with layers_per_block 2 so every capture site of the real models exists, at tiny widths;
the tokenizers are the real CLIP tokenizer (``clip_vocab``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .clip_vocab import EOS, VOCAB_SIZE, write_clip_tokenizer
from .families import get_family

# A scheduler config as the real bases ship it (the betas are what matters to DMD2).
_SCHEDULER = {"_class_name": "EulerDiscreteScheduler", "beta_start": 0.00085, "beta_end": 0.012,
              "beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "prediction_type": "epsilon",
              "steps_offset": 1, "timestep_spacing": "leading", "interpolation_type": "linear",
              "use_karras_sigmas": False, "clip_sample": False, "set_alpha_to_one": False}
_TEXT_HIDDEN = {"sdxl": (32, 64), "sd15": (32,)}
_TIME_EMBED = 8  # SDXL's addition_time_embed_dim is 256; 8 keeps the tiny one tiny


def _text_config(hidden: int, projection: int | None = None) -> dict:
    return dict(vocab_size=VOCAB_SIZE, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=3,
                num_attention_heads=4, max_position_embeddings=77, hidden_act="gelu", layer_norm_eps=1e-5,
                bos_token_id=49406, eos_token_id=49407, pad_token_id=1,
                projection_dim=projection if projection is not None else hidden)


def _unet_config(family: str, latent: int) -> dict:
    if family == "sdxl":
        return dict(sample_size=latent, in_channels=4, out_channels=4, layers_per_block=2,
                    block_out_channels=(32, 32, 64),
                    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                    attention_head_dim=(2, 4, 8), transformer_layers_per_block=(1, 1, 2),
                    cross_attention_dim=sum(_TEXT_HIDDEN["sdxl"]), use_linear_projection=True,
                    addition_embed_type="text_time", addition_time_embed_dim=_TIME_EMBED,
                    projection_class_embeddings_input_dim=6 * _TIME_EMBED + _TEXT_HIDDEN["sdxl"][1],
                    norm_num_groups=8)
    return dict(sample_size=latent, in_channels=4, out_channels=4, layers_per_block=2,
                block_out_channels=(32, 32, 64, 64),
                down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                  "DownBlock2D"),
                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                attention_head_dim=2, cross_attention_dim=_TEXT_HIDDEN["sd15"][0], norm_num_groups=8)


def _seeded_unet(config: dict, seed: int):
    """A ``UNet2DConditionModel`` of ``config`` with weights seeded by ``seed``."""
    from diffusers import UNet2DConditionModel

    # diffusers' init draws from the global generator: seeded here, and restored afterwards.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet: Any = UNet2DConditionModel.from_config(config)
    # The real models have non-zero output convs after training; zero-init would make eps = 0.
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed + 1)
        for p in (unet.conv_out.weight, unet.conv_out.bias):
            p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    return unet.eval()


def tiny_unet(base_family: str, latent: int, seed: int):
    """A tiny ``UNet2DConditionModel`` of ``base_family``'s topology with weights seeded by ``seed``."""
    return _seeded_unet(_unet_config(base_family, latent), seed)


def build_tiny_base(path: str | Path, family: str = "sdxl", seed: int = 0, size: int = 64) -> Path:
    """Write a complete diffusers-format base folder of ``family`` with tiny seeded weights; returns ``path``.

    ``size``: the image size the folder's UNet config advertises (sample_size = size // 8);
    any multiple of 8 (SDXL: 32, SD v1.5: 64, for the UNet's levels) works at sampling time.
    The same (family, seed, size) writes the same weights.
    """
    fam = get_family(family).name
    if size % 8:
        raise ValueError(f"size must be a multiple of 8 (got {size})")
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):  # the caller's global RNG state is left as it was
        _write_tiny_components(out, fam, seed, size)
    return out


def _write_tiny_components(out: Path, fam: str, seed: int, size: int) -> None:
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    tiny_unet(fam, size // 8, seed).save_pretrained(out / "unet", safe_serialization=True)

    torch.manual_seed(seed + 10)
    # Four levels like the real VAE: 8x downsampling, 4 latent channels.
    vae: Any = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, sample_size=size,
                             block_out_channels=(16, 16, 32, 32), norm_num_groups=8, layers_per_block=1,
                             down_block_types=("DownEncoderBlock2D",) * 4,
                             up_block_types=("UpDecoderBlock2D",) * 4,
                             scaling_factor=0.13025 if fam == "sdxl" else 0.18215, force_upcast=fam == "sdxl")
    vae.save_pretrained(out / "vae", safe_serialization=True)

    hidden = _TEXT_HIDDEN[fam]
    torch.manual_seed(seed + 20)
    CLIPTextModel(CLIPTextConfig(**_text_config(hidden[0]))).save_pretrained(out / "text_encoder")
    write_clip_tokenizer(out / "tokenizer", pad_token=EOS)
    components = {
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "EulerDiscreteScheduler"],
    }
    if fam == "sdxl":
        torch.manual_seed(seed + 30)
        CLIPTextModelWithProjection(CLIPTextConfig(**_text_config(hidden[1], hidden[1]))).save_pretrained(
            out / "text_encoder_2")
        write_clip_tokenizer(out / "tokenizer_2", pad_token="!")  # SDXL's second tokenizer pads with "!"
        components |= {"text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
                       "tokenizer_2": ["transformers", "CLIPTokenizer"]}
    (out / "scheduler").mkdir(exist_ok=True)
    (out / "scheduler" / "scheduler_config.json").write_text(json.dumps(_SCHEDULER, indent=2))
    pipeline = "StableDiffusionXLPipeline" if fam == "sdxl" else "StableDiffusionPipeline"
    index: dict[str, Any] = {"_class_name": pipeline, "_diffusers_version": "0.42.1", **components}
    if fam == "sdxl":
        index["force_zeros_for_empty_prompt"] = True
    (out / "model_index.json").write_text(json.dumps(index, indent=2))


def _base_unet_config(base: Path) -> dict:
    return json.loads((Path(base) / "unet" / "config.json").read_text())


def save_tiny_dmd2_unet(base: str | Path, path: str | Path, seed: int = 1, format: str = "bin") -> Path:
    """A "DMD2 UNet" for the tiny ``base``: same architecture, other seeded weights, saved in fp16
    (like DMD2's ``dmd2_sdxl_*_unet_fp16.bin``), as ``.bin`` (torch.save) or ``.safetensors``."""
    if format not in ("bin", "safetensors"):
        raise ValueError(f"format must be bin or safetensors (got {format!r})")
    unet = _seeded_unet(_base_unet_config(Path(base)), seed)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in unet.state_dict().items()}
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if format == "safetensors":
        from safetensors.torch import save_file

        save_file(state, str(out))
    else:
        torch.save(state, out)
    return out


# The module types DMD2's SDXL LoRA targets (attention projections, feed-forward, resnet convs).
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
                "conv1", "conv2")


def save_tiny_lora(base: str | Path, path: str | Path, rank: int = 4, seed: int = 2) -> Path:
    """A LoRA for the tiny ``base`` in the diffusers format DMD2's SDXL LoRA uses (safetensors, fp16):
    ``unet.<module>.lora.down.weight`` (rank, in[, kh, kw]) and ``unet.<module>.lora.up.weight``
    (out, rank[, 1, 1]) for every Linear/Conv2d whose name ends in one of ``LORA_TARGETS``."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(_base_unet_config(Path(base)))
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for name, module in unet.named_modules():
        if not name.endswith(LORA_TARGETS) or not isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            continue
        w = module.weight
        down_shape = (rank, *w.shape[1:])
        up_shape = (w.shape[0], rank) + ((1, 1) if w.ndim == 4 else ())
        state[f"unet.{name}.lora.down.weight"] = (torch.randn(down_shape, generator=g) * 0.1).half()
        state[f"unet.{name}.lora.up.weight"] = (torch.randn(up_shape, generator=g) * 0.1).half()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out))
    return out
