"""`python -m ingest generate-t2i`: text-to-image DMD2 samples (SDXL, SD v1.5), their prompts and activations.

A run plans its samples prompt-major (prompt 0's indices 0..N-1, then prompt 1's, ...) over the
distinct prompts of its sources (`ingest.prompts`). Sample (prompt, index) of a seed has the id
``t2i/<name>/<prompt_id>/s<seed>/<index>`` (`lake.layout.t2i_sample_id`) and depends on nothing
else: its noise is keyed by (seed, prompt_id, index, step) (`models.t2i.latent_noise`), its
prompt is encoded on its own, and the network runs on fixed *compute blocks* (`compute_blocks`)
whose membership is a function of the sample alone, never of --batch-size, of what a
resumed run still lacks, or of the number of processes. So the lake's bits do not depend on
how the job was batched, interrupted, extended or spread over processes (same device type
and threads per process), as for `ingest generate` (see ingest.probe).

Each write step appends, in ONE commit: the samples' 64x64 thumbnails to ``samples`` (split
``t2i``), the native images, step previews and prompt coordinates to ``t2i/<name>/samples``,
the prompts not yet stored (with their pooled text embedding) to ``t2i/<name>/prompts``, and
each capture site's per-step channel means to ``activations/<name>.<module>`` (and
``+update`` with --residual). Rerunning skips sample ids every table already holds; a table
added later (another --layers) is filled in without duplicating the others' rows.

Multi-process: ``accelerate launch -m ingest generate-t2i ...``; every process computes its share
of each write step's blocks and rank 0 alone writes (ingest.ranks).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .generate import Failure  # rank 0's "cannot start" message, as `ingest generate` sends it
from .options import add_lake_flag, add_run_flags, positive
from .prompts import DEFAULT_TEMPLATE, PromptList, PromptSpec, collect_prompts

# Samples per network call. One: a DMD2 step at 1024x1024 is a 128x128-latent UNet pass that
# fills a GPU by itself, and a block must be a function of the sample alone (an extended run
# adds samples to prompts that already have some), so any larger block would compute samples
# nobody asked for whenever --samples-per-prompt is below it.
T2I_COMPUTE_BLOCK = 1
# Identity attributes of t2i/<name>: a run with other values would put other pictures under the same ids.
IDENTITY_KEYS = ("family", "base_sha256", "unet_sha256", "lora_sha256", "timesteps", "height", "width", "guidance")
TIMESTEP_LIMIT = 1000  # DDPM timesteps of both families: 0..999


@dataclass(frozen=True)
class T2IModelSpec:
    """Which text-to-image model to load, where: what --base/--checkpoint/--lora/--family/--device/--dtype say."""

    base: str
    checkpoint: str | None = None
    lora: str | None = None
    family: str | None = None  # None: detected from the base folder (given: checked against it)
    device: str = "auto"
    dtype: str = "fp32"


@dataclass(frozen=True)
class T2ISettings:
    """How to sample and what to capture; everything but the model and the prompts."""

    name: str | None = None  # None: dmd2-<family>-<K>step[-lora]
    samples_per_prompt: int = 1
    seed: int = 0
    steps: int | str | None = None
    timesteps: str | Sequence[int] | None = None
    guidance: float = 0.0
    height: int | None = None
    width: int | None = None
    layers: str | Sequence[str] | None = None  # None: the family's default sites; "none": no capture
    residual: bool = False
    spatial: int = 0
    step_previews: bool = True
    batch_size: int = 16
    progress: bool = True


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from lake.cli import command

    parser = command(
        subparsers,
        "generate-t2i",
        run,
        help="generate text-to-image DMD2 samples (SDXL, SD v1.5) from prompts, with their activations",
        description="Generate --samples-per-prompt samples of each prompt with a DMD2 text-to-image UNet on a local "
        "diffusers-format base folder, into the lake: 64x64 thumbnails in samples (split t2i), native images, per-step "
        "x0 previews and prompt coordinates in t2i/<name>/samples, each prompt's pooled text embedding in "
        "t2i/<name>/prompts, and each capture site's per-step channel means in activations/<name>.<module> (its sigma "
        "axis: each step's noise level sqrt((1-abar_t)/abar_t)). Sample (prompt, index) depends only on (model, "
        "prompt, --seed, index): reruns add only what is missing, a killed run resumes, and --batch-size or the number "
        "of processes change no bit. Prompts come from --prompts FILE, --prompt TEXT and --prompts-from-classes, in "
        "that order. Multi-GPU: accelerate launch -m ingest generate-t2i ...",
    )
    add_lake_flag(parser)
    model = parser.add_argument_group("model")
    model.add_argument("--base", required=True, metavar="PATH",
                       help="diffusers-format base folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, "
                       "[text_encoder_2/, tokenizer_2/], scheduler/), e.g. a local copy of "
                       "stabilityai/stable-diffusion-xl-base-1.0; nothing is downloaded")
    model.add_argument("--checkpoint", default=None, metavar="PATH",
                       help="DMD2 whole-UNet weights (.bin or .safetensors, e.g. dmd2_sdxl_4step_unet_fp16.bin) loaded "
                       "strictly into the base UNet's architecture. Default: the base UNet as it is")
    model.add_argument("--lora", default=None, metavar="PATH",
                       help="a DMD2 LoRA (e.g. dmd2_sdxl_4step_lora_fp16.safetensors) fused into the base UNet; "
                       "not with --checkpoint")
    model.add_argument("--family", default=None, choices=["sdxl", "sd15"],
                       help="model family, checked against the base folder; default: detected (a base folder with "
                       "text_encoder_2/ is sdxl, else sd15)")
    model.add_argument("--name", default=None, metavar="NAME",
                       help="the model's name in the lake (t2i/<name>, activations/<name>.<module>): lower-case "
                       "letters, digits, '-' and '_'. Default dmd2-<family>-<K>step (plus -lora with --lora). One name "
                       "holds one model (base, UNet and LoRA hashes), size, timesteps and guidance")
    model.add_argument("--device", default="auto",
                       help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps; under `accelerate launch` each process uses "
                       "its own GPU (cpu: gloo processes)")
    model.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"],
                       help="UNet and text encoder precision: fp32 (default), fp16 or bf16 (CUDA only; fp16 is how DMD2 "
                       "ships its weights). The SDXL VAE always decodes in fp32; stored activations are float32")
    prompts = parser.add_argument_group("prompts")
    prompts.add_argument("--prompts", default=None, metavar="FILE",
                         help="prompt file: .txt (one prompt per line; blank lines and lines starting with # are "
                         "skipped) or .csv (header row; column prompt required, optional negative_prompt and "
                         "class_id or class: an ImageNet class id, wnid or name)")
    prompts.add_argument("--prompt", action="append", default=[], metavar="TEXT",
                         help="a prompt (repeatable), after those of --prompts")
    prompts.add_argument("--prompts-from-classes", default=None, metavar="LIST",
                         help="one prompt per ImageNet class (comma-separated ids, wnids or names), from "
                         "--prompt-template; the samples keep the class id, so they line up with ImageNet classes")
    prompts.add_argument("--prompt-template", default=DEFAULT_TEMPLATE, metavar="TEXT",
                         help=f"template of --prompts-from-classes, with {{name}} for the class name "
                         f"(default {DEFAULT_TEMPLATE!r})")
    prompts.add_argument("--negative-prompt", default=None, metavar="TEXT",
                         help="negative prompt for every prompt without one of its own (a CSV's negative_prompt column "
                         "wins); it is part of the prompt's id and only acts with --guidance above 1")
    sampling = parser.add_argument_group("sampling")
    sampling.add_argument("--samples-per-prompt", type=int, default=1, metavar="N",
                          help="samples 0..N-1 of each prompt (default 1); a larger N later adds only the new ones")
    sampling.add_argument("--seed", type=int, default=0, metavar="S",
                          help="generation seed (default 0): sample i of a prompt draws its noise from (S, prompt id, i, step)")
    sampling.add_argument("--steps", default=None, metavar="K",
                          help="DMD2's K-step schedule of the family: sdxl 4 (timesteps 999,749,499,249; the default) "
                          "or 1 (timestep 399, for the one-step checkpoint); sd15 1 (999). Not with --timesteps")
    sampling.add_argument("--timesteps", default=None, metavar="LIST",
                          help="explicit timesteps, comma-separated, strictly decreasing, each in 0..999 "
                          "(e.g. 999,749,499,249). Not with --steps")
    sampling.add_argument("--guidance", type=float, default=0.0, metavar="G",
                          help="classifier-free guidance scale; default 0 = none, DMD2's setting (values up to 1 "
                          "mean none too)")
    sampling.add_argument("--height", type=int, default=None, metavar="PX",
                          help="image height; default: the base UNet's size (1024 for SDXL, 512 for SD v1.5); a "
                          "multiple of the VAE factor (8)")
    sampling.add_argument("--width", type=int, default=None, metavar="PX",
                          help="image width; default and rule as --height")
    capture = parser.add_argument_group("capture")
    capture.add_argument("--layers", default=None, metavar="LIST",
                         help="capture sites, comma-separated: aliases (sdxl: down2.attn1, mid, up0.attn0, up0.attn1; "
                         "sd15: down2.attn1, mid, up1.attn0, up1.attn1) or any UNet module path "
                         "(e.g. down_blocks.2.attentions.1). Default: the family's four sites; 'none': no capture")
    capture.add_argument("--residual", action="store_true",
                         help="also store each site's residual update (output - input) in activations/<name>.<module>+update")
    capture.add_argument("--spatial", type=int, default=0, metavar="S",
                         help="also store each site's output average-pooled to S x S maps (float16, the activation "
                         "table's spatial column); default 0 = none")
    capture.add_argument("--no-step-previews", action="store_true",
                         help="do not decode each step's x0 (t2i/<name>/samples then has no x0 previews); saves one VAE "
                         "decode per step")
    add_run_flags(parser, default_batch=16)


def run(args: argparse.Namespace) -> None:
    """`python -m ingest generate-t2i`: the flags as `generate_t2i`'s typed arguments."""
    prompts = collect_prompts(args.prompts, args.prompt, args.prompts_from_classes, args.prompt_template,
                              args.negative_prompt)
    model = T2IModelSpec(base=args.base, checkpoint=args.checkpoint, lora=args.lora, family=args.family,
                         device=args.device, dtype=args.dtype)
    settings = T2ISettings(
        name=args.name, samples_per_prompt=args.samples_per_prompt, seed=args.seed, steps=args.steps,
        timesteps=args.timesteps, guidance=args.guidance, height=args.height, width=args.width, layers=args.layers,
        residual=args.residual, spatial=args.spatial, step_previews=not args.no_step_previews,
        batch_size=args.batch_size, progress=not args.no_progress)
    generate_t2i(args.lake, model, prompts, settings)


