"""t2i_generate: DMD2's step loop against diffusers' pipeline and the formula, capture, noise keys."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lake.layout import prompt_id
from models.t2i import (FAMILIES, encode_prompts, latent_noise, load_t2i, resolve_sites, t2i_generate,
                        timestep_sigmas)
from models.t2i.sampling import decode_latents
from models.t2i.reference import diffusers_pipeline
from tests.models.t2i_helpers import tiny_base, unet_eps

PROMPTS = ["a photo of a cat", "a red sports car"]
SIZE = 64


@pytest.fixture(scope="module", params=["sdxl", "sd15"])
def setup(request, tmp_path_factory):
    base = tiny_base(tmp_path_factory, request.param)
    model = load_t2i(base)
    embeds = encode_prompts(model, PROMPTS)
    keys = [(7, prompt_id(p), i) for i, p in enumerate(PROMPTS)]
    return base, model, embeds, keys


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory):
    base = tiny_base(tmp_path_factory, "sdxl")
    model = load_t2i(base)
    return model, encode_prompts(model, PROMPTS), [(3, prompt_id(p), 5) for p in PROMPTS]


def _shape(model):
    return (4, SIZE // 8, SIZE // 8)


def test_one_step_equals_diffusers_pipeline_with_lcm_scheduler(setup):
    """LCMScheduler's last step returns c_out * x0 + c_skip * x with c_skip ~ 1e-8 at t = 399
    (timestep_scaling 10), so its images may differ from DMD2's x0 by one uint8 level, rarely."""
    base, model, embeds, keys = setup
    timesteps = FAMILIES[model.family.name].default_timesteps[1]
    ours = t2i_generate(model, embeds, keys, timesteps, SIZE, SIZE)
    latents = torch.stack([latent_noise(*k, _shape(model)) for k in keys])
    pipe = diffusers_pipeline(model, base)
    theirs = pipe(prompt=PROMPTS, num_inference_steps=1, guidance_scale=0.0, timesteps=list(timesteps),
                  latents=latents, height=SIZE, width=SIZE, output_type="np").images
    theirs = (theirs * 255).round().astype(np.uint8)
    diff = np.abs(theirs.astype(int) - ours.images.astype(int))
    assert ours.images.shape == (2, SIZE, SIZE, 3) and ours.images.dtype == np.uint8
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    assert ours.images.std() > 5  # a real image, not a constant
    assert not np.array_equal(ours.images[0], ours.images[1])


def test_four_steps_follow_the_dmd2_recurrence(sdxl):
    model, embeds, keys = sdxl
    timesteps = FAMILIES["sdxl"].default_timesteps[4]
    result = t2i_generate(model, embeds, keys, timesteps, SIZE, SIZE)
    abar = model.alphas_cumprod
    x = torch.stack([latent_noise(*k, _shape(model)) for k in keys])
    for i, t in enumerate(timesteps):
        eps = unet_eps(model, x, t, embeds, SIZE, SIZE)
        x0 = (x - (1 - abar[t]).sqrt().item() * eps) / abar[t].sqrt().item()
        got = result.x0_images[:, i]
        want = decode_latents(model, x0).numpy()
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1, f"step {i}"
        if i + 1 < len(timesteps):
            a = abar[timesteps[i + 1]]
            fresh = torch.stack([latent_noise(*k, _shape(model), step=i + 1) for k in keys])
            x = a.sqrt().item() * x0 + (1 - a).sqrt().item() * fresh
    assert np.array_equal(result.images, result.x0_images[:, -1])
    assert result.x0_images.shape == (2, 4, SIZE, SIZE, 3)
    # The steps differ (re-noising with fresh noise changes the prediction).
    assert not np.array_equal(result.x0_images[:, 0], result.x0_images[:, 3])
    assert result.sigmas == timestep_sigmas(model, timesteps)


