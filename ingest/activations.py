"""`python -m ingest activations`: probe lake samples through the generator as a denoiser.

For each sample (real or generated) and noise level sigma the network sees
``x = x0 + sigma * eps`` with ``x0 = image / 127.5 - 1`` and ``eps ~ N(0, I)`` drawn from an
RNG keyed by (noise_seed, sample_id) -- the same eps at every sigma -- conditioned on the
sample's own class, exactly as DMD2 denoises at that noise level. The outputs of the
requested blocks are reduced to per-channel spatial means (optionally kept whole) in
`activations/<layer>`, whose `sigma` axis is a labelled dimension.

Resumable and crash-safe: each batch is one commit, and a rerun computes only the
(sample, sigma) pairs not yet `probed`; sigmas new to a group extend its sigma axis.
The network runs on fixed blocks of samples-table rows (see ingest.probe), so a value
does not depend on --batch-size or on how the work was split across runs.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InputError
from .options import add_lake_flag, add_run_flags, positive

if TYPE_CHECKING:
    from .probe import ModelSpec

SOURCES = {"real": ("real",), "generated": ("generated",), "all": ("real", "generated")}
DEFAULT_SIGMAS = (0.5, 2.0, 10.0, 80.0)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from lake.cli import command

    from .probe import add_model_flags

    parser = command(
        subparsers,
        "activations",
        run,
        help="probe lake samples through the generator as a denoiser at several noise levels",
        description="For every selected sample and sigma, run D(x0 + sigma*eps, sigma, onehot(class)) with "
        "x0 = image/127.5 - 1 and eps drawn from (--noise-seed, sample_id), and store the per-channel spatial mean of "
        "each --layers block in activations/<layer> (dimensions sample, sigma, channel). Resumable: only missing "
        "(sample, sigma) pairs are computed; new sigmas extend an existing group.",
    )
    add_lake_flag(parser)
    parser.add_argument("--layers", required=True, metavar="LIST",
                        help="comma-separated blocks to record, e.g. bottleneck,mid or enc.8x8_block2 "
                        "(an unknown name lists the valid ones)")
    parser.add_argument("--sigmas", default="0.5,2,10,80", metavar="LIST",
                        help="comma-separated noise levels (EDM sigma, pixel range [-1, 1]); default 0.5,2,10,80")
    parser.add_argument("--source", default="all", choices=sorted(SOURCES),
                        help="which samples to probe: real, generated or all (default)")
    parser.add_argument("--noise-seed", type=int, default=0, metavar="S",
                        help="seed of the probe noise eps, drawn per sample from (S, sample_id); default 0. "
                        "A group holds one noise seed")
    parser.add_argument("--keep-spatial", action="store_true",
                        help="also store the full maps (sample, sigma, channel, y, x) as float16: large "
                        "(a 64x64 block is hundreds of KB per sample and sigma)")
    add_model_flags(parser)
    add_run_flags(parser, default_batch=64)


def parse_sigmas(text: str | Sequence[float]) -> list[float]:
    """--sigmas (comma-separated, or numbers) as float32-exact values in the order given (duplicates dropped)."""
    values: list[float] = []
    for token in (text.split(",") if isinstance(text, str) else [str(t) for t in text]):
        if not token.strip():
            continue
        try:
            value = float(token)
        except ValueError:
            raise InputError(f"--sigmas: {token.strip()!r} is not a number") from None
        if not math.isfinite(value) or value <= 0:
            raise InputError(f"--sigmas: noise levels must be positive and finite, got {token.strip()}")
        value = float(np.float32(value))
        if value not in values:
            values.append(value)
    if not values:
        raise InputError("--sigmas: give at least one noise level, e.g. 0.5,2,10,80")
    return values


@dataclass
class LayerTarget:
    """What one layer still lacks, per samples-table row and requested sigma."""

    table: Any  # ActivationTable
    act_row: np.ndarray  # (N,) int64: row in the activations table, -1 when the sample has none yet
    need: np.ndarray  # (N, R) bool over the requested sigmas


def plan_layer(table: Any, sample_ids: np.ndarray, selected: np.ndarray, sigmas: list[float]) -> LayerTarget:
    """Which (row, requested sigma) pairs of the selected samples this layer is missing."""
    position = {sample_id: row for row, sample_id in enumerate(table.keys.tolist())}
    act_row = np.array([position.get(s, -1) for s in sample_ids.tolist()], dtype=np.int64)
    need = np.repeat(selected[:, None], len(sigmas), axis=1)
    have = act_row >= 0
    if have.any():
        probed = table.probed()
        axis = [table.sigma_index(s) for s in sigmas]
        need[have] &= ~probed[act_row[have]][:, axis]
    return LayerTarget(table, act_row, need)


@dataclass(frozen=True)
class ProbeStep:
    """A batch of compute blocks: the samples-table rows they span and which sigmas each block needs."""

    blocks: np.ndarray  # (b,) block numbers
    block_sigmas: np.ndarray  # (b, R) bool


def plan_steps(need: np.ndarray, block: int, batch_size: int) -> list[ProbeStep]:
    """Group the blocks that have work into steps of about `batch_size` samples."""
    n, r = need.shape
    blocks = math.ceil(n / block)
    padded = np.zeros((blocks * block, r), dtype=bool)
    padded[:n] = need
    per_block = np.any(padded.reshape(blocks, block, r), axis=1)
    busy = np.flatnonzero(per_block.any(axis=1))
    per_step = max(1, math.ceil(batch_size / block))
    return [ProbeStep(busy[i : i + per_step], per_block[busy[i : i + per_step]]) for i in range(0, len(busy), per_step)]


@dataclass
class ProbedBatch:
    """Results of one step, on the CPU. Cells not computed are NaN / False."""

    rows: np.ndarray  # (n,) samples-table rows
    computed: np.ndarray  # (n, R) bool
    means: dict[str, np.ndarray]  # layer -> (n, R, C) float32
    spatial: dict[str, np.ndarray]  # layer -> (n, R, C, H, W) float16


@dataclass
class ProbeJob:
    module: Any
    device: Any
    layers: list[str]
    sigmas: list[float]
    noise_seed: int
    keep_spatial: bool
    block: int
    shapes: dict[str, tuple[int, int, int]]


def compute_steps(job: ProbeJob, lake: Any, steps: list[ProbeStep], sample_ids: np.ndarray,
                  class_ids: np.ndarray) -> Iterator[ProbedBatch]:
    """Probe each step's blocks at the sigmas they need; images are read a step at a time."""
    import models
    import torch

    from .probe import probe_block

    total = len(sample_ids)
    r = len(job.sigmas)
    for step in steps:
        spans = [np.arange(b * job.block, min((b + 1) * job.block, total)) for b in step.blocks]
        rows = np.concatenate(spans)
        contiguous = rows[-1] - rows[0] + 1 == len(rows)
        images = lake.images(slice(int(rows[0]), int(rows[-1]) + 1) if contiguous else rows)
        x0 = torch.from_numpy(images).permute(0, 3, 1, 2).to(job.device, torch.float32) / 127.5 - 1
        eps = torch.stack([models.probe_noise(job.noise_seed, s, x0.shape[1:]) for s in sample_ids[rows].tolist()])
        eps = eps.to(job.device)
        labels = torch.from_numpy(class_ids[rows].astype(np.int64))
        results: list[tuple[int, int, Any]] = []  # (offset in step, sigma position, output)
        offset = 0
        for span, wanted in zip(spans, step.block_sigmas):
            part = slice(offset, offset + len(span))
            for k in np.flatnonzero(wanted):
                out = probe_block(job.module, x0[part], eps[part], job.sigmas[k], labels[part], job.layers,
                                  job.keep_spatial)
                results.append((offset, int(k), out))
            offset += len(span)
        yield _collect(job, rows, spans, results, r)


