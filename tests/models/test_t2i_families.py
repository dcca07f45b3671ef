"""Family facts against the real SDXL base 1.0 and SD v1.5 UNet topologies (built on the meta device,
no weights), and the lazy-import promise of models/t2i."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from models.t2i import FAMILIES, load_t2i, resolve_sites
from tests.models.conftest import REPO

# The UNet configs of stabilityai/stable-diffusion-xl-base-1.0 and runwayml/stable-diffusion-v1-5
# (the architecture fields; the rest are diffusers' defaults).
SDXL_UNET = dict(sample_size=128, block_out_channels=(320, 640, 1280), layers_per_block=2,
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 attention_head_dim=(5, 10, 20), transformer_layers_per_block=(1, 2, 10),
                 cross_attention_dim=2048, use_linear_projection=True, addition_embed_type="text_time",
                 addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816)
SD15_UNET = dict(sample_size=64, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                 attention_head_dim=8, cross_attention_dim=768)


@pytest.mark.parametrize("family,config,channels", [
    ("sdxl", SDXL_UNET, {"down_blocks.2.attentions.1": 1280, "mid_block.attentions.0": 1280,
                         "up_blocks.0.attentions.0": 1280, "up_blocks.0.attentions.1": 1280}),
    ("sd15", SD15_UNET, {"down_blocks.2.attentions.1": 1280, "mid_block.attentions.0": 1280,
                         "up_blocks.1.attentions.0": 1280, "up_blocks.1.attentions.1": 1280}),
])
def test_sites_exist_in_the_real_topologies(family, config, channels):
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**config)
    fam = FAMILIES[family]
    assert resolve_sites(unet, list(fam.default_sites)) == list(channels)
    for alias, site in fam.site_aliases.items():
        module = unet.get_submodule(site)
        assert type(module).__name__ == "Transformer2DModel", alias
        assert module.proj_out.weight.shape[0] == channels[site]
    assert fam.default_sites == tuple(fam.site_aliases.values())


def test_family_facts():
    sdxl, sd15 = FAMILIES["sdxl"], FAMILIES["sd15"]
    assert sdxl.default_size == (1024, 1024) and sd15.default_size == (512, 512)
    assert sdxl.default_timesteps == {1: (399,), 4: (999, 749, 499, 249)} and sd15.default_timesteps == {1: (999,)}
    assert sdxl.vae_fp32 and not sd15.vae_fp32
    assert len({sdxl, sd15, FAMILIES["sdxl"]}) == 2  # usable as dict keys / in sets
    assert sdxl.timesteps_for(4) == (999, 749, 499, 249)
    with pytest.raises(ValueError, match="known: 1"):
        sd15.timesteps_for(4)


def test_half_precision_needs_cuda_and_dtypes_are_checked(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: fp16 is allowed here")
    with pytest.raises(ValueError, match="CUDA"):
        load_t2i(tmp_path, dtype="fp16", device="cpu")  # refused before the folder is read
    with pytest.raises(ValueError, match="fp32, fp16 or bf16"):
        load_t2i(tmp_path, dtype="fp64", device="cpu")


def test_importing_models_and_models_t2i_does_not_import_diffusers():
    code = ("import sys, models, models.t2i; "
            "bad = [m for m in ('diffusers', 'transformers') if m in sys.modules]; "
            "assert not bad, bad")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
