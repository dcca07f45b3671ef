"""load_t2i on tiny diffusers-format bases: families, identity, DMD2 UNet checkpoints, LoRA fusion, errors."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from models.t2i import (FAMILIES, T2ILoadError, load_t2i, save_tiny_dmd2_unet, save_tiny_lora)
from models.t2i.loading import alphas_cumprod_from_config
from tests.models.t2i_helpers import tiny_base


@pytest.fixture(scope="module")
def sdxl_base(tmp_path_factory):
    return tiny_base(tmp_path_factory, "sdxl")


@pytest.fixture(scope="module")
def sd15_base(tmp_path_factory):
    return tiny_base(tmp_path_factory, "sd15")


@pytest.fixture(scope="module")
def sdxl(sdxl_base):
    return load_t2i(sdxl_base)


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_sdxl_base_is_detected_and_loaded(sdxl, sdxl_base):
    assert sdxl.family is FAMILIES["sdxl"]
    assert len(sdxl.text_encoders) == 2 and len(sdxl.tokenizers) == 2
    assert sdxl.vae_scale == pytest.approx(0.13025)
    assert sdxl.tokenizers[0]("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert sdxl.tokenizers[1].pad_token == "!"
    assert sdxl.unet.training is False and not any(p.requires_grad for p in sdxl.unet.parameters())
    for name in FAMILIES["sdxl"].default_sites:  # every SDXL capture site exists in the tiny topology
        sdxl.unet.get_submodule(name)
    ident = sdxl.identity
    assert ident["family"] == "sdxl" and ident["base"] == sdxl_base.name and ident["unet"] == "base"
    assert ident["unet_sha256"] == _sha(sdxl_base / "unet" / "diffusion_pytorch_model.safetensors")
    assert ident["lora"] == ident["lora_sha256"] == ""
    assert sdxl.model_key.startswith("sdxl-") and len(sdxl.model_key) == len("sdxl-") + 12


def test_sd15_base_is_detected_and_an_explicit_family_must_fit(sd15_base):
    model = load_t2i(sd15_base)
    assert model.family is FAMILIES["sd15"] and len(model.text_encoders) == 1
    assert model.vae_scale == pytest.approx(0.18215)
    for name in FAMILIES["sd15"].default_sites:
        model.unet.get_submodule(name)
    with pytest.raises(T2ILoadError) as err:  # an SD v1.5 folder has no second encoder
        load_t2i(sd15_base, family="sdxl")
    assert "text_encoder_2/" in _one_line(err)


def test_tiny_bases_are_reproducible_and_leave_the_global_rng_alone(sdxl, tmp_path):
    from models.t2i import build_tiny_base

    torch.manual_seed(42)
    state = torch.get_rng_state()
    again = build_tiny_base(tmp_path / "again", "sdxl", seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert _sha(again / "unet" / "diffusion_pytorch_model.safetensors") == sdxl.identity["unet_sha256"]
    other = build_tiny_base(tmp_path / "other", "sdxl", seed=1)
    assert _sha(other / "unet" / "diffusion_pytorch_model.safetensors") != sdxl.identity["unet_sha256"]
    with pytest.raises(ValueError, match="multiple of 8"):
        build_tiny_base(tmp_path / "odd", "sdxl", size=60)


def test_alphas_cumprod_are_the_scaled_linear_schedule_diffusers_uses(sdxl, sdxl_base):
    from diffusers import DDPMScheduler

    config = json.loads((sdxl_base / "scheduler" / "scheduler_config.json").read_text())
    expected = DDPMScheduler.from_config(config).alphas_cumprod
    assert sdxl.alphas_cumprod.dtype == torch.float64 and sdxl.alphas_cumprod.shape == (1000,)
    assert torch.equal(sdxl.alphas_cumprod.float(), expected)
    linear = alphas_cumprod_from_config({"beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02})
    assert not torch.allclose(linear, sdxl.alphas_cumprod)


def test_two_copies_of_one_base_have_one_identity(sdxl, sdxl_base, tmp_path):
    copy = shutil.copytree(sdxl_base, tmp_path / "elsewhere")
    other = load_t2i(copy)
    assert other.identity["base_sha256"] == sdxl.identity["base_sha256"]
    assert other.model_key == sdxl.model_key
    cfg = json.loads((copy / "vae" / "config.json").read_text())
    cfg["scaling_factor"] = 0.2
    (copy / "vae" / "config.json").write_text(json.dumps(cfg))
    changed = load_t2i(copy)
    assert changed.identity["base_sha256"] != sdxl.identity["base_sha256"]
    assert changed.model_key != sdxl.model_key


def test_a_base_holding_only_fp16_variant_files_loads(sdxl, sdxl_base, tmp_path):
    copy = shutil.copytree(sdxl_base, tmp_path / "fp16_only")
    for weights in [*copy.glob("*/*.safetensors")]:  # what a download with variant="fp16" leaves
        weights.rename(weights.with_name(weights.name.replace(".safetensors", ".fp16.safetensors")))
    model = load_t2i(copy)
    assert torch.equal(model.unet.conv_in.weight, sdxl.unet.conv_in.weight)
    assert torch.equal(model.vae.decoder.conv_out.weight, sdxl.vae.decoder.conv_out.weight)
    assert model.identity["unet_sha256"] == sdxl.identity["unet_sha256"]
    shutil.rmtree(copy / "text_encoder_2")
    (copy / "text_encoder_2").mkdir()
    (copy / "text_encoder_2" / "config.json").write_text("{}")
    with pytest.raises(T2ILoadError) as err:
        load_t2i(copy)
    assert "text_encoder_2: no weights" in _one_line(err)


@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
def test_a_dmd2_unet_checkpoint_replaces_the_base_unet(sdxl, sdxl_base, tmp_path, fmt):
    ckpt = save_tiny_dmd2_unet(sdxl_base, tmp_path / f"dmd2_unet_fp16.{fmt}", format=fmt)
    state = load_file(ckpt) if fmt == "safetensors" else torch.load(ckpt, weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values())
    model = load_t2i(sdxl_base, checkpoint=ckpt)
    loaded = model.unet.state_dict()
    assert set(loaded) == set(state)
    for key in ("conv_in.weight", "mid_block.attentions.0.proj_out.weight"):
        assert torch.equal(loaded[key], state[key].float())
        assert not torch.equal(loaded[key], sdxl.unet.state_dict()[key])
    assert loaded["conv_in.weight"].dtype == torch.float32
    assert model.identity["unet"] == ckpt.name and model.identity["unet_sha256"] == _sha(ckpt)
    assert model.model_key != sdxl.model_key


def test_a_unet_of_another_family_is_refused_naming_file_and_keys(sdxl_base, sd15_base, tmp_path):
    ckpt = save_tiny_dmd2_unet(sd15_base, tmp_path / "sd15_unet.safetensors", format="safetensors")
    with pytest.raises(T2ILoadError) as err:
        load_t2i(sdxl_base, checkpoint=ckpt)
    text = _one_line(err)
    assert str(ckpt) in text and "does not fit the UNet" in text
    assert "missing" in text and "add_embedding" in text  # SDXL's text_time embedding is absent


def test_a_checkpoint_with_a_wrong_shape_is_refused(sdxl_base, tmp_path):
    ckpt = save_tiny_dmd2_unet(sdxl_base, tmp_path / "u.safetensors", format="safetensors")
    state = load_file(ckpt)
    state["conv_in.weight"] = torch.zeros(8, 4, 3, 3, dtype=torch.float16)
    save_file(state, ckpt)
    with pytest.raises(T2ILoadError) as err:
        load_t2i(sdxl_base, checkpoint=ckpt)
    assert "conv_in.weight" in _one_line(err) and "shape" in str(err.value)


def test_unreadable_and_missing_checkpoints(sdxl_base, tmp_path):
    garbage = tmp_path / "broken.bin"
    garbage.write_bytes(b"not a checkpoint" * 10)
    with pytest.raises(T2ILoadError) as err:
        load_t2i(sdxl_base, checkpoint=garbage)
    assert "broken.bin" in _one_line(err) and "unreadable" in str(err.value)
    with pytest.raises(T2ILoadError, match="checkpoint not found"):
        load_t2i(sdxl_base, checkpoint=tmp_path / "nope.bin")


def test_base_folder_errors(sdxl_base, tmp_path):
    with pytest.raises(T2ILoadError) as err:
        load_t2i(tmp_path / "no_such_base")
    assert "base folder not found" in _one_line(err) and "no_such_base" in str(err.value)
    (tmp_path / "plain").mkdir()
    with pytest.raises(T2ILoadError, match="not a diffusers folder"):
        load_t2i(tmp_path / "plain")
    broken = shutil.copytree(sdxl_base, tmp_path / "broken")
    shutil.rmtree(broken / "vae")
    with pytest.raises(T2ILoadError) as err:
        load_t2i(broken)
    assert "vae/" in _one_line(err) and str(broken) in str(err.value)
    assert issubclass(T2ILoadError, ValueError)


def test_an_sdxl_index_without_its_second_text_encoder_is_not_taken_for_sd15(sdxl_base, tmp_path):
    from models.t2i import detect_family

    # model_index.json names text_encoder_2, the folder is gone: a broken SDXL base, not an SD v1.5 one.
    half = shutil.copytree(sdxl_base, tmp_path / "half", ignore=shutil.ignore_patterns("text_encoder_2"))
    for call in (lambda: detect_family(half), lambda: load_t2i(half)):
        with pytest.raises(T2ILoadError) as err:
            call()
        assert "component folder text_encoder_2/ is missing" in _one_line(err) and "model_index.json" in str(err.value)
    # A null entry ([null, null]: diffusers' way to leave an optional component out) names nothing.
    index = json.loads((half / "model_index.json").read_text())
    (half / "model_index.json").write_text(json.dumps({**index, "text_encoder_2": [None, None]}))
    assert detect_family(half) is FAMILIES["sd15"]


def _fused_expectation(base_unet, lora_file, module: str, scale: float = 1.0) -> torch.Tensor:
    lora = load_file(lora_file)
    down = lora[f"unet.{module}.lora.down.weight"].float()
    up = lora[f"unet.{module}.lora.up.weight"].float()
    weight = base_unet.get_submodule(module).weight
    return weight + scale * (up.flatten(1) @ down.flatten(1)).reshape(weight.shape)


def test_lora_is_fused_as_w_plus_b_a(sdxl, sdxl_base, tmp_path):
    lora = save_tiny_lora(sdxl_base, tmp_path / "dmd2_lora.safetensors", rank=4)
    model = load_t2i(sdxl_base, lora=lora)
    for module in ("down_blocks.2.attentions.1.transformer_blocks.0.attn1.to_q",  # Linear
                   "up_blocks.0.resnets.1.conv1"):  # Conv2d 3x3
        fused = model.unet.get_submodule(module).weight
        torch.testing.assert_close(fused, _fused_expectation(sdxl.unet, lora, module), rtol=0, atol=1e-6)
        assert not torch.equal(fused, sdxl.unet.get_submodule(module).weight)
    untouched = "conv_in.weight"  # not a LoRA target
    assert torch.equal(model.unet.state_dict()[untouched], sdxl.unet.state_dict()[untouched])
    assert model.identity["lora"] == lora.name and model.identity["lora_sha256"] == _sha(lora)
    assert model.identity["unet"] == "base" and model.model_key != sdxl.model_key
    half = load_t2i(sdxl_base, lora=lora, lora_scale=0.5)
    module = "mid_block.attentions.0.proj_in"
    torch.testing.assert_close(half.unet.get_submodule(module).weight,
                               _fused_expectation(sdxl.unet, lora, module, 0.5), rtol=0, atol=1e-6)


def test_kohya_and_peft_lora_formats_fuse_the_same_way(sdxl, sdxl_base, tmp_path):
    module = "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_k"
    g = torch.Generator().manual_seed(5)
    down, up = torch.randn(8, 32, generator=g), torch.randn(32, 8, generator=g)
    expected = sdxl.unet.get_submodule(module).weight + (2.0 / 8) * (up @ down)
    kohya = tmp_path / "kohya.safetensors"
    name = "lora_unet_" + module.replace(".", "_")
    save_file({f"{name}.lora_down.weight": down, f"{name}.lora_up.weight": up,
               f"{name}.alpha": torch.tensor(2.0)}, kohya)
    sgm = tmp_path / "kohya_sgm.safetensors"  # kohya with the original SGM block names (input_blocks.4.1)
    sgm_name = "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_k"
    save_file({f"{sgm_name}.lora_down.weight": down, f"{sgm_name}.lora_up.weight": up,
               f"{sgm_name}.alpha": torch.tensor(2.0)}, sgm)
    peft = tmp_path / "peft.safetensors"
    save_file({f"{module}.lora_A.weight": down, f"{module}.lora_B.weight": up,
               f"{module}.alpha": torch.tensor(2.0)}, peft)
    for file in (kohya, sgm, peft):
        fused = load_t2i(sdxl_base, lora=file).unet.get_submodule(module).weight
        torch.testing.assert_close(fused, expected, rtol=0, atol=1e-5)


def test_lora_alpha_from_the_safetensors_metadata_diffusers_writes(sdxl, sdxl_base, tmp_path):
    lora = save_tiny_lora(sdxl_base, tmp_path / "plain.safetensors", rank=4)
    with_meta = tmp_path / "with_meta.safetensors"
    meta = {"unet.lora_alpha": 2, "unet.r": 4, "unet.alpha_pattern": {"proj_in": 8}}
    save_file(load_file(lora), with_meta, metadata={"format": "pt", "lora_adapter_metadata": json.dumps(meta)})
    model = load_t2i(sdxl_base, lora=with_meta)
    to_q = "down_blocks.2.attentions.1.transformer_blocks.0.attn1.to_q"
    torch.testing.assert_close(model.unet.get_submodule(to_q).weight,
                               _fused_expectation(sdxl.unet, lora, to_q, 2 / 4), rtol=0, atol=1e-6)
    proj_in = "mid_block.attentions.0.proj_in"  # alpha_pattern: alpha 8 for proj_in
    torch.testing.assert_close(model.unet.get_submodule(proj_in).weight,
                               _fused_expectation(sdxl.unet, lora, proj_in, 8 / 4), rtol=0, atol=1e-6)


def test_a_lora_for_another_base_is_refused(sdxl_base, sd15_base, tmp_path):
    lora = save_tiny_lora(sd15_base, tmp_path / "sd15_lora.safetensors")
    with pytest.raises(T2ILoadError) as err:
        load_t2i(sdxl_base, lora=lora)
    text = _one_line(err)
    assert "sd15_lora.safetensors" in text and ("match no UNet module" in text or "does not fit" in text)
    stray = tmp_path / "stray.safetensors"
    save_file({"unet.no_such.block.lora.down.weight": torch.zeros(2, 4),
               "unet.no_such.block.lora.up.weight": torch.zeros(4, 2)}, stray)
    with pytest.raises(T2ILoadError, match="no_such.block"):
        load_t2i(sdxl_base, lora=stray)