def test_capture_leaves_images_bit_identical_and_means_match_a_hook(setup):
    _, model, embeds, keys = setup
    fam = FAMILIES[model.family.name]
    timesteps = fam.default_timesteps[max(fam.default_timesteps)]
    bare = t2i_generate(model, embeds, keys, timesteps, SIZE, SIZE)
    site = fam.default_sites[1]  # mid_block.attentions.0
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    handle = model.unet.get_submodule(site).register_forward_hook(
        lambda m, args, out: seen.append((args[0].detach().clone(), out[0].detach().clone())))
    try:
        hooked = t2i_generate(model, embeds, keys, timesteps, SIZE, SIZE, decode_steps=False)
    finally:
        handle.remove()
    captured = t2i_generate(model, embeds, keys, timesteps, SIZE, SIZE, sites=list(fam.site_aliases),
                            residual=True, spatial=2)
    assert np.array_equal(bare.images, captured.images) and np.array_equal(bare.x0_images, captured.x0_images)
    assert np.array_equal(bare.images, hooked.images)
    assert set(captured.means) == set(fam.default_sites) == set(captured.updates) == set(captured.spatial)
    k = len(timesteps)
    means, updates, maps = captured.means[site], captured.updates[site], captured.spatial[site]
    channels = seen[0][1].shape[1]
    assert means.shape == (2, k, channels) and means.dtype == np.float32
    assert maps.shape == (2, k, channels, 2, 2)
    assert len(seen) == k
    for step, (inp, out) in enumerate(seen):
        np.testing.assert_allclose(means[:, step], out.mean(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(updates[:, step], (out.mean(dim=(2, 3)) - inp.mean(dim=(2, 3))).numpy(),
                                   rtol=1e-4, atol=1e-5)
    # The pooled maps average back to the means (2x2 cells of equal size).
    np.testing.assert_allclose(maps.mean(axis=(3, 4)), means, rtol=1e-5, atol=1e-6)
    assert np.abs(updates).max() > 0


def test_guidance_uses_the_negative_and_captures_the_conditional_half(sdxl):
    model, embeds, keys = sdxl
    negative = encode_prompts(model, ["blurry"])
    site = "mid_block.attentions.0"
    result = t2i_generate(model, embeds, keys, (399,), SIZE, SIZE, guidance=3.0, negative=negative,
                          sites=["mid"])
    x = torch.stack([latent_noise(*k, _shape(model)) for k in keys])
    seen: list[torch.Tensor] = []
    handle = model.unet.get_submodule(site).register_forward_hook(lambda m, a, out: seen.append(out[0]))
    try:
        eps_c = unet_eps(model, x, 399, embeds, SIZE, SIZE)
    finally:
        handle.remove()
    eps_u = unet_eps(model, x, 399, negative.take([0, 0]), SIZE, SIZE)
    eps = eps_u + 3.0 * (eps_c - eps_u)
    abar = model.alphas_cumprod[399].item()
    want = decode_latents(model, (x - math.sqrt(1 - abar) * eps) / math.sqrt(abar)).numpy()
    assert np.abs(result.images.astype(int) - want.astype(int)).max() <= 1
    np.testing.assert_allclose(result.means[site][:, 0], seen[0].mean(dim=(2, 3)).numpy(), rtol=1e-4, atol=1e-5)
    unguided = t2i_generate(model, embeds, keys, (399,), SIZE, SIZE)
    assert not np.array_equal(result.images, unguided.images)
    default_negative = t2i_generate(model, embeds, keys, (399,), SIZE, SIZE, guidance=3.0)
    assert not np.array_equal(result.images, default_negative.images)  # "" is not "blurry"


def test_noise_is_keyed_by_seed_prompt_index_and_step_not_by_batch(sdxl):
    model, embeds, keys = sdxl
    pid = prompt_id("a photo of a cat")
    shape = (4, 8, 8)
    base = latent_noise(0, pid, 3, shape)
    assert base.dtype == torch.float32 and base.device.type == "cpu" and base.shape == shape
    assert torch.equal(base, latent_noise(0, pid, 3, shape, step=0))
    others = [latent_noise(1, pid, 3, shape), latent_noise(0, prompt_id("a dog"), 3, shape),
              latent_noise(0, pid, 4, shape), latent_noise(0, pid, 3, shape, step=1)]
    assert all(not torch.equal(base, o) for o in others)
    # Global RNG state neither feeds nor is touched by the sampler.
    torch.manual_seed(123)
    state = torch.get_rng_state()
    steps = (999, 499)  # two steps: the re-noising draws (step 1) are part of what is keyed
    first = t2i_generate(model, embeds, keys, steps, SIZE, SIZE, decode_steps=False)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(999)
    again = t2i_generate(model, embeds, keys, steps, SIZE, SIZE, decode_steps=False)
    assert np.array_equal(first.images, again.images) and first.x0_images is None
    # A sample's result depends on its keys, not on its neighbours: swapping rows swaps images.
    swapped = t2i_generate(model, embeds.take([1, 0]), keys[::-1], steps, SIZE, SIZE, decode_steps=False)
    assert np.abs(swapped.images[::-1].astype(int) - first.images.astype(int)).max() <= 1
    alone = t2i_generate(model, embeds.take([1]), keys[1:], steps, SIZE, SIZE, decode_steps=False)
    assert np.abs(alone.images[0].astype(int) - first.images[1].astype(int)).max() <= 1
    with pytest.raises(ValueError, match="12 hex"):
        latent_noise(0, "not-an-id", 0, shape)


def test_sites_sigmas_and_argument_errors(sdxl):
    model, embeds, keys = sdxl
    assert resolve_sites(model, ["mid", "down2.attn1", "mid_block.attentions.0"]) == [
        "mid_block.attentions.0", "down_blocks.2.attentions.1"]
    assert resolve_sites(model, "up_blocks.1.resnets.0") == ["up_blocks.1.resnets.0"]  # any module path
    with pytest.raises(ValueError) as err:
        resolve_sites(model, ["middle"])
    assert "middle" in str(err.value) and "up0.attn1=up_blocks.0.attentions.1" in str(err.value)
    sigmas = timestep_sigmas(model.alphas_cumprod, [999, 749, 499, 249])
    assert sigmas == sorted(sigmas, reverse=True)
    assert sigmas[0] == pytest.approx(14.6146, abs=1e-3)  # SD/SDXL's sigma_max
    a = model.alphas_cumprod[399].item()
    assert timestep_sigmas(model, [399]) == [pytest.approx(math.sqrt((1 - a) / a))]
    with pytest.raises(ValueError, match="timestep 1000"):
        timestep_sigmas(model, [1000])
    with pytest.raises(ValueError, match="noise keys"):
        t2i_generate(model, embeds, keys[:1], (399,), SIZE, SIZE)
    with pytest.raises(ValueError, match="multiples of 8"):
        t2i_generate(model, embeds, keys, (399,), 60, SIZE)
    # A non-square size runs (time ids carry it) and a resnet site has no residual of equal shape in general.
    wide = t2i_generate(model, embeds, keys, (399,), 32, 64, sites=["up_blocks.1.resnets.0"], spatial=1)
    assert wide.images.shape == (2, 32, 64, 3)
    assert wide.spatial["up_blocks.1.resnets.0"].shape[-2:] == (1, 1)
