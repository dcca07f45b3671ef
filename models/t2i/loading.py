"""Loading a text-to-image DMD2 model from a local diffusers-format base folder.

Components are built one by one from the base folder's subfolders (never a pipeline, no
image processor, feature extractor or safety checker: in transformers 5 those need
torchvision), always with ``local_files_only=True``. The DMD2 UNet is either the base UNet
with a DMD2 whole-UNet state dict loaded strictly, or the base UNet with a LoRA fused in.
diffusers and transformers are imported inside the functions, so ``import models.t2i``
stays light.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import CheckpointError, CheckpointMismatchError, file_sha256, fit_state_dict, read_state_dict
from ..device import pick_device
from ..threads import configure_threads
from .errors import T2ILoadError
from .families import FAMILIES, T2IFamily, get_family
from .lora import fuse_lora

T2I_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class LoadedT2I:
    """A ready-to-run text-to-image DMD2 model and where its weights came from."""

    family: T2IFamily
    unet: Any
    vae: Any
    text_encoders: tuple
    tokenizers: tuple
    alphas_cumprod: torch.Tensor  # float64 (1000,), from the scheduler config's betas
    vae_scale: float
    device: torch.device
    dtype: torch.dtype
    identity: dict[str, str] = field(default_factory=dict)

    @property
    def model_key(self) -> str:
        """Short stable id of base + UNet + LoRA, e.g. ``sdxl-3f2a9c01b7de`` (same files, same key)."""
        keys = ("family", "base_sha256", "unet_sha256", "lora_sha256")
        digest = hashlib.sha256(json.dumps({k: self.identity.get(k, "") for k in keys},
                                           sort_keys=True).encode()).hexdigest()
        return f"{self.family.name}-{digest[:12]}"

    @property
    def vae_factor(self) -> int:
        """Pixels per latent cell along each side (8 for SD and SDXL)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.unet.config.in_channels)


def pick_t2i_dtype(name: str | None, device: torch.device) -> torch.dtype:
    """"fp32" (default), "fp16" or "bf16"; the half types need a CUDA device (CPU kernels are slow or missing)."""
    key = "fp32" if name is None else name.strip().lower()
    if key not in T2I_DTYPES:
        raise ValueError(f"unknown dtype {name!r}; use fp32, fp16 or bf16")
    dtype = T2I_DTYPES[key]
    if dtype != torch.float32 and torch.device(device).type != "cuda":
        raise ValueError(f"dtype {name!r} needs a CUDA device (got {torch.device(device)}); use fp32")
    return dtype


def alphas_cumprod_from_config(config: dict) -> torch.Tensor:
    """abar_t of a diffusers scheduler config, computed as diffusers does (float32), returned as float64.

    diffusers' schedulers (and DMD2, which takes ``DDPMScheduler.alphas_cumprod``) build the
    betas in float32, so the float32 values are the ones the models were trained with.
    """
    n = int(config.get("num_train_timesteps", 1000))
    b0, b1 = float(config.get("beta_start", 0.0001)), float(config.get("beta_end", 0.02))
    schedule = config.get("beta_schedule", "linear")
    if config.get("trained_betas") is not None:
        betas = torch.tensor(config["trained_betas"], dtype=torch.float32)
    elif schedule == "scaled_linear":
        betas = torch.linspace(b0 ** 0.5, b1 ** 0.5, n, dtype=torch.float32) ** 2
    elif schedule == "linear":
        betas = torch.linspace(b0, b1, n, dtype=torch.float32)
    else:
        raise ValueError(f"unsupported beta_schedule {schedule!r} (expected scaled_linear or linear)")
    return torch.cumprod(1.0 - betas, dim=0).to(torch.float64)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise T2ILoadError(f"{path}: cannot read JSON ({e})") from e


def _component(base: Path, name: str, config: str = "config.json") -> Path:
    folder = base / name
    if not folder.is_dir():
        raise T2ILoadError(f"base folder {base}: component folder {name}/ is missing")
    if config and not (folder / config).is_file():
        raise T2ILoadError(f"base folder {base}: {name}/{config} is missing")
    return folder


def check_base(base: str | Path) -> Path:
    """The base folder as a Path after checking it is a diffusers folder (model_index.json); T2ILoadError if not."""
    path = Path(base)
    if not path.exists():
        raise T2ILoadError(f"base folder not found: {path}")
    if not path.is_dir():
        raise T2ILoadError(f"base folder {path} is not a folder")
    if not (path / "model_index.json").is_file():
        raise T2ILoadError(f"base folder {path} is not a diffusers folder (no model_index.json)")
    return path