def _collect(job: ProbeJob, rows: np.ndarray, spans: list[np.ndarray], results: list[tuple[int, int, Any]],
             r: int) -> ProbedBatch:
    """Move a step's results to the CPU (one synchronisation per step) into (n, R, ...) arrays."""
    n = len(rows)
    computed = np.zeros((n, r), dtype=bool)
    means = {layer: np.full((n, r, job.shapes[layer][0]), np.nan, dtype=np.float32) for layer in job.layers}
    spatial = ({layer: np.full((n, r, *job.shapes[layer]), np.nan, dtype=np.float16) for layer in job.layers}
               if job.keep_spatial else {})
    for offset, k, out in results:
        size = out.means[job.layers[0]].shape[0]
        computed[offset : offset + size, k] = True
        for layer in job.layers:
            means[layer][offset : offset + size, k] = out.means[layer].cpu().numpy()
            if job.keep_spatial:
                spatial[layer][offset : offset + size, k] = out.spatial[layer].cpu().numpy()
    return ProbedBatch(rows=rows, computed=computed, means=means, spatial=spatial)


def write_batch(target: LayerTarget, layer: str, batch: ProbedBatch, sigmas: list[float], sample_ids: np.ndarray,
                sources: np.ndarray, class_ids: np.ndarray, keep_spatial: bool) -> int:
    """Store what `layer` lacks from `batch`: new rows appended, missing sigmas of existing rows filled in.

    Returns the number of rows appended.
    """
    need = target.need[batch.rows] & batch.computed
    if not need.any():
        return 0
    table = target.table
    axis = np.array([table.sigma_index(s) for s in sigmas], dtype=np.int64)
    width = len(table.sigmas)
    act_rows = target.act_row[batch.rows]

    fresh = np.flatnonzero((act_rows < 0) & need.any(axis=1))
    if len(fresh):
        k = len(fresh)
        mean = np.full((k, width, batch.means[layer].shape[2]), np.nan, dtype=np.float32)
        probed = np.zeros((k, width), dtype=bool)
        cells = need[fresh]
        for j, a in enumerate(axis):
            mean[cells[:, j], a] = batch.means[layer][fresh[cells[:, j]], j]
            probed[cells[:, j], a] = True
        columns = {"mean": mean, "probed": probed, "sample_id": sample_ids[batch.rows[fresh]],
                   "source": sources[batch.rows[fresh]], "class_id": class_ids[batch.rows[fresh]].astype(np.int16)}
        if keep_spatial:
            spatial = np.full((k, width, *batch.spatial[layer].shape[2:]), np.nan, dtype=np.float16)
            for j, a in enumerate(axis):
                spatial[cells[:, j], a] = batch.spatial[layer][fresh[cells[:, j]], j]
            columns["spatial"] = spatial
        added = table.table.append(columns)
        target.act_row[batch.rows[fresh]] = np.arange(added.start, added.stop)

    existing = act_rows >= 0  # taken before the append: rows appended just now are complete
    for j, a in enumerate(axis):
        pick = np.flatnonzero(existing & need[:, j])
        if not len(pick):
            continue
        order = np.argsort(act_rows[pick], kind="stable")
        pick = pick[order]
        where = (act_rows[pick], [int(a)])
        table.table.column("mean").set_orthogonal_selection(where + (slice(None),), batch.means[layer][pick, j][:, None])
        if keep_spatial:
            table.table.column("spatial").set_orthogonal_selection(
                where + (slice(None),) * 3, batch.spatial[layer][pick, j][:, None])
        table.table.column("probed").set_orthogonal_selection(where, np.ones((len(pick), 1), dtype=bool))
    target.need[batch.rows] &= ~need
    return len(fresh)


