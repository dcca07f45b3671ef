"""Probing lake samples through the generator as a denoiser, and storing what each table lacks.

`probe_activations` is what `ingest activations` runs and what an edit job runs on the samples
it made. For each sample and noise level sigma the network sees ``x = x0 + sigma * eps``
(``eps`` from (noise_seed, sample_id), the same at every sigma) conditioned on the sample's
own class; the requested blocks' outputs become per-channel means (optionally whole maps) in
`activations/<layer>`, and with reconstructions the pass runs to the end and its input and
output images go to `reconstructions`, in the same commit.

Resumable and crash-safe: each batch is one commit, and a rerun computes only the
(sample, sigma) pairs not yet `probed` in some requested table; sigmas new to a group extend
its sigma axis. The network runs on fixed blocks of samples-table rows
(`ingest.core.models.compute_block`), so a value does not depend on --batch-size or on how
the work was split across runs.
"""
from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InputError
from .options import parse_sigmas, positive

if TYPE_CHECKING:
    from lake import Lake, LakeWriter

    from .core.models import ModelIdentity, ModelSpec
    from .core.registry import ModelPlace

SOURCES = {"real": ("real",), "generated": ("generated",), "all": ("real", "generated")}
DEFAULT_SIGMAS = (0.5, 2.0, 10.0, 80.0)


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
    full: np.ndarray | None = None  # (b, R) bool: passes that must run to the end (reconstructions wanted)


def plan_steps(need: np.ndarray, block: int, batch_size: int, full: np.ndarray | None = None) -> list[ProbeStep]:
    """Group the blocks that have work into steps of about `batch_size` samples.

    `need` (N, R) marks the (row, requested sigma) pairs some table lacks; `full`, a
    subset of it, those whose reconstruction is missing: a block runs its pass at a sigma
    to the end when any of its rows needs that, and stops after the deepest layer otherwise.
    """
    n, r = need.shape
    blocks = math.ceil(n / block)

    def per_block(cells: np.ndarray) -> np.ndarray:
        padded = np.zeros((blocks * block, r), dtype=bool)
        padded[:n] = cells
        return np.any(padded.reshape(blocks, block, r), axis=1)

    wanted = per_block(need)
    whole = per_block(full) if full is not None else None
    busy = np.flatnonzero(wanted.any(axis=1))
    per_step = max(1, math.ceil(batch_size / block))
    return [ProbeStep(busy[i : i + per_step], wanted[busy[i : i + per_step]],
                      None if whole is None else whole[busy[i : i + per_step]])
            for i in range(0, len(busy), per_step)]


@dataclass
class ProbedBatch:
    """Results of one step, on the CPU. Cells not computed are NaN / False."""

    rows: np.ndarray  # (n,) samples-table rows
    computed: np.ndarray  # (n, R) bool
    means: dict[str, np.ndarray]  # layer -> (n, R, C) float32
    spatial: dict[str, np.ndarray]  # layer -> (n, R, C, H, W) float16
    reconstructed: np.ndarray  # (n, R) bool: cells whose pass ran to the end (noisy and x0_hat are set)
    images: dict[str, np.ndarray]  # "noisy", "x0_hat" -> (n, R, 64, 64, 3) uint8 (empty when none ran to the end)


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
    import torch

    # Looked up at call time (not at import), so a test can count the passes of each kind.
    from .core.forward import block_inputs, conditioning_classes, denoise_block, probe_block

    total = len(sample_ids)
    r = len(job.sigmas)
    for step in steps:
        spans = [np.arange(b * job.block, min((b + 1) * job.block, total)) for b in step.blocks]
        rows = np.concatenate(spans)
        contiguous = rows[-1] - rows[0] + 1 == len(rows)
        images = lake.images(slice(int(rows[0]), int(rows[-1]) + 1) if contiguous else rows)
        x0, eps = block_inputs(images, sample_ids[rows].tolist(), job.noise_seed, job.device)
        labels = torch.from_numpy(conditioning_classes(class_ids[rows]))
        results: list[tuple[int, int, Any]] = []  # (offset in step, sigma position, BlockOutput or DenoisedBlock)
        offset = 0
        full = step.full if step.full is not None else np.zeros_like(step.block_sigmas)
        for span, wanted, whole in zip(spans, step.block_sigmas, full):
            part = slice(offset, offset + len(span))
            for k in np.flatnonzero(wanted):
                # Both passes compute the captured layers identically; only the full one yields the images.
                pass_ = denoise_block if whole[k] else probe_block
                out = pass_(job.module, x0[part], eps[part], job.sigmas[k], labels[part], job.layers, job.keep_spatial)
                results.append((offset, int(k), out))
            offset += len(span)
        yield _collect(job, rows, results, r)


