"""Presets, devices, dtypes and the load/build entry points."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from models import (PRESETS, GeneratorConfig, LoadedGenerator, build_generator, get_preset,
                    load_generator, pick_device, pick_dtype)
from models.networks import EDMPrecond


def test_presets():
    full, tiny, micro = get_preset("dmd2-imagenet64"), get_preset("tiny"), get_preset("micro")
    assert isinstance(full, GeneratorConfig)
    assert (full.model_channels, full.channel_mult, full.channel_mult_emb, full.num_blocks,
            full.attn_resolutions, full.channels_per_head, full.label_dim, full.sigma_data) == (
        192, (1, 2, 3, 4), 4, 3, (32, 16, 8), 64, 1000, 0.5)
    assert dataclasses.replace(full, model_channels=32) == tiny
    assert dataclasses.replace(full, model_channels=16, attn_resolutions=(8,)) == micro
    with pytest.raises(dataclasses.FrozenInstanceError):
        full.model_channels = 1
    with pytest.raises(ValueError, match="unknown preset 'huge'; valid presets: dmd2-imagenet64, tiny, micro"):
        get_preset("huge")
    with pytest.raises(ValueError, match="valid presets"):
        build_generator("huge")
    assert set(PRESETS) == {"dmd2-imagenet64", "tiny", "micro"}


def test_tiny_has_the_full_layout_at_smaller_width(tiny_generator):
    with torch.device("meta"):
        full = EDMPrecond(**get_preset("dmd2-imagenet64").network_kwargs(), init_seed=None)
    assert list(full.state_dict()) == list(tiny_generator.state_dict())


def test_build_generator_is_seeded(tiny_generator):
    again = build_generator("tiny", seed=0)
    other = build_generator("tiny", seed=1)
    assert not tiny_generator.training
    same = tiny_generator.state_dict()
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in same.items())
    assert not torch.equal(same["model.out_conv.weight"], other.state_dict()["model.out_conv.weight"])
    assert all(v.dtype == torch.float32 for v in same.values())


def test_load_generator_random(tiny_generator):
    gen = load_generator("tiny", seed=3, device="cpu")
    assert isinstance(gen, LoadedGenerator)
    assert (gen.preset, gen.weights, gen.checkpoint_name, gen.checkpoint_sha256) == ("tiny", "random", None, None)
    assert gen.device == torch.device("cpu") and gen.dtype == torch.float32
    assert gen.model_id == "tiny-random-seed3"
    assert load_generator("tiny", device="cpu").model_id == "tiny-random-seed0"
    with pytest.raises(dataclasses.FrozenInstanceError):
        gen.preset = "x"


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    auto = pick_device(None)
    assert auto == pick_device("auto")
    if torch.cuda.is_available():
        assert auto.type == "cuda"
    with pytest.raises(ValueError, match="'tpu'"):
        pick_device("tpu")
    with pytest.raises(ValueError, match="'nonsense:x'"):
        pick_device("nonsense:x")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda:1'"):
            pick_device("cuda:1")
        with pytest.raises(ValueError, match="'cuda'"):
            load_generator("tiny", device="cuda")


def test_pick_dtype():
    cpu = torch.device("cpu")
    assert pick_dtype("fp32", cpu) == torch.float32
    assert pick_dtype(None, cpu) == torch.float32
    with pytest.raises(ValueError, match="needs a CUDA device"):
        pick_dtype("bf16", cpu)
    with pytest.raises(ValueError, match="unknown dtype"):
        pick_dtype("fp8", cpu)
    assert pick_dtype("bf16", torch.device("cuda")) == torch.bfloat16


def test_bf16_module_takes_and_returns_fp32():
    # The CUDA bf16 path, exercised on the CPU (where bf16 convolutions are very slow,
    # hence a miniature network): parameters in bf16, fp32 in and out.
    config = dict(img_resolution=16, label_dim=10, model_channels=16, channel_mult=(1, 2),
                  num_blocks=1, attn_resolutions=(8,), channels_per_head=16)
    G32 = EDMPrecond(**config, init_seed=0).eval()
    G16 = EDMPrecond(**config, init_seed=0).eval().to(torch.bfloat16)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 80
    onehot = torch.nn.functional.one_hot(torch.tensor([1, 2]), 10).float()
    sigma = torch.full((2,), 80.0)
    with torch.no_grad():
        D16, D32 = G16(x, sigma, onehot), G32(x, sigma, onehot)
    assert D16.dtype == torch.float32
    assert 0 < (D16 - D32).abs().max() < 0.1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_generation():
    from models import one_step_generate, sample_batch

    gen = load_generator("tiny", device="cuda", dtype="bf16")
    assert next(gen.module.parameters()).dtype == torch.bfloat16
    noise, classes = sample_batch(0, range(4))
    images = one_step_generate(gen.module, noise, classes)
    reference = one_step_generate(build_generator("tiny", seed=0), noise, classes)
    assert images.device.type == "cuda" and images.dtype == torch.uint8
    assert (images.cpu().float() - reference.float()).abs().mean() < 4
