"""The compute side of `ingest generate-t2i`, identical on every rank: the job's loaded state (`T2IJob`), one
compute block through the network, a rank's blocks packed into fixed-size arrays and gathered, and the
shapes a run's sites give (measured once before any work)."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.images import centre_square_thumbnail
from ..errors import InputError
from ..ranks import split_steps
from .plan import ComputeBlock, PlannedSample
from .prompts import PromptSpec


def thumbnail(image: np.ndarray) -> np.ndarray:
    """The samples table's 64x64 thumbnail of a native image: centre square, box (area) resize."""
    from lake.layout import T2I_THUMBNAIL_SIZE

    return centre_square_thumbnail(image, T2I_THUMBNAIL_SIZE)


def preview(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An x0 step preview: the whole image box-resized to `size` (height, width), uint8 HWC."""
    from PIL import Image

    height, width = size
    if image.shape[:2] == (height, width):
        return np.ascontiguousarray(image, dtype=np.uint8)
    return np.asarray(Image.fromarray(image, "RGB").resize((width, height), Image.Resampling.BOX), dtype=np.uint8)


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