def _collect(job: ProbeJob, rows: np.ndarray, results: list[tuple[int, int, Any]], r: int) -> ProbedBatch:
    """Move a step's results to the CPU (one synchronisation per step) into (n, R, ...) arrays."""
    from .core.forward import DenoisedBlock

    n = len(rows)
    computed = np.zeros((n, r), dtype=bool)
    reconstructed = np.zeros((n, r), dtype=bool)
    means = {layer: np.full((n, r, job.shapes[layer][0]), np.nan, dtype=np.float32) for layer in job.layers}
    spatial = ({layer: np.full((n, r, *job.shapes[layer]), np.nan, dtype=np.float16) for layer in job.layers}
               if job.keep_spatial else {})
    full = any(isinstance(out, DenoisedBlock) for _, _, out in results)
    images = {name: np.zeros((n, r, 64, 64, 3), dtype=np.uint8) for name in ("noisy", "x0_hat")} if full else {}
    for offset, k, out in results:
        if isinstance(out, DenoisedBlock):
            cells = slice(offset, offset + out.x0_hat.shape[0])
            reconstructed[cells, k] = True
            images["noisy"][cells, k] = out.noisy.cpu().numpy()
            images["x0_hat"][cells, k] = out.x0_hat.cpu().numpy()
            out = out.output
        size = out.means[job.layers[0]].shape[0]
        computed[offset : offset + size, k] = True
        for layer in job.layers:
            means[layer][offset : offset + size, k] = out.means[layer].cpu().numpy()
            if job.keep_spatial:
                spatial[layer][offset : offset + size, k] = out.spatial[layer].cpu().numpy()
    return ProbedBatch(rows=rows, computed=computed, means=means, spatial=spatial, reconstructed=reconstructed,
                       images=images)


def write_cells(target: LayerTarget, rows: np.ndarray, done: np.ndarray, values: dict[str, np.ndarray],
                labels: dict[str, np.ndarray], sigmas: list[float]) -> int:
    """Store in `target`'s table the cells it lacks among those computed: new rows appended, missing sigmas filled in.

    `rows` (n,) are samples-table rows, `done` (n, R) the computed cells, `values` per
    column (n, R, ...) along the requested sigmas, `labels` per label column indexed by
    samples-table row. Cells of a new row that are not computed stay unprobed (NaN or 0).
    Returns the number of rows appended.
    """
    need = target.need[rows] & done
    if not need.any():
        return 0
    table = target.table
    axis = np.array([table.sigma_index(s) for s in sigmas], dtype=np.int64)
    width = len(table.sigmas)
    table_rows = target.act_row[rows]

    fresh = np.flatnonzero((table_rows < 0) & need.any(axis=1))
    if len(fresh):
        k = len(fresh)
        cells = need[fresh]
        columns = {name: np.full((k, width, *value.shape[2:]), np.nan if value.dtype.kind == "f" else 0, dtype=value.dtype)
                   for name, value in values.items()}
        columns["probed"] = np.zeros((k, width), dtype=bool)
        for j, a in enumerate(axis):
            for name, value in values.items():
                columns[name][cells[:, j], a] = value[fresh[cells[:, j]], j]
            columns["probed"][cells[:, j], a] = True
        columns.update({name: column[rows[fresh]] for name, column in labels.items()})
        added = table.table.append(columns)
        target.act_row[rows[fresh]] = np.arange(added.start, added.stop)

    existing = table_rows >= 0  # taken before the append: rows appended just now are complete
    for j, a in enumerate(axis):
        pick = np.flatnonzero(existing & need[:, j])
        if not len(pick):
            continue
        order = np.argsort(table_rows[pick], kind="stable")
        pick = pick[order]
        where = (table_rows[pick], [int(a)])
        for name, value in values.items():
            table.table.column(name).set_orthogonal_selection(where + (slice(None),) * (value.ndim - 2),
                                                              value[pick, j][:, None])
        table.table.column("probed").set_orthogonal_selection(where, np.ones((len(pick), 1), dtype=bool))
    target.need[rows] &= ~need
    return len(fresh)


def write_step(targets: dict[str, LayerTarget], rebuilt: LayerTarget | None, batch: ProbedBatch, sigmas: list[float],
               labels: dict[str, np.ndarray], keep_spatial: bool) -> None:
    """Store what each layer's table (and `reconstructions`, when `rebuilt`) lacks from one step (`write_cells`).

    `labels` holds the label columns of `activations/<layer>` by samples-table row;
    `reconstructions` takes the subset its spec has.
    """
    for layer, target in targets.items():
        values = {"mean": batch.means[layer], **({"spatial": batch.spatial[layer]} if keep_spatial else {})}
        write_cells(target, batch.rows, batch.computed, values, labels, sigmas)
    if rebuilt is not None and batch.images:
        columns = {name: labels[name] for name in ("sample_id", "class_id")}
        write_cells(rebuilt, batch.rows, batch.reconstructed, batch.images, columns, sigmas)


