"""Every rank's start of `ingest generate-t2i`: check the base folder and flags against it, load the model,
resolve the capture sites and measure their shapes, giving the `T2IJob` the compute loop runs."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import InputError
from .compute import T2IJob, probe_shapes
from .plan import T2I_COMPUTE_BLOCK, default_name, parse_timesteps
from .prompts import PromptList
from .spec import T2IModelSpec, T2ISettings


def prepare_job(model: T2IModelSpec, prompts: PromptList, settings: T2ISettings, layer_names: list[str] | None,
                ranks: Any) -> T2IJob:
    """Check the base folder, parse the schedule, load the model, resolve the sites, measure shapes (every rank)."""
    from models.device import pick_device
    from models.t2i import FAMILIES, T2ILoadError, detect_family, load_t2i, resolve_sites, timestep_sigmas
    from models.t2i.loading import pick_t2i_dtype

    try:
        family = detect_family(model.base)
    except T2ILoadError as exc:
        raise InputError(str(exc)) from None
    if model.family and FAMILIES[model.family] != family:
        # The components decide: an SDXL UNet cannot run on one text encoder, nor SD v1.5's on two.
        raise InputError(f"--family {model.family}: {model.base} is an {family.name} base folder "
                         f"({'with' if family.dual_encoder else 'without'} text_encoder_2/); leave --family out")
    timesteps = parse_timesteps(family.default_timesteps, family.name, settings.steps, settings.timesteps)
    name = settings.name or default_name(family.name, timesteps, bool(model.lora))
    device = ranks.device if ranks.device is not None else (None if model.device == "auto" else model.device)
    try:
        torch_device = pick_device(device)
    except ValueError as exc:
        raise InputError(f"--device: {exc}") from None
    try:
        pick_t2i_dtype(model.dtype, torch_device)
    except ValueError as exc:
        raise InputError(f"--dtype: {exc}") from None
    _quiet_loading()
    try:
        loaded = load_t2i(model.base, checkpoint=model.checkpoint, lora=model.lora, family=family.name,
                          device=str(torch_device), dtype=model.dtype)
    except T2ILoadError as exc:
        raise InputError(str(exc)) from None
    factor = loaded.vae_factor
    native = int(loaded.unet.config.sample_size) * factor
    height, width = settings.height or native, settings.width or native
    for flag, value in (("--height", height), ("--width", width)):
        if value % factor:
            raise InputError(f"{flag} must be a multiple of the VAE factor {factor} of {model.base}, got {value}")
    try:
        sites = list(resolve_sites(loaded, family.default_sites if layer_names is None else layer_names))
    except ValueError as exc:
        raise InputError(f"--layers: {exc}") from None
    channels, pooled_dim = probe_shapes(loaded, sites, timesteps, settings.residual, settings.spatial)
    return T2IJob(
        model=loaded, name=name, prompts=prompts.prompts, seed=settings.seed, timesteps=timesteps,
        sigmas=tuple(float(np.float32(s)) for s in timestep_sigmas(loaded, timesteps)), height=height, width=width,
        guidance=float(settings.guidance), sites=sites, residual=settings.residual, spatial=settings.spatial,
        step_previews=settings.step_previews, block=T2I_COMPUTE_BLOCK,
        blocks_per_rank=max(1, math.ceil(settings.batch_size / (T2I_COMPUTE_BLOCK * ranks.count))),
        channels=channels, pooled_dim=pooled_dim)


def _quiet_loading() -> None:
    """Turn off transformers' and diffusers' per-component loading bars: the job has its own progress bar, and
    its errors must stay one line on stderr."""
    import diffusers.utils.logging
    import transformers.utils.logging

    transformers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.disable_progress_bar()