# --------------------------------------------------------------------------- pure planning


def parse_timesteps(default_timesteps: dict[int, tuple[int, ...]], family: str, steps: int | str | None = None,
                    timesteps: str | Sequence[int] | None = None) -> tuple[int, ...]:
    """The run's timesteps: --timesteps as given, or the family's DMD2 schedule for --steps K.

    Default: the family's longest DMD2 schedule (sdxl: 4 steps; sd15: 1). InputError (one
    line, naming the flag) for both flags, a bad K, a non-integer, a timestep outside 0..999
    or a list that is not strictly decreasing.
    """
    if steps is not None and timesteps is not None:
        raise InputError("--steps and --timesteps: give one of them, not both")
    if timesteps is None:
        known = ", ".join(str(k) for k in sorted(default_timesteps))
        if steps is None:
            return tuple(default_timesteps[max(default_timesteps)])
        try:
            k = int(str(steps).strip())
        except ValueError:
            raise InputError(f"--steps must be an integer ({family}: {known}), got {steps!r}") from None
        if k not in default_timesteps:
            raise InputError(f"--steps {k}: DMD2 {family} has schedules for {known} step(s); "
                             "give other schedules with --timesteps")
        return tuple(default_timesteps[k])
    tokens = timesteps.split(",") if isinstance(timesteps, str) else [str(t) for t in timesteps]
    values = []
    for token in (t.strip() for t in tokens if t.strip()):
        try:
            value = int(token)
        except ValueError:
            raise InputError(f"--timesteps: {token!r} is not an integer timestep") from None
        if not 0 <= value < TIMESTEP_LIMIT:
            raise InputError(f"--timesteps: every timestep must lie in 0..{TIMESTEP_LIMIT - 1}, got {value}")
        values.append(value)
    if not values:
        raise InputError("--timesteps: give at least one timestep, e.g. 999,749,499,249")
    if any(b >= a for a, b in zip(values, values[1:], strict=False)):
        raise InputError(f"--timesteps must be strictly decreasing (each step less noisy), got {','.join(map(str, values))}")
    return tuple(values)