def _indexed_components(path: Path) -> set[str]:
    """The components model_index.json names (an entry ``[library, class]``; ``[null, null]`` names none)."""
    index = _read_json(path / "model_index.json")
    return {name for name, value in index.items()
            if not name.startswith("_") and isinstance(value, list) and value and value[0] is not None}


def detect_family(base: str | Path) -> T2IFamily:
    """SDXL when the base folder has a second text encoder, else SD v1.5.

    A folder whose model_index.json names ``text_encoder_2`` is an SDXL base even when that
    folder is missing: T2ILoadError naming it (taken for SD v1.5, its UNet would fail deep
    inside diffusers for want of the pooled embedding).
    """
    path = check_base(base)
    if (path / "text_encoder_2").is_dir():
        return FAMILIES["sdxl"]
    if "text_encoder_2" in _indexed_components(path):
        raise T2ILoadError(f"base folder {path}: component folder text_encoder_2/ is missing "
                           "(model_index.json names it: an SDXL base needs both text encoders)")
    return FAMILIES["sd15"]


def base_sha256(base: str | Path) -> str:
    """sha256 over model_index.json and every component's config and tokenizer files (not the weights).

    Relative paths and contents only, so two copies of one base agree wherever they live.
    """
    path = check_base(base)
    files = [path / "model_index.json"]
    for sub in sorted(p for p in path.iterdir() if p.is_dir()):
        files += sorted(f for f in sub.iterdir() if f.is_file() and f.suffix in (".json", ".txt"))
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.relative_to(path).as_posix().encode() + b"\x00")
        digest.update(f.read_bytes() + b"\x00")
    return digest.hexdigest()


def _weights(folder: Path) -> tuple[list[Path], str | None]:
    """A component folder's weight files and the variant they need: None, or "fp16" when the folder
    only holds ``*.fp16.*`` files (a base downloaded with ``variant="fp16"``)."""
    files = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix in (".safetensors", ".bin"))
    for variant in (None, "fp16"):
        mine = [f for f in files if (".fp16." in f.name) == (variant == "fp16")]
        safe = [f for f in mine if f.suffix == ".safetensors"]
        if mine:  # safetensors preferred over .bin, as diffusers and transformers prefer them
            return (safe or mine), variant
    raise T2ILoadError(f"{folder}: no weights (.safetensors or .bin)")


def _weights_sha256(files: list[Path]) -> str:
    """sha256 of the one weights file, or of the shards' digests in name order."""
    if len(files) == 1:
        return file_sha256(files[0])
    return hashlib.sha256("".join(f"{f.name}:{file_sha256(f)}\n" for f in files).encode()).hexdigest()


def _load_unet(base: Path, checkpoint: Path | None, dtype: torch.dtype):
    """(unet on the CPU in ``dtype``, its name, its sha256): the base UNet, or its architecture with ``checkpoint``."""
    from diffusers import UNet2DConditionModel

    folder = _component(base, "unet")
    if checkpoint is None:
        files, variant = _weights(folder)
        unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet", local_files_only=True,
                                                    variant=variant, torch_dtype=dtype)
        return unet, "base", _weights_sha256(files)
    try:
        state = read_state_dict(checkpoint)
    except (CheckpointError, OSError) as e:
        raise T2ILoadError(f"checkpoint {checkpoint} is unreadable: {e}") from e
    config = UNet2DConditionModel.load_config(base, subfolder="unet", local_files_only=True)
    # The architecture only (meta tensors): no random init of ~2.6e9 parameters that the
    # strict load replaces anyway.
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(config)
    try:
        state = fit_state_dict(state, unet, source=checkpoint)
    except CheckpointMismatchError as e:
        raise T2ILoadError(str(e).replace("does not fit the network", f"does not fit the UNet of {base}")) from e
    unet.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True, assign=True)
    left = [n for n, t in (*unet.named_parameters(), *unet.named_buffers()) if t.is_meta]
    if left:  # a buffer the state dict does not carry: would silently stay uninitialised
        raise T2ILoadError(f"checkpoint {checkpoint}: UNet tensors not set by the state dict: {', '.join(left[:5])}")
    return unet, checkpoint.name, file_sha256(checkpoint)


