"""DMD2 sampling for the text-to-image models: the step loop, per-sample seeded noise and capture.

The recurrence (DMD2's own SDXL inference, with guidance 0 by default):

    x = latent_noise(step 0)
    for each step i at timestep t_i (abar_i = alphas_cumprod[t_i]):
        eps  = UNet(x, t_i, prompt embeddings[, SDXL: time ids (H, W, 0, 0, H, W) + pooled embedding])
        x0_i = (x - sqrt(1 - abar_i) * eps) / sqrt(abar_i)
        x    = sqrt(abar_{i+1}) * x0_i + sqrt(1 - abar_{i+1}) * latent_noise(step i + 1)
    image = VAE decode(x0_last / vae_scale)

The recurrence runs in float32 (the UNet sees x in the model's dtype); the coefficients
come from the float64 ``alphas_cumprod``. Nothing reads a global random stream: every
noise tensor is a pure function of (seed, prompt id, index, step).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .text import PromptEmbeds, encode_prompts

_FP16_MAX = float(torch.finfo(torch.float16).max)


def timestep_sigmas(model_or_alphas_cumprod, timesteps: Sequence[int]) -> list[float]:
    """sigma_t = sqrt((1 - abar_t) / abar_t) of each timestep: its EDM-equivalent noise level.

    ``model_or_alphas_cumprod``: a ``LoadedT2I`` or its ``alphas_cumprod`` tensor.
    """
    abar = getattr(model_or_alphas_cumprod, "alphas_cumprod", model_or_alphas_cumprod)
    abar = torch.as_tensor(abar, dtype=torch.float64)
    out = []
    for t in timesteps:
        if not 0 <= int(t) < abar.shape[0]:
            raise ValueError(f"timestep {t} out of range 0..{abar.shape[0] - 1}")
        a = float(abar[int(t)])
        out.append(math.sqrt((1.0 - a) / a))
    return out


def latent_noise(seed: int, prompt_id: str, index: int, shape: tuple, step: int = 0) -> torch.Tensor:
    """Standard-normal float32 CPU noise of sample ``index`` of prompt ``prompt_id`` in the run seeded ``seed``.

    Its own numpy SeedSequence keyed by (seed, int(prompt_id, 16), index, step), never a
    running stream, so it does not depend on the batch or on the other samples. Step 0 is
    the initial latent, step i >= 1 the re-noising before step i. ``prompt_id``: the 12 hex
    characters ``lake.layout.prompt_id`` computes.
    """
    if not (isinstance(prompt_id, str) and len(prompt_id) == 12
            and all(c in "0123456789abcdefABCDEF" for c in prompt_id)):
        raise ValueError(f"prompt_id must be 12 hex characters (lake.layout.prompt_id), got {prompt_id!r}")
    key = [int(seed), int(prompt_id, 16), int(index), int(step)]
    if min(key) < 0:
        raise ValueError(f"seed, index and step must be >= 0 (got seed={seed}, index={index}, step={step})")
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(key)))
    return torch.from_numpy(rng.standard_normal(tuple(shape), dtype=np.float32))


def _unet(model):
    return getattr(model, "unet", model)


def resolve_sites(model, names: Sequence[str] | str) -> list[str]:
    """Capture-site names and aliases -> canonical UNet module paths (order kept, duplicates dropped).

    ``model``: a ``LoadedT2I`` (its family's aliases apply) or a bare UNet. Any real module
    path of the UNet is valid; anything else is a ValueError listing the aliases and examples.
    """
    if isinstance(names, str):
        names = [names]
    aliases = dict(getattr(getattr(model, "family", None), "site_aliases", {}) or {})
    modules = dict(_unet(model).named_modules())
    out: list[str] = []
    for name in names:
        canonical = aliases.get(name.strip(), name.strip())
        if canonical not in modules or canonical == "":
            examples = [n for n, m in modules.items() if type(m).__name__ == "Transformer2DModel"][:8]
            alias_text = ", ".join(f"{a}={c}" for a, c in aliases.items()) or "none"
            raise ValueError(f"unknown capture site {name!r}; aliases: {alias_text}; "
                             f"or any UNet module path, e.g. {', '.join(examples)}")
        if canonical not in out:
            out.append(canonical)
    return out


@dataclass
class T2IResult:
    """What ``t2i_generate`` returns (numpy arrays on the CPU).

    ``images`` uint8 (n, H, W, 3); ``x0_images`` uint8 (n, K, H, W, 3) or None; per site
    ``means`` float32 (n, K, C), ``updates`` float32 (n, K, C) (output minus input) and
    ``spatial`` float32 (n, K, C, s, s); ``sigmas``: ``timestep_sigmas`` of the timesteps.
    """

    images: np.ndarray
    x0_images: np.ndarray | None
    means: dict[str, np.ndarray] = field(default_factory=dict)
    updates: dict[str, np.ndarray] = field(default_factory=dict)
    spatial: dict[str, np.ndarray] = field(default_factory=dict)
    sigmas: list[float] = field(default_factory=list)


def _hidden(output) -> torch.Tensor:
    """The hidden states of a module output (a tensor, a tuple whose first item it is, or ``.sample``)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    sample = getattr(output, "sample", None)
    if isinstance(sample, torch.Tensor):
        return sample
    raise TypeError(f"cannot find hidden states in a module output of type {type(output).__name__}")


def _channel_mean(h: torch.Tensor) -> torch.Tensor:
    # (n, C, H, W): spatial mean; (n, L, C): token mean (transformer blocks are channel-last).
    if h.ndim == 4:
        return h.mean(dim=(2, 3), dtype=torch.float32)
    if h.ndim == 3:
        return h.mean(dim=1, dtype=torch.float32)
    return h.to(torch.float32)


class _Capture:
    """Forward hooks that reduce each site's output per step; they only read, never change, the tensors."""

    def __init__(self, unet, sites: Sequence[str], residual: bool, spatial: int, latent_hw: tuple[int, int]):
        self.unet, self.sites, self.residual, self.pool = unet, list(sites), residual, spatial
        self.latent_hw = latent_hw
        self.keep: slice = slice(None)  # which rows of the batch are the samples (CFG: the conditional half)
        self.means: dict[str, list] = {s: [] for s in self.sites}
        self.updates: dict[str, list] = {s: [] for s in self.sites}
        self.maps: dict[str, list] = {s: [] for s in self.sites}
        self.handles: list = []

    def _map(self, site: str, h: torch.Tensor) -> torch.Tensor:
        s = self.pool
        if h.ndim == 3:  # (n, L, C) tokens of a latent grid downsampled by some factor f
            n, length, c = h.shape
            f = round(math.sqrt(self.latent_hw[0] * self.latent_hw[1] / length))
            hh, ww = self.latent_hw[0] // max(f, 1), self.latent_hw[1] // max(f, 1)
            if hh * ww != length:
                raise ValueError(f"site {site}: cannot lay {length} tokens out on a grid for spatial maps")
            h = h.transpose(1, 2).reshape(n, c, hh, ww)
        if h.ndim != 4:
            raise ValueError(f"site {site}: output of shape {tuple(h.shape)} has no spatial grid")
        # float32 values clipped to float16's finite range, so a store in float16 never holds inf.
        return F.adaptive_avg_pool2d(h.to(torch.float32), s).clamp_(-_FP16_MAX, _FP16_MAX)

    def _hook(self, site: str):
        def hook(module, args, kwargs, output):
            out = _hidden(output)[self.keep]
            self.means[site].append(_channel_mean(out))
            if self.residual:
                inp = args[0] if args else kwargs.get("hidden_states")
                if not isinstance(inp, torch.Tensor) or inp.shape != _hidden(output).shape:
                    raise ValueError(f"site {site}: input and output shapes differ, no residual update")
                self.updates[site].append(_channel_mean(out.to(torch.float32) - inp[self.keep].to(torch.float32)))
            if self.pool:
                self.maps[site].append(self._map(site, out))
        return hook

    def __enter__(self):
        modules = dict(self.unet.named_modules())
        for site in self.sites:
            self.handles.append(modules[site].register_forward_hook(self._hook(site), with_kwargs=True))
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()
        self.handles.clear()

    def check_step(self, steps_done: int) -> None:
        for site in self.sites:
            if len(self.means[site]) != steps_done:
                raise RuntimeError(f"site {site} ran {len(self.means[site])} times in {steps_done} UNet "
                                   f"passes; capture needs a module that runs once per pass")

    @staticmethod
    def _stack(lists: dict[str, list]) -> dict[str, np.ndarray]:
        return {s: torch.stack(v, dim=1).cpu().numpy() for s, v in lists.items() if v}


@contextmanager
def _no_capture():
    yield None


def decode_latents(model, x0: torch.Tensor) -> torch.Tensor:
    """uint8 (n, H, W, 3) CPU images of latents ``x0``: VAE decode of x0 / vae_scale, rounded like diffusers."""
    vae_dtype = next(model.vae.parameters()).dtype  # fp32 for SDXL whatever the model dtype
    image = model.vae.decode((x0 / model.vae_scale).to(vae_dtype), return_dict=False)[0]
    image = (image.to(torch.float32) / 2 + 0.5).clamp(0, 1)
    return (image * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu()


def _noise_batch(keys: Sequence[tuple[int, str, int]], shape: tuple, step: int, device) -> torch.Tensor:
    return torch.stack([latent_noise(s, p, i, shape, step) for s, p, i in keys]).to(device)


def _conditioning(model, embeds: PromptEmbeds, negative: PromptEmbeds | None, cfg: bool, height: int,
                  width: int) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
    """The UNet's text conditioning for every row: (encoder hidden states, SDXL's added_cond_kwargs or None).

    With ``cfg`` the rows are doubled, unconditional first (``negative``, default the encoded
    empty prompt, one row or one per sample), as diffusers' pipelines batch them.
    """
    device, dtype, n = model.device, model.dtype, len(embeds)
    cond, pooled = embeds.embeds.to(device, dtype), embeds.pooled.to(device, dtype)
    if cfg:
        neg = negative if negative is not None else encode_prompts(model, [""])
        if len(neg) == 1:
            neg = neg.take([0] * n)
        if len(neg) != n:
            raise ValueError(f"negative embeddings have {len(neg)} rows; give 1 or {n}")
        cond = torch.cat([neg.embeds.to(device, dtype), cond])
        pooled = torch.cat([neg.pooled.to(device, dtype), pooled])
    added = None
    if model.family.dual_encoder:
        time_ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=dtype, device=device).repeat(cond.shape[0], 1)
        added = {"text_embeds": pooled, "time_ids": time_ids}
    return cond, added


@torch.no_grad()
def t2i_generate(model, embeds: PromptEmbeds, noise_keys: Sequence[tuple[int, str, int]],
                 timesteps: Sequence[int], height: int, width: int, *, guidance: float = 0.0,
                 negative: PromptEmbeds | None = None, sites: Sequence[str] = (), residual: bool = False,
                 spatial: int = 0, decode_steps: bool = True) -> T2IResult:
    """Generate one image per row of ``embeds`` with DMD2's step loop (module docstring), capturing ``sites``.

    ``noise_keys``: (seed, prompt_id, index) per row, the keys of ``latent_noise``.
    ``timesteps``: e.g. ``family.default_timesteps[4]``. ``guidance`` > 1 turns on
    classifier-free guidance against ``negative`` (one row, or one per sample; default: the
    encoded empty prompt); only the conditional half is captured. ``sites``: names or
    aliases (``resolve_sites``); per step, ``means`` holds each site's output mean per channel,
    ``updates`` (with ``residual``) the mean of output minus input, ``spatial`` (with
    ``spatial`` = s > 0) the output average-pooled to s x s (adaptive pooling: a site whose
    grid is smaller than s repeats its cells) and clipped to float16's finite range. Capture only reads tensors: the
    images are bit-identical with or without it. With ``decode_steps`` every step's x0 is
    decoded too (``x0_images``; the last one is ``images``).
    """
    n = len(embeds)
    if len(noise_keys) != n:
        raise ValueError(f"{len(noise_keys)} noise keys for {n} prompt rows; give one (seed, prompt_id, index) per row")
    if not timesteps:
        raise ValueError("no timesteps")
    factor = model.vae_factor
    if height % factor or width % factor or height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive multiples of {factor} (got {height}x{width})")
    if spatial < 0:
        raise ValueError(f"spatial must be >= 0 (got {spatial})")
    sigmas = timestep_sigmas(model, timesteps)  # also range-checks the timesteps
    site_names = resolve_sites(model, sites) if sites else []
    device, dtype = model.device, model.dtype
    cfg = guidance > 1.0
    latent_hw = (height // factor, width // factor)
    shape = (model.latent_channels, *latent_hw)

    cond, added = _conditioning(model, embeds, negative if cfg else None, cfg, height, width)
    batch = cond.shape[0]

    abar = model.alphas_cumprod
    capture = _Capture(model.unet, site_names, residual, spatial, latent_hw) if site_names else None
    if capture is not None and cfg:
        capture.keep = slice(n, None)
    x = _noise_batch(noise_keys, shape, 0, device)
    x0_steps: list[torch.Tensor] = []
    last_x0 = x
    with capture if capture is not None else _no_capture():
        for i, t in enumerate(timesteps):
            a = float(abar[int(t)])
            x_in = x.to(dtype)
            if cfg:
                x_in = torch.cat([x_in, x_in])
            t_in = torch.full((batch,), int(t), dtype=torch.long, device=device)
            eps = model.unet(x_in, t_in, encoder_hidden_states=cond, added_cond_kwargs=added,
                             return_dict=False)[0]
            if capture is not None:
                capture.check_step(i + 1)
            if cfg:
                eps_u, eps_c = eps.chunk(2)
                eps = eps_u + guidance * (eps_c - eps_u)
            last_x0 = (x - math.sqrt(1.0 - a) * eps.to(torch.float32)) / math.sqrt(a)
            if decode_steps:
                x0_steps.append(decode_latents(model, last_x0))
            if i + 1 < len(timesteps):
                a_next = float(abar[int(timesteps[i + 1])])
                x = math.sqrt(a_next) * last_x0 + math.sqrt(1.0 - a_next) * _noise_batch(noise_keys, shape, i + 1, device)
    images = x0_steps[-1] if decode_steps else decode_latents(model, last_x0)
    result = T2IResult(images=images.numpy(),
                       x0_images=torch.stack(x0_steps, dim=1).numpy() if decode_steps else None, sigmas=sigmas)
    if capture is not None:
        result.means = capture._stack(capture.means)
        result.updates = capture._stack(capture.updates)
        result.spatial = capture._stack(capture.maps)
    return result