def default_name(family: str, timesteps: Sequence[int], lora: bool) -> str:
    """``dmd2-<family>-<K>step`` (plus ``-lora`` for a LoRA-fused UNet)."""
    return f"dmd2-{family}-{len(timesteps)}step" + ("-lora" if lora else "")


def parse_layers(text: str | Sequence[str] | None) -> list[str] | None:
    """--layers as names (None: the family's default sites; [] for 'none')."""
    if text is None:
        return None
    names = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    if names == ["none"]:
        return []
    if not names:
        raise InputError("--layers: give site names or aliases, comma-separated, or 'none'")
    return names


@dataclass(frozen=True)
class PlannedSample:
    """One sample of the run: its prompt's position in the prompt list, and its index among the prompt's samples."""

    prompt: int
    index: int


def plan_samples(num_prompts: int, samples_per_prompt: int) -> list[PlannedSample]:
    """Every sample of the run, prompt-major: prompt 0's indices 0..N-1, then prompt 1's, ..."""
    return [PlannedSample(p, i) for p in range(num_prompts) for i in range(samples_per_prompt)]


@dataclass(frozen=True)
class ComputeBlock:
    """Samples computed in one network call: indices start..start+size-1 of one prompt."""

    prompt: int
    start: int
    size: int

    @property
    def samples(self) -> list[PlannedSample]:
        return [PlannedSample(self.prompt, i) for i in range(self.start, self.start + self.size)]