def load_t2i(base: str | Path, checkpoint: str | Path | None = None, lora: str | Path | None = None,
             family: str | None = None, device: str | None = None, dtype: str = "fp32",
             lora_scale: float = 1.0) -> LoadedT2I:
    """Load a text-to-image DMD2 model: base components from ``base``, the UNet from ``checkpoint`` or ``lora``.

    ``base``: a diffusers-format folder (model_index.json, unet/, vae/, text_encoder/,
    tokenizer/, [text_encoder_2/, tokenizer_2/], scheduler/). ``family``: "sdxl", "sd15" or
    None (detected: text_encoder_2/ present means SDXL). ``checkpoint``: a DMD2 whole-UNet
    state dict (.bin read with ``weights_only=True``, or .safetensors) loaded strictly into
    the base UNet's architecture. ``lora``: a LoRA file fused into the base UNet with
    ``lora_scale`` (see ``models.t2i.lora``). ``dtype``: fp32, fp16 or bf16 (half types on
    CUDA); the SDXL VAE always runs in fp32. Raises T2ILoadError (a ValueError) with a
    one-line message naming the path and the problem.
    """
    configure_threads()  # every text-to-image job loads its model here (see models.threads)
    # The arguments first: a wrong dtype or device is reported before any file is read.
    torch_device = pick_device(device)
    torch_dtype = pick_t2i_dtype(dtype, torch_device)
    if checkpoint is not None and lora is not None:
        raise T2ILoadError(f"give either a UNet checkpoint ({checkpoint}) or a LoRA ({lora}), not both")
    path = check_base(base)
    fam = get_family(family) if family is not None else detect_family(path)
    for name in ("unet", "vae", "text_encoder"):
        _component(path, name)
    _component(path, "tokenizer", config="")
    _component(path, "scheduler", config="scheduler_config.json")
    if fam.dual_encoder:
        _component(path, "text_encoder_2")
        _component(path, "tokenizer_2", config="")

    ckpt = lora_path = None
    if checkpoint is not None:
        ckpt = Path(checkpoint)
        if not ckpt.is_file():
            raise T2ILoadError(f"checkpoint not found: {ckpt}")
    if lora is not None:
        lora_path = Path(lora)
        if not lora_path.is_file():
            raise T2ILoadError(f"LoRA not found: {lora_path}")

    with _quiet_loading():
        return _load(path, fam, ckpt, lora_path, torch_device, torch_dtype, lora_scale)


@contextmanager
def _quiet_loading():
    """transformers' per-component "Loading weights" bars off while we load (the jobs show their own progress)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _load(path: Path, fam: T2IFamily, ckpt: Path | None, lora_path: Path | None, torch_device: torch.device,
          torch_dtype: torch.dtype, lora_scale: float) -> LoadedT2I:
    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    unet, unet_name, unet_sha = _load_unet(path, ckpt, torch_dtype)
    lora_sha = ""
    if lora_path is not None:
        fuse_lora(unet, lora_path, scale=lora_scale)
        lora_sha = file_sha256(lora_path)

    vae_dtype = torch.float32 if fam.vae_fp32 else torch_dtype
    try:
        vae = AutoencoderKL.from_pretrained(path, subfolder="vae", local_files_only=True, torch_dtype=vae_dtype,
                                            variant=_weights(path / "vae")[1])
        text_encoders: list = [CLIPTextModel.from_pretrained(
            path, subfolder="text_encoder", local_files_only=True, dtype=torch_dtype,
            variant=_weights(path / "text_encoder")[1])]
        tokenizers: list = [CLIPTokenizer.from_pretrained(path, subfolder="tokenizer", local_files_only=True)]
        if fam.dual_encoder:
            text_encoders.append(CLIPTextModelWithProjection.from_pretrained(
                path, subfolder="text_encoder_2", local_files_only=True, dtype=torch_dtype,
                variant=_weights(path / "text_encoder_2")[1]))
            tokenizers.append(CLIPTokenizer.from_pretrained(path, subfolder="tokenizer_2", local_files_only=True))
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise T2ILoadError(f"base folder {path}: cannot load a component: {first}") from e

    scheduler = _read_json(path / "scheduler" / "scheduler_config.json")
    if scheduler.get("prediction_type", "epsilon") != "epsilon":
        raise T2ILoadError(f"{path / 'scheduler' / 'scheduler_config.json'}: prediction_type "
                           f"{scheduler.get('prediction_type')!r}; DMD2 models predict epsilon")

    unet.to(device=torch_device).eval().requires_grad_(False)  # already in torch_dtype
    vae.to(device=torch_device).eval().requires_grad_(False)
    for enc in text_encoders:
        enc.to(device=torch_device).eval().requires_grad_(False)

    identity = {
        "family": fam.name, "base": path.resolve().name, "base_sha256": base_sha256(path),
        "unet": unet_name, "unet_sha256": unet_sha,
        "lora": lora_path.name if lora_path is not None else "", "lora_sha256": lora_sha,
        "lora_scale": f"{lora_scale:g}" if lora_path is not None else "",
    }
    return LoadedT2I(
        family=fam, unet=unet, vae=vae, text_encoders=tuple(text_encoders), tokenizers=tuple(tokenizers),
        alphas_cumprod=alphas_cumprod_from_config(scheduler),
        vae_scale=float(vae.config.scaling_factor), device=torch_device, dtype=torch_dtype, identity=identity)