def probe_activations(lake_path: str | os.PathLike[str], model: ModelSpec, layers: str | Sequence[str],
                      sigmas: str | Sequence[float] = DEFAULT_SIGMAS, *, source: str = "all", noise_seed: int = 0,
                      keep_spatial: bool = False, reconstructions: bool = False, batch_size: int = 64,
                      progress: bool = True, sample_ids: Sequence[str] | None = None) -> None:
    """Probe the samples of an existing lake through `model` as a denoiser; store `layers` at every sigma.

    With `reconstructions`, also store each probe's noisy input and one-step output in
    `reconstructions` (ingest.core.reconstruct). Only (sample, sigma) pairs missing from some
    requested table are computed, and each table gets only what it lacks; `source` is
    real, generated or all. `sample_ids`, when given, narrows the selection to those samples
    (an edit job probes only the samples it made; an id not in the lake is an InputError).
    One process only. Bad input raises InputError (one line).
    """
    from lake import LakeWriter, Provenance, open_lake

    from .core.recorded import checkpoint_inputs

    only = None if sample_ids is None else [str(s) for s in sample_ids]
    sigmas = _check_inputs(batch_size, source, sigmas, noise_seed)
    lake = open_lake(lake_path)  # a missing lake is an error here, never created
    job, identity = _load_job(model, layers, sigmas, noise_seed, keep_spatial)
    place = _place(lake, identity, model, reconstructions)
    provenance = Provenance(
        job="ingest activations",
        inputs=checkpoint_inputs(model, identity),  # where the checkpoint was: reconstruct_sample finds it there
        parameters={"layers": job.layers, "sigmas": sigmas, "source": source, "noise_seed": noise_seed,
                    "keep_spatial": keep_spatial, "reconstructions": reconstructions, **identity.attrs(),
                    "dtype": identity.dtype,
                    "device": str(job.device), "compute_block": job.block, "model": place.record.name},
    )
    with LakeWriter.open(lake_path, provenance, create=False) as writer:
        selection = _select(lake, source, only)
        attrs = {**identity.attrs(), "noise_seed": noise_seed, "compute_block": job.block}
        place.register(writer)
        targets, rebuilt = _open_targets(writer, job, selection, attrs, identity.dtype if reconstructions else None, place)
        writer.commit()  # new groups and sigma axes are visible from the start
        _probe(writer, lake, job, selection, targets, rebuilt, batch_size, identity, progress)