def compute_blocks(needed: Sequence[PlannedSample], block: int) -> list[ComputeBlock]:
    """The compute blocks covering `needed`, in plan order: block k of a prompt is its indices kB..kB+B-1.

    A block's members depend only on (prompt, index // block), so a sample is computed in the
    same company whatever else the run needs (a block is computed whole; samples nobody asked
    for are dropped).
    """
    seen: dict[tuple[int, int], ComputeBlock] = {}
    for sample in needed:
        key = (sample.prompt, sample.index // block)
        if key not in seen:
            seen[key] = ComputeBlock(sample.prompt, key[1] * block, block)
    return list(seen.values())


def split_steps(blocks: Sequence[ComputeBlock], blocks_per_rank: int, ranks: int) -> list[list[ComputeBlock]]:
    """Consecutive groups of blocks, one group per write; rank r takes the r-th slice of each group."""
    per_step = blocks_per_rank * ranks
    return [list(blocks[i : i + per_step]) for i in range(0, len(blocks), per_step)]


def thumbnail(image: np.ndarray) -> np.ndarray:
    """The samples table's 64x64 thumbnail of a native image: centre square, box (area) resize."""
    from lake.layout import T2I_THUMBNAIL_SIZE

    from .jpeg import centre_square_thumbnail

    return centre_square_thumbnail(image, T2I_THUMBNAIL_SIZE)


def preview(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An x0 step preview: the whole image box-resized to `size` (height, width), uint8 HWC."""
    from PIL import Image

    height, width = size
    if image.shape[:2] == (height, width):
        return np.ascontiguousarray(image, dtype=np.uint8)
    return np.asarray(Image.fromarray(image, "RGB").resize((width, height), Image.Resampling.BOX), dtype=np.uint8)


# --------------------------------------------------------------------------- the compute side


@dataclass
class T2IJob:
    """Everything the compute loop needs, identical on every rank."""

    model: Any  # models.t2i.LoadedT2I
    name: str
    prompts: tuple[PromptSpec, ...]
    seed: int
    timesteps: tuple[int, ...]
    sigmas: tuple[float, ...]
    height: int
    width: int
    guidance: float
    sites: list[str]
    residual: bool
    spatial: int
    step_previews: bool
    block: int
    blocks_per_rank: int
    channels: dict[str, int] = field(default_factory=dict)  # site -> channels
    pooled_dim: int = 0
    # The latest prompt's (position, prompt embeds, negative embeds or None): blocks come prompt-major, so one
    # prompt's blocks follow each other, and keeping only the latest bounds memory whatever the number of prompts.
    _embeds: tuple[int, Any, Any] | None = None

    @property
    def preview_size(self) -> tuple[int, int]:
        from lake.layout import preview_size

        return preview_size(self.height, self.width)

    @property
    def guided(self) -> bool:
        return self.guidance > 1.0

    def sample_id(self, sample: PlannedSample) -> str:
        from lake.layout import t2i_sample_id

        return t2i_sample_id(self.name, self.prompts[sample.prompt].prompt_id, self.seed, sample.index)

    def embeds(self, prompt: int) -> tuple[Any, Any]:
        """(prompt embeds, negative embeds or None) of a prompt, each encoded on its own (kept while its blocks run)."""
        from models.t2i import encode_prompts

        if self._embeds is None or self._embeds[0] != prompt:
            spec = self.prompts[prompt]
            negative = encode_prompts(self.model, [spec.negative_prompt]) if self.guided else None
            self._embeds = (prompt, encode_prompts(self.model, [spec.prompt]), negative)
        return self._embeds[1], self._embeds[2]


@dataclass
class T2IBatch:
    """Samples gathered from every rank, in plan order (rank 0 only)."""

    samples: list[PlannedSample]
    images: np.ndarray  # (n, H, W, 3) uint8
    thumbnails: np.ndarray  # (n, 64, 64, 3) uint8
    previews: np.ndarray | None  # (n, K, ph, pw, 3) uint8
    pooled: np.ndarray  # (n, P) float32: each sample's prompt's pooled embedding
    means: dict[str, np.ndarray]  # site -> (n, K, C) float32
    updates: dict[str, np.ndarray]  # site -> (n, K, C) float32 (with --residual)
    spatial: dict[str, np.ndarray]  # site -> (n, K, C, S, S) float32 (with --spatial)


def compute_block(job: T2IJob, block: ComputeBlock) -> tuple[Any, np.ndarray]:
    """One block through `models.t2i.t2i_generate` (one prompt, noise keyed by (seed, prompt_id, index)):
    its `T2IResult` and the prompt's pooled text embedding (P,) float32."""
    import torch
    from models.t2i import t2i_generate

    prompt, negative = job.embeds(block.prompt)
    rows = [0] * block.size
    pid = job.prompts[block.prompt].prompt_id
    with torch.inference_mode():
        out = t2i_generate(
            job.model, prompt.take(rows), [(job.seed, pid, i) for i in range(block.start, block.start + block.size)],
            job.timesteps, job.height, job.width, guidance=job.guidance,
            negative=negative.take(rows) if negative is not None else None, sites=job.sites, residual=job.residual,
            spatial=job.spatial, decode_steps=job.step_previews)
    return out, prompt.pooled_numpy()[0]


def _pack(job: T2IJob, outputs: list[tuple[ComputeBlock, tuple[Any, np.ndarray]]], size: int) -> dict[str, np.ndarray]:
    """This rank's blocks as fixed-size arrays (padding: prompt -1), thumbnails and previews made here."""
    k, (ph, pw) = len(job.timesteps), job.preview_size
    arrays: dict[str, np.ndarray] = {
        "prompt": np.full(size, -1, dtype=np.int64),
        "index": np.full(size, -1, dtype=np.int64),
        "image": np.zeros((size, job.height, job.width, 3), dtype=np.uint8),
        "thumbnail": np.zeros((size, 64, 64, 3), dtype=np.uint8),
        "pooled": np.zeros((size, job.pooled_dim), dtype=np.float32),
    }
    if job.step_previews:
        arrays["x0"] = np.zeros((size, k, ph, pw, 3), dtype=np.uint8)
    for site in job.sites:
        c = job.channels[site]
        arrays[f"mean/{site}"] = np.zeros((size, k, c), dtype=np.float32)
        if job.residual:
            arrays[f"update/{site}"] = np.zeros((size, k, c), dtype=np.float32)
        if job.spatial:
            arrays[f"spatial/{site}"] = np.zeros((size, k, c, job.spatial, job.spatial), dtype=np.float32)
    row = 0
    for block, (out, pooled) in outputs:
        n = block.size
        rows = slice(row, row + n)
        arrays["prompt"][rows] = block.prompt
        arrays["index"][rows] = np.arange(block.start, block.start + n)
        images = _numpy(out.images, np.uint8)
        arrays["image"][rows] = images
        arrays["thumbnail"][rows] = [thumbnail(image) for image in images]
        arrays["pooled"][rows] = pooled
        if job.step_previews:
            x0 = _numpy(out.x0_images, np.uint8)
            arrays["x0"][rows] = [[preview(step, (ph, pw)) for step in sample] for sample in x0]
        for site in job.sites:
            arrays[f"mean/{site}"][rows] = _numpy(out.means[site], np.float32)
            if job.residual:
                arrays[f"update/{site}"][rows] = _numpy(out.updates[site], np.float32)
            if job.spatial:
                arrays[f"spatial/{site}"][rows] = _numpy(out.spatial[site], np.float32)
        row += n
    return arrays


def _numpy(value: Any, dtype: Any) -> np.ndarray:
    """A tensor or array as a numpy array of `dtype` (t2i_generate returns tensors)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


def compute_steps(job: T2IJob, blocks: list[ComputeBlock], wanted: set[PlannedSample], ranks: Any) -> Iterator[T2IBatch]:
    """Compute `blocks` a write step at a time (rank r: the r-th slice of each step); yields on rank 0 only.

    Every rank runs this loop in the same order (the gathers are collective). A rank with
    no block left in the last step sends padding marked with prompt -1.
    """
    size = job.blocks_per_rank * job.block
    for step in split_steps(blocks, job.blocks_per_rank, ranks.count):
        mine = step[ranks.index * job.blocks_per_rank : (ranks.index + 1) * job.blocks_per_rank]
        outputs = [(block, compute_block(job, block)) for block in mine]
        gathered = ranks.gather(_pack(job, outputs, size))
        if not ranks.is_main:
            continue
        samples = [PlannedSample(int(p), int(i)) for p, i in zip(gathered["prompt"], gathered["index"])]
        keep = np.array([p >= 0 and s in wanted for p, s in zip(gathered["prompt"], samples)], dtype=bool)
        samples = [s for s, k in zip(samples, keep) if k]
        yield T2IBatch(
            samples=samples, images=gathered["image"][keep], thumbnails=gathered["thumbnail"][keep],
            previews=gathered["x0"][keep] if job.step_previews else None, pooled=gathered["pooled"][keep],
            means={site: gathered[f"mean/{site}"][keep] for site in job.sites},
            updates={site: gathered[f"update/{site}"][keep] for site in job.sites} if job.residual else {},
            spatial={site: gathered[f"spatial/{site}"][keep] for site in job.sites} if job.spatial else {},
        )


def probe_shapes(model: Any, sites: Sequence[str], timesteps: Sequence[int], residual: bool = False,
                 spatial: int = 0) -> tuple[dict[str, int], int]:
    """(channels of each site's output, pooled embedding size), read off one small generation pass.

    Any module path is a valid site, so its channel count is measured rather than looked up:
    one step at the smallest size every UNet level can halve, without decoding steps, with the
    run's capture settings, so a site that cannot give them (a residual of a module whose output
    shape differs from its input's, a module that runs twice per pass) is an InputError before
    the lake is touched. Every rank runs it, so the fixed-size arrays a rank exchanges are
    known before any work.
    """
    import torch
    from models.t2i import encode_prompts, t2i_generate

    embeds = encode_prompts(model, [""])
    levels = len(model.unet.config.block_out_channels)
    side = model.vae_factor * 2 ** levels
    try:
        with torch.inference_mode():
            out = t2i_generate(model, embeds, [(0, "0" * 12, 0)], list(timesteps)[:1], side, side, sites=list(sites),
                               residual=residual, spatial=spatial, decode_steps=False)
    except ValueError as exc:  # the capture's one-line reasons (models.t2i.sampling)
        raise InputError(f"--layers: {exc}") from None
    except RuntimeError as exc:
        if "capture needs" not in str(exc):
            raise
        raise InputError(f"--layers: {exc}") from None
    return {site: int(out.means[site].shape[-1]) for site in sites}, int(embeds.pooled.shape[-1])


# --------------------------------------------------------------------------- the job


def generate_t2i(lake: str | os.PathLike[str], model: T2IModelSpec, prompts: PromptList | Sequence[PromptSpec],
                 settings: T2ISettings = T2ISettings()) -> str:
    """Make sure samples 0..N-1 of every prompt (N = `settings.samples_per_prompt`) are in `lake`; returns the model name.

    `model` names the base folder and the DMD2 UNet (checkpoint or LoRA); `prompts` come from
    `ingest.prompts.collect_prompts` (distinct prompt ids). Only missing samples are made
    (and missing rows of any table they belong in). Under `accelerate launch`/torchrun every
    process calls this; rank 0 alone writes. Bad input raises InputError (one line) before
    the lake is touched, or rolls the lake back to how it was.
    """
    from lake.layout import check_t2i_name

    from .ranks import detect_ranks

    prompt_list = prompts if isinstance(prompts, PromptList) else PromptList(tuple(prompts))
    if not prompt_list.prompts:
        raise InputError("no prompts: give --prompts FILE, --prompt TEXT or --prompts-from-classes LIST")
    if len({p.prompt_id for p in prompt_list.prompts}) != len(prompt_list.prompts):
        raise InputError("repeated prompts: pass them through ingest.prompts.collect_prompts, which drops repeats")
    if any(not p.prompt.strip() for p in prompt_list.prompts):
        raise InputError("empty prompt: every prompt needs some text")
    positive(settings.samples_per_prompt, "--samples-per-prompt")
    positive(settings.batch_size, "--batch-size")
    if settings.seed < 0:
        raise InputError(f"--seed must be >= 0, got {settings.seed}")
    if not math.isfinite(settings.guidance) or settings.guidance < 0:
        raise InputError(f"--guidance must be a number >= 0, got {settings.guidance}")
    if settings.spatial < 0:
        raise InputError(f"--spatial must be >= 0 (0: no maps), got {settings.spatial}")
    for flag, value in (("--height", settings.height), ("--width", settings.width)):
        if value is not None and (value <= 0 or value % 8):
            raise InputError(f"{flag} must be a positive multiple of 8 (the VAE factor), got {value}")
    if settings.name is not None:
        try:
            check_t2i_name(settings.name)
        except ValueError as exc:
            raise InputError(f"--name: {exc}") from None
    layer_names = parse_layers(settings.layers)

    ranks = detect_ranks(model.device)
    try:
        job = _prepare(model, prompt_list, settings, layer_names, ranks)
    except InputError:
        if not ranks.is_main:
            raise SystemExit(2) from None  # rank 0 reports the same error once
        raise
    if not ranks.is_main:
        plan = ranks.broadcast(None)
        if isinstance(plan, Failure):
            raise SystemExit(2)
        for _ in compute_steps(job, plan[0], plan[1], ranks):
            pass
        return job.name
    note = prompt_list.note()
    if note:
        print(note, file=sys.stderr)
    if any(p.negative_prompt for p in job.prompts) and not job.guided:
        print("note: negative prompts only act with --guidance above 1; they still name their prompts' ids",
              file=sys.stderr)
    write_lake(lake, model, settings, job, ranks)
    return job.name


def _prepare(model: T2IModelSpec, prompts: PromptList, settings: T2ISettings, layer_names: list[str] | None,
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


def identity_attrs(job: T2IJob) -> dict[str, Any]:
    """What t2i/<name>'s tables record about the model (checked on every append: `IDENTITY_KEYS`)."""
    return {**{k: str(v) for k, v in job.model.identity.items()}, "model_key": job.model.model_key,
            "name": job.name, "timesteps": [int(t) for t in job.timesteps], "sigmas": list(job.sigmas),
            "height": int(job.height), "width": int(job.width), "guidance": float(job.guidance),
            "compute_block": job.block}


def write_lake(lake: str | os.PathLike[str], spec: T2IModelSpec, settings: T2ISettings, job: T2IJob, ranks: Any) -> None:
    """Rank 0: open and check every table, plan what is missing, tell the other ranks, then append and commit."""
    from lake import InputFile, LakeWriter, Provenance
    from lake.layout import SAMPLES, T2I_SPLIT, t2i_prompts_spec, t2i_samples_group, t2i_samples_spec

    from .overlap import write_behind
    from .pipeline import SampleBatch, progress_bar

    inputs = []
    for path, digest in ((spec.checkpoint, job.model.identity.get("unet_sha256", "")),
                         (spec.lora, job.model.identity.get("lora_sha256", ""))):
        if path:
            inputs.append(InputFile(path=str(Path(path).resolve()), size=Path(path).stat().st_size, sha256=digest))
    attrs = identity_attrs(job)
    provenance = Provenance(
        job="ingest generate-t2i", inputs=inputs,
        parameters={**attrs, "base_path": str(Path(spec.base).resolve()), "prompts": len(job.prompts),
                    "samples_per_prompt": settings.samples_per_prompt, "seed": job.seed, "layers": job.sites,
                    "residual": job.residual, "spatial": job.spatial, "step_previews": job.step_previews,
                    "dtype": spec.dtype, "device": str(job.model.device), "processes": ranks.count},
    )
    planned = plan_samples(len(job.prompts), settings.samples_per_prompt)
    ids = [job.sample_id(s) for s in planned]
    plan_sent = False
    try:
        with LakeWriter.open(lake, provenance) as writer:
            group = t2i_samples_group(job.name)
            _check_samples_table(writer.attrs(group), group, attrs, job.step_previews)
            t2i = writer.table(t2i_samples_spec(job.name, job.height, job.width, job.timesteps,
                                                {**attrs, "step_previews": job.step_previews}, job.step_previews))
            prompts_table = writer.table(t2i_prompts_spec(job.name, job.pooled_dim, attrs))
            layers = _open_activation_tables(writer, job, attrs)
            samples = writer.table(SAMPLES)
            existing = set(samples.keys())
            present = {"t2i": set(t2i.keys()), **{layer: set(table.keys()) for layer, table in layers.items()}}
            stored_prompts = set(prompts_table.keys())
            needed = [s for s, sample_id in zip(planned, ids)
                      if sample_id not in existing or any(sample_id not in have for have in present.values())]
            blocks = compute_blocks(needed, job.block)
            wanted = set(needed)
            ranks.broadcast((blocks, wanted))
            plan_sent = True

            with progress_bar(len(needed), "ingest generate-t2i", disable=not settings.progress) as bar:

                def write(batch: T2IBatch) -> None:
                    sample_ids = [job.sample_id(s) for s in batch.samples]
                    specs = [job.prompts[s.prompt] for s in batch.samples]

                    def missing(have: set[str]) -> list[int]:
                        return [k for k, sample_id in enumerate(sample_ids) if sample_id not in have]

                    for layer, (site, kind) in _layer_sources(job).items():
                        rows = missing(present[layer])
                        if rows:
                            values = (batch.updates if kind == "update" else batch.means)[site][rows]
                            activation: dict[str, Any] = {
                                "mean": values, "probed": np.ones(values.shape[:2], dtype=bool),
                                "sample_id": [sample_ids[k] for k in rows], "source": ["generated"] * len(rows),
                                "class_id": np.array([specs[k].class_id for k in rows], dtype=np.int16)}
                            if job.spatial and kind == "mean":
                                activation["spatial"] = batch.spatial[site][rows].astype(np.float16)
                            layers[layer].append(activation)
                            present[layer].update(sample_ids[k] for k in rows)
                    rows = missing(present["t2i"])
                    if rows:
                        columns: dict[str, Any] = {
                            "image": batch.images[rows], "sample_id": [sample_ids[k] for k in rows],
                            "prompt_id": [specs[k].prompt_id for k in rows], "prompt": [specs[k].prompt for k in rows],
                            "negative_prompt": [specs[k].negative_prompt for k in rows],
                            "guidance": np.full(len(rows), job.guidance, dtype=np.float32),
                            "seed": np.full(len(rows), job.seed, dtype=np.int64),
                            "index": np.array([batch.samples[k].index for k in rows], dtype=np.int64),
                            "class_id": np.array([specs[k].class_id for k in rows], dtype=np.int16)}
                        if job.step_previews:
                            assert batch.previews is not None
                            columns["x0"] = batch.previews[rows]
                        t2i.append(columns)
                        present["t2i"].update(sample_ids[k] for k in rows)
                    new_prompts: dict[str, int] = {}  # prompt_id -> first row of this batch with it
                    for k, p in enumerate(specs):
                        if p.prompt_id not in stored_prompts and p.prompt_id not in new_prompts:
                            new_prompts[p.prompt_id] = k
                    if new_prompts:
                        first = list(new_prompts.values())
                        prompts_table.append({
                            "pooled": batch.pooled[first], "prompt_id": list(new_prompts),
                            "prompt": [specs[k].prompt for k in first],
                            "negative_prompt": [specs[k].negative_prompt for k in first],
                            "class_id": np.array([specs[k].class_id for k in first], dtype=np.int16)})
                        stored_prompts.update(new_prompts)
                    rows = missing(existing)
                    if rows:
                        samples.append(samples_rows(SampleBatch(
                            images=batch.thumbnails[rows], sample_ids=[sample_ids[k] for k in rows],
                            class_ids=np.array([specs[k].class_id for k in rows], dtype=np.int16),
                            origins=[f"t2i {job.name}: {specs[k].prompt}" for k in rows], source="generated",
                            split=T2I_SPLIT, seed=job.seed, model_id=job.name)))
                        existing.update(sample_ids[k] for k in rows)
                    writer.commit()  # one commit for every table's rows of this step
                    bar.update(len(sample_ids))

                # This thread computes (and joins the other ranks' gathers); batch k is written while k+1 is made.
                write_behind(compute_steps(job, blocks, wanted, ranks), write)
    except BaseException:
        if not plan_sent:
            ranks.broadcast(Failure())
        raise


def _layer_sources(job: T2IJob) -> dict[str, tuple[str, str]]:
    """Activation layer name -> (site, 'mean' or 'update') for every table this run writes."""
    from lake.layout import t2i_layer

    out = {}
    for site in job.sites:
        out[t2i_layer(job.name, site)] = (site, "mean")
        if job.residual:
            out[t2i_layer(job.name, site, residual=True)] = (site, "update")
    return out


def _check_samples_table(found: dict[str, Any] | None, path: str, attrs: dict[str, Any], step_previews: bool) -> None:
    """Refuse to add samples of another model, size, schedule or guidance (or preview setting) to t2i/<name>."""
    from .activation_store import check_identity

    if found is None:
        return
    name = attrs["name"]
    check_identity(path, found, {key: attrs[key] for key in IDENTITY_KEYS},
                   f"one name holds one model, size, schedule and guidance: pass another --name than {name}")
    if "step_previews" in found and bool(found["step_previews"]) != step_previews:
        how = ("with step previews; run without --no-step-previews" if found["step_previews"] else
               "without step previews; run with --no-step-previews")
        raise InputError(f"{path} was made {how}, or pass another --name than {name}")


def _open_activation_tables(writer: Any, job: T2IJob, attrs: dict[str, Any]) -> dict[str, Any]:
    """Open (creating if needed) activations/<name>.<module>[+update] of every site; refuses other settings."""
    from lake.layout import LayerShape, activations_group, t2i_activations_spec

    from .activation_store import check_identity

    tables = {}
    for layer, (site, kind) in _layer_sources(job).items():
        keep_spatial = bool(job.spatial) and kind == "mean"
        size = job.spatial if keep_spatial else 1
        layer_attrs = {**attrs, "spatial_size": size if keep_spatial else 0}
        path = activations_group(layer)
        found = writer.attrs(path)
        if found is not None:
            check_identity(path, found, {key: attrs[key] for key in IDENTITY_KEYS},
                           f"pass another --name than {job.name}")
            check_identity(path, found, {"spatial_size": layer_attrs["spatial_size"]},
                           "run with the --spatial it was made with, or pass another --name")
        tables[layer] = writer.table(t2i_activations_spec(
            job.name, site, LayerShape(job.channels[site], size, size), job.timesteps, job.sigmas, keep_spatial,
            layer_attrs, residual=kind == "update"))
    return tables


def samples_rows(batch: Any) -> dict[str, Any]:
    """The samples table's columns of an `ingest.pipeline.SampleBatch` of text-to-image samples: a sample whose
    prompt names no ImageNet class (class_id -1) gets an empty wnid and class name."""
    columns = batch.columns()
    none = np.asarray(batch.class_ids) < 0
    columns["wnid"] = ["" if n else w for n, w in zip(none, columns["wnid"])]
    columns["class_name"] = ["" if n else c for n, c in zip(none, columns["class_name"])]
    return dict(columns)