def run(args: argparse.Namespace) -> None:
    """`python -m ingest activations`: the flags as `probe_activations`'s typed arguments."""
    from .probe import ModelSpec

    probe_activations(args.lake, ModelSpec.from_args(args), args.layers, args.sigmas, source=args.source,
                      noise_seed=args.noise_seed, keep_spatial=args.keep_spatial, batch_size=args.batch_size,
                      progress=not args.no_progress)


def probe_activations(lake_path: str | os.PathLike[str], model: ModelSpec, layers: str | Sequence[str],
                      sigmas: str | Sequence[float] = DEFAULT_SIGMAS, *, source: str = "all", noise_seed: int = 0,
                      keep_spatial: bool = False, batch_size: int = 64, progress: bool = True) -> None:
    """Probe the samples of an existing lake through `model` as a denoiser; store `layers` at every sigma.

    Only (sample, sigma) pairs not yet `probed` are computed; `source` is real,
    generated or all. One process only. Bad input raises InputError (one line).
    """
    from lake import LakeWriter, Provenance, open_lake
    from lake.layout import SAMPLES_GROUP

    from .activation_store import LayerShape, open_activation_table
    from .overlap import write_behind
    from .pipeline import progress_bar
    from .probe import compute_block, layer_shapes, load_model, random_weights_note, resolve_layer_flag

    positive(batch_size, "--batch-size")
    if source not in SOURCES:
        raise InputError(f"--source {source}: one of {', '.join(sorted(SOURCES))}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Every process would probe everything and all but one would find the lake locked.
        raise InputError("ingest activations runs as one process; start it with python -m, not accelerate launch/torchrun")
    sigmas = parse_sigmas(sigmas)
    if noise_seed < 0:
        raise InputError(f"--noise-seed must be >= 0, got {noise_seed}")
    lake = open_lake(lake_path)  # a missing lake is an error here, never created
    loaded, identity = load_model(model)
    layers = resolve_layer_flag(layers if isinstance(layers, str) else ",".join(layers), loaded.module)
    if not layers:
        raise InputError("--layers: give at least one block, e.g. bottleneck,mid")
    shapes = layer_shapes(loaded.module, layers)
    job = ProbeJob(module=loaded.module, device=loaded.device, layers=layers,
                   sigmas=sigmas, noise_seed=noise_seed, keep_spatial=keep_spatial,
                   block=compute_block(loaded.device), shapes=shapes)
    provenance = Provenance(
        job="ingest activations",
        parameters={"layers": layers, "sigmas": sigmas, "source": source, "noise_seed": noise_seed,
                    "keep_spatial": keep_spatial, **identity.attrs(), "dtype": identity.dtype,
                    "device": str(loaded.device), "compute_block": job.block},
    )
    with LakeWriter.open(lake_path, provenance, create=False) as writer:
        if lake.num_samples == 0:
            raise InputError(f"{lake.path}: the lake has no samples yet; add some with `ingest npz|jpeg|generate` first")
        sample_ids = lake.column(SAMPLES_GROUP, "sample_id")
        sources = lake.column(SAMPLES_GROUP, "source")
        class_ids = lake.column(SAMPLES_GROUP, "class_id").astype(np.int64)
        selected = np.isin(sources, SOURCES[source])
        if not selected.any():
            raise InputError(f"--source {source}: the lake holds no such samples")
        attrs = {**identity.attrs(), "noise_seed": noise_seed, "compute_block": job.block}
        targets = {}
        for layer in layers:
            table = open_activation_table(writer, layer, LayerShape(*shapes[layer]), sigmas, keep_spatial, attrs)
            targets[layer] = plan_layer(table, sample_ids, selected, sigmas)
        need = np.logical_or.reduce([t.need for t in targets.values()])
        writer.commit()  # new groups and sigma axes are visible from the start
        steps = plan_steps(need, job.block, batch_size)
        note = random_weights_note(identity)  # once the job is sure to run: errors stay one line
        if note:
            print(note, file=sys.stderr)
        with progress_bar(int(need.sum()), "ingest activations", disable=not progress) as bar:
            bar.unit = "probe"

            def write(batch: ProbedBatch) -> None:
                done = need[batch.rows] & batch.computed
                for layer, target in targets.items():
                    write_batch(target, layer, batch, sigmas, sample_ids, sources, class_ids, keep_spatial)
                writer.commit()
                bar.update(int(done.sum()))

            # This thread reads images and computes; batch k is written while k+1 is probed.
            write_behind(compute_steps(job, lake, steps, sample_ids, class_ids), write)