def _check_inputs(batch_size: int, source: str, sigmas: str | Sequence[float], noise_seed: int) -> list[float]:
    """The flags that need no lake and no network, checked; the sigmas parsed."""
    positive(batch_size, "--batch-size")
    if source not in SOURCES:
        raise InputError(f"--source {source}: one of {', '.join(sorted(SOURCES))}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Every process would probe everything and all but one would find the lake locked.
        raise InputError("ingest activations runs as one process; start it with python -m, not accelerate launch/torchrun")
    values = parse_sigmas(sigmas)
    if noise_seed < 0:
        raise InputError(f"--noise-seed must be >= 0, got {noise_seed}")
    return values


def _place(lake: Lake, identity: ModelIdentity, model: ModelSpec, reconstructions: bool) -> ModelPlace:
    """The registered model the probes belong to (ingest.core.registry); reconstructions are the first model's."""
    from .core.registry import place_model

    place = place_model(lake, identity, model.name, model.checkpoint)
    if reconstructions and not place.first:
        raise InputError(f"--reconstructions: {lake.path}'s reconstructions table holds the first model's "
                         f"({lake.models()[0].name if lake.models() else 'first'}) one-step outputs; probe "
                         f"--model {place.record.name} without --reconstructions")
    return place


def _load_job(model: ModelSpec, layers: str | Sequence[str], sigmas: list[float], noise_seed: int,
              keep_spatial: bool) -> tuple[ProbeJob, ModelIdentity]:
    """Load the network and resolve the layers it is to record."""
    from .core.models import compute_block, layer_shapes, load_model, resolve_layer_flag

    loaded, identity = load_model(model)
    names = resolve_layer_flag(layers if isinstance(layers, str) else ",".join(layers), loaded.module)
    if not names:
        raise InputError("--layers: give at least one block, e.g. bottleneck,mid")
    job = ProbeJob(module=loaded.module, device=loaded.device, layers=names, sigmas=sigmas, noise_seed=noise_seed,
                   keep_spatial=keep_spatial, block=compute_block(loaded.device), shapes=layer_shapes(loaded.module, names))
    return job, identity


@dataclass
class ProbeRows:
    """The samples table's columns a probe run needs, and which rows it probes."""

    sample_ids: np.ndarray
    sources: np.ndarray
    class_ids: np.ndarray  # int64
    selected: np.ndarray  # bool per row


def _select(lake: Lake, source: str, only: list[str] | None) -> ProbeRows:
    """The rows of `source` (and of `only`, when given) that the ImageNet denoiser probes."""
    from lake.layout import SAMPLES_GROUP, T2I_SPLIT

    if lake.num_samples == 0:
        raise InputError(f"{lake.path}: the lake has no samples yet; add some with `ingest npz|jpeg|generate` first")
    lake_ids = lake.column(SAMPLES_GROUP, "sample_id")
    sources = lake.column(SAMPLES_GROUP, "source")
    class_ids = lake.column(SAMPLES_GROUP, "class_id").astype(np.int64)
    # Text-to-image samples belong to another model family: the ImageNet denoiser is
    # conditioned on a class, and their real-vs-generated role differs, so `--source`
    # never selects them (their own activations come with them from generate-t2i).
    text_to_image = lake.column(SAMPLES_GROUP, "split") == T2I_SPLIT
    selected = np.isin(sources, SOURCES[source]) & ~text_to_image
    if only is not None:
        known = set(lake_ids.tolist())
        unknown = [s for s in only if s not in known]
        if unknown:
            raise InputError(f"{lake.path}: no sample {unknown[0]!r} in samples")
        chosen = np.isin(lake_ids, np.asarray(sorted(set(only)), dtype=lake_ids.dtype))
        selected &= chosen
        if (chosen & text_to_image).any():
            raise InputError(f"{lake.path}: {lake_ids[chosen & text_to_image][0]} is a text-to-image sample; the ImageNet "
                             "denoiser probes real and ImageNet-generated samples only")
    if not selected.any():
        raise InputError(f"--source {source}: the lake holds no such samples")
    return ProbeRows(lake_ids, sources, class_ids, selected)


def _open_targets(writer: LakeWriter, job: ProbeJob, selection: ProbeRows, attrs: dict[str, Any],
                  reconstruction_dtype: str | None, place: ModelPlace) -> tuple[dict[str, LayerTarget], LayerTarget | None]:
    """Open every requested table (`place`'s: activations/[<model>.]<layer>, and `reconstructions` when its
    dtype is given) and plan what each lacks."""
    from .activation_store import LayerShape, open_activation_table
    from .core.reconstruct import open_reconstruction_table

    targets = {}
    for layer in job.layers:
        table = open_activation_table(writer, place.layer(layer), LayerShape(*job.shapes[layer]), job.sigmas,
                                      job.keep_spatial, attrs)
        targets[layer] = plan_layer(table, selection.sample_ids, selection.selected, job.sigmas)
    rebuilt = None
    if reconstruction_dtype is not None:
        table = open_reconstruction_table(writer, job.sigmas, {**attrs, "dtype": reconstruction_dtype})
        rebuilt = plan_layer(table, selection.sample_ids, selection.selected, job.sigmas)
    return targets, rebuilt


def _probe(writer: LakeWriter, lake: Lake, job: ProbeJob, selection: ProbeRows, targets: dict[str, LayerTarget],
           rebuilt: LayerTarget | None, batch_size: int, identity: ModelIdentity, progress: bool) -> None:
    """Compute the missing pairs and write each batch to every table that lacks it, one commit per batch."""
    from .core.models import random_weights_note
    from .overlap import write_behind
    from .pipeline import progress_bar

    # A pair is computed when any requested table lacks it; each table then takes only its missing cells.
    need = np.logical_or.reduce([t.need for t in targets.values()] + ([rebuilt.need] if rebuilt is not None else []))
    steps = plan_steps(need, job.block, batch_size, full=rebuilt.need if rebuilt is not None else None)
    note = random_weights_note(identity)  # once the job is sure to run: errors stay one line
    if note:
        print(note, file=sys.stderr)
    with progress_bar(int(need.sum()), "ingest activations", disable=not progress) as bar:
        bar.unit = "probe"
        labels = {"sample_id": selection.sample_ids, "source": selection.sources,
                  "class_id": selection.class_ids.astype(np.int16)}

        def write(batch: ProbedBatch) -> None:
            done = need[batch.rows] & batch.computed
            write_step(targets, rebuilt, batch, job.sigmas, labels, job.keep_spatial)
            writer.commit()  # activations and reconstructions of the batch in one commit
            bar.update(int(done.sum()))

        # This thread reads images and computes; batch k is written while k+1 is probed.
        write_behind(compute_steps(job, lake, steps, selection.sample_ids, selection.class_ids), write)
