"""`python -m ingest generate`: one-step DMD2 samples, and the activations of their generation pass.

Sample i of a run is a pure function of (seed, i, model): its noise comes from an RNG
keyed by (seed, i), its class from (seed, i) or from i alone with --samples-per-class.
The network runs on fixed blocks of indices (see ingest.probe), so the images and
activations are bit-identical whatever --batch-size, however often the job was
interrupted or extended, and however many processes made them (same device type and
threads per process). Rows are appended in index order, samples and
`generation/<layer>` in the same commit.

Multi-process: `accelerate launch -m ingest generate ...` (or torchrun). Every process
computes its share of each batch's blocks; rank 0 gathers them and alone writes the
lake, so the lake ends exactly as a single-process run leaves it.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InputError
from .options import add_lake_flag, add_run_flags, positive

if TYPE_CHECKING:
    from .probe import ModelSpec

NUM_CLASSES = 1000


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from lake.cli import command

    from .probe import add_model_flags

    parser = command(
        subparsers,
        "generate",
        run,
        help="generate samples with the one-step generator (and record its activations)",
        description="Generate samples 0..N-1 with DMD2's one-step generator, D(80 * noise, 80, class), into the lake's "
        "samples table (source=generated), with the spatial mean of each --layers block in generation/<layer>. "
        "Sample i depends only on (--seed, i, model); rerunning with a larger --num-samples adds only the new ones, "
        "and a killed run resumes where it stopped. Multi-GPU: accelerate launch -m ingest generate ...",
    )
    add_lake_flag(parser)
    parser.add_argument("--num-samples", type=int, required=True, metavar="N",
                        help="make sure samples 0..N-1 of this seed and model are in the lake (only missing ones are made)")
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="generation seed (default 0): sample i draws its noise (and class) from (S, i)")
    parser.add_argument("--samples-per-class", type=int, default=None, metavar="K",
                        help="class-balanced blocks: samples iK..iK+K-1 share one class, cycling through the classes "
                        "(all 1000 in order, or --classes). Default: each sample draws a uniform class from (S, i)")
    parser.add_argument("--classes", default=None, metavar="LIST",
                        help="generate only these classes (comma-separated ids 0..999, wnids or names), "
                        "cycled in the order given with --samples-per-class, else drawn uniformly among them")
    parser.add_argument("--layers", default=None, metavar="LIST",
                        help="comma-separated blocks whose generation-pass activations to store (e.g. bottleneck,mid or "
                        "enc.8x8_block2); default none. An unknown name lists the valid ones")
    add_model_flags(parser, multi_process=True)
    add_run_flags(parser, default_batch=256)


@dataclass(frozen=True)
class ClassPlan:
    """Which class sample `index` gets: a pure function of (seed, index) and the flags."""

    seed: int
    samples_per_class: int | None = None
    classes: tuple[int, ...] | None = None  # in the order given; None: all 1000 in standard order

    def class_of(self, index: int) -> int:
        import models

        pool = self.classes or tuple(range(NUM_CLASSES))
        if self.samples_per_class is not None:
            return pool[(index // self.samples_per_class) % len(pool)]
        return pool[models.sample_class(self.seed, index, num_classes=len(pool))]

    def classes_of(self, indices: np.ndarray) -> np.ndarray:
        return np.array([self.class_of(int(i)) for i in indices], dtype=np.int64)


def parse_class_list(text: str | Sequence[int | str] | None) -> tuple[int, ...] | None:
    """--classes (comma-separated, or a list of ids, wnids or names) as standard class ids, in order, without duplicates."""
    from lake.classes import imagenet_classes

    if text is None or len(text) == 0:
        return None
    table = imagenet_classes()
    chosen: list[int] = []
    for token in (text.split(",") if isinstance(text, str) else [str(t) for t in text]):
        if not token.strip():
            continue
        try:
            class_id = table.resolve(token)
        except ValueError as exc:
            raise InputError(f"--classes: {exc}") from None
        if class_id not in chosen:
            chosen.append(class_id)
    if not chosen:
        raise InputError("--classes: no class given")
    return tuple(chosen)


def sample_id_prefix(model_id: str, seed: int) -> str:
    return f"gen/{model_id}/s{seed}/"


def generated_indices(ids: Any, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows, indices) of the ids that are generated samples under `prefix`."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)$")
    rows, indices = [], []
    for row, sample_id in enumerate(ids):
        match = pattern.match(sample_id)
        if match:
            rows.append(row)
            indices.append(int(match.group(1)))
    return np.asarray(rows, dtype=np.int64), np.asarray(indices, dtype=np.int64)


def present_mask(ids: Any, prefix: str, n: int) -> np.ndarray:
    """Which of the indices 0..n-1 already have a row among `ids`."""
    mask = np.zeros(n, dtype=bool)
    _, indices = generated_indices(ids, prefix)
    mask[indices[indices < n]] = True
    return mask


def blocks_of(indices: np.ndarray, block: int) -> np.ndarray:
    """The sorted compute blocks (index // block) that cover `indices`."""
    return np.unique(np.asarray(indices, dtype=np.int64) // block)


def split_steps(blocks: np.ndarray, blocks_per_rank: int, ranks: int) -> list[np.ndarray]:
    """Consecutive groups of blocks, one group per write; rank r takes the r-th slice of each group."""
    per_step = blocks_per_rank * ranks
    return [blocks[i : i + per_step] for i in range(0, len(blocks), per_step)]


@dataclass
class GenerationJob:
    """Everything the compute loop needs, identical on every rank."""

    module: Any
    device: Any
    model_id: str
    seed: int
    classes: ClassPlan
    layers: list[str]
    block: int
    blocks_per_rank: int
    noise_shape: tuple[int, int, int]
    channels: dict[str, int] = field(default_factory=dict)


@dataclass
class GeneratedBatch:
    """Generated samples gathered from every rank, in index order."""

    indices: np.ndarray  # (n,) int64
    class_ids: np.ndarray
    images: np.ndarray  # (n, 64, 64, 3) uint8
    means: dict[str, np.ndarray]  # layer -> (n, C) float32


def compute_steps(job: GenerationJob, needed: np.ndarray, ranks: Any) -> Iterator[GeneratedBatch]:
    """Generate the blocks covering `needed`, a write-sized step at a time; yields only on rank 0.

    Every rank runs this loop in the same order (the gathers are collective). A rank
    with no block left in the last step sends padding marked with index -1.
    """
    import models
    import torch

    from .probe import generate_block

    wanted = set(needed.tolist())
    size = job.blocks_per_rank * job.block
    for step in split_steps(blocks_of(needed, job.block), job.blocks_per_rank, ranks.count):
        mine = step[ranks.index * job.blocks_per_rank : (ranks.index + 1) * job.blocks_per_rank]
        outputs = []
        for block in mine:
            indices = np.arange(block * job.block, (block + 1) * job.block, dtype=np.int64)
            noise = torch.stack([models.sample_noise(job.seed, int(i), job.noise_shape) for i in indices]).to(job.device)
            class_ids = torch.from_numpy(job.classes.classes_of(indices))
            outputs.append((indices, generate_block(job.module, noise, class_ids, job.layers)))
        arrays = _pack(job, outputs, size)
        gathered = ranks.gather(arrays)
        if not ranks.is_main:
            continue
        keep = np.array([i in wanted for i in gathered["index"].tolist()], dtype=bool)
        indices = gathered["index"][keep]
        yield GeneratedBatch(
            indices=indices,
            class_ids=job.classes.classes_of(indices),
            images=gathered["image"][keep],
            means={layer: gathered[f"mean/{layer}"][keep] for layer in job.layers},
        )


def _pack(job: GenerationJob, outputs: list[tuple[np.ndarray, Any]], size: int) -> dict[str, np.ndarray]:
    """This rank's blocks as fixed-size arrays (padding: index -1), synchronising with the device once."""
    import torch

    arrays: dict[str, np.ndarray] = {
        "index": np.full(size, -1, dtype=np.int64),
        "image": np.zeros((size, *job.noise_shape[1:], job.noise_shape[0]), dtype=np.uint8),
        **{f"mean/{layer}": np.zeros((size, job.channels[layer]), dtype=np.float32) for layer in job.layers},
    }
    if outputs:
        n = sum(len(indices) for indices, _ in outputs)
        arrays["index"][:n] = np.concatenate([indices for indices, _ in outputs])
        arrays["image"][:n] = torch.cat([out.images for _, out in outputs]).cpu().numpy()
        for layer in job.layers:
            arrays[f"mean/{layer}"][:n] = torch.cat([out.means[layer] for _, out in outputs]).cpu().numpy()
    return arrays


class Failure:
    """Sent from rank 0 instead of a plan when the job cannot start (the others then exit quietly)."""


@dataclass(frozen=True)
class GenerateRequest:
    """What `generate` was asked for, as rank 0 writes it into the lake."""

    lake: str | os.PathLike[str]
    model: ModelSpec
    num_samples: int
    seed: int
    samples_per_class: int | None
    progress: bool


def run(args: argparse.Namespace) -> None:
    """`python -m ingest generate`: the flags as `generate`'s typed arguments."""
    from .probe import ModelSpec

    generate(args.lake, ModelSpec.from_args(args), args.num_samples, seed=args.seed,
             samples_per_class=args.samples_per_class, classes=args.classes, layers=args.layers,
             batch_size=args.batch_size, progress=not args.no_progress)


def generate(lake: str | os.PathLike[str], model: ModelSpec, num_samples: int, *, seed: int = 0,
             samples_per_class: int | None = None, classes: str | Sequence[int | str] | None = None,
             layers: str | Sequence[str] | None = None, batch_size: int = 256, progress: bool = True) -> None:
    """Make sure generated samples 0..num_samples-1 of (`seed`, `model`) are in `lake` (created if missing).

    Sample i depends only on (seed, i, model); only missing samples are made. `classes`
    (ids, wnids or names) restricts the classes, cycled in order with
    `samples_per_class`; `layers` (names or aliases) also stores their generation-pass
    channel means in ``generation/<layer>``. Under `accelerate launch`/torchrun every
    process calls this; rank 0 alone writes. Bad input raises InputError (one line).
    """
    from .probe import compute_block, layer_shapes, load_model, resolve_layer_flag
    from .ranks import detect_ranks

    positive(batch_size, "--batch-size")
    positive(samples_per_class, "--samples-per-class")
    if num_samples < 0:
        raise InputError(f"--num-samples must be >= 0, got {num_samples}")
    if seed < 0:
        raise InputError(f"--seed must be >= 0, got {seed}")
    plan = ClassPlan(seed, samples_per_class, parse_class_list(classes))
    layer_text = layers if layers is None or isinstance(layers, str) else ",".join(layers)

    ranks = detect_ranks(model.device)
    try:
        loaded, identity = load_model(model, device=ranks.device)
        chosen = resolve_layer_flag(layer_text, loaded.module)
        shapes = layer_shapes(loaded.module, chosen) if chosen else {}
    except InputError:
        if not ranks.is_main:
            raise SystemExit(2) from None  # rank 0 reports the same error once
        raise
    config = loaded.config
    block = compute_block(loaded.device)
    job = GenerationJob(
        module=loaded.module, device=loaded.device, model_id=identity.model_id, seed=seed, classes=plan,
        layers=chosen, block=block, blocks_per_rank=max(1, math.ceil(batch_size / (block * ranks.count))),
        noise_shape=(config.in_channels, config.img_resolution, config.img_resolution),
        channels={layer: shape[0] for layer, shape in shapes.items()},
    )
    if not ranks.is_main:
        needed = ranks.broadcast(None)
        if isinstance(needed, Failure):
            raise SystemExit(2)
        for _ in compute_steps(job, needed, ranks):
            pass
        return
    write_lake(GenerateRequest(lake, model, num_samples, seed, samples_per_class, progress), job, identity, shapes, ranks)


def write_lake(request: GenerateRequest, job: GenerationJob, identity: Any, shapes: dict[str, tuple[int, int, int]],
               ranks: Any) -> None:
    """Rank 0: plan what is missing, tell the other ranks, then append and commit batch after batch."""
    from lake import InputFile, LakeWriter, Provenance

    from .activation_store import LayerShape, open_generation_table
    from .overlap import write_behind
    from .pipeline import SampleBatch, SampleSink, progress_bar
    from .probe import random_weights_note

    inputs = []
    if request.model.checkpoint:
        from models.checkpoint import resolve_checkpoint

        path = resolve_checkpoint(request.model.checkpoint)
        inputs.append(InputFile(path=str(path), size=path.stat().st_size, sha256=identity.checkpoint_sha256 or ""))
    provenance = Provenance(
        job="ingest generate",
        inputs=inputs,
        parameters={"num_samples": request.num_samples, "seed": request.seed, "samples_per_class": request.samples_per_class,
                    "classes": list(job.classes.classes) if job.classes.classes else None, "layers": job.layers,
                    **identity.attrs(), "dtype": identity.dtype, "device": str(job.device),
                    "compute_block": job.block, "processes": ranks.count},
    )
    prefix = sample_id_prefix(identity.model_id, request.seed)
    planned = False
    try:
        with LakeWriter.open(request.lake, provenance) as writer:
            sink = SampleSink(writer)
            attrs = {**identity.attrs(), "compute_block": job.block}
            tables = {layer: open_generation_table(writer, layer, LayerShape(*shapes[layer]), attrs) for layer in job.layers}
            check_class_plan(sink, prefix, job.classes)
            layer_ids = {layer: set(table.keys()) for layer, table in tables.items()}
            missing = ~present_mask(sink.existing, prefix, request.num_samples)
            for ids in layer_ids.values():
                missing |= ~present_mask(ids, prefix, request.num_samples)
            needed = np.flatnonzero(missing)
            ranks.broadcast(needed)
            planned = True
            note = random_weights_note(identity)  # once the job is sure to run: errors stay one line
            if note:
                print(note, file=sys.stderr)

            with progress_bar(len(needed), "ingest generate", disable=not request.progress) as bar:

                def write(batch: GeneratedBatch) -> None:
                    ids = [f"{prefix}{i}" for i in batch.indices.tolist()]
                    for layer, table in tables.items():
                        rows = [k for k, sample_id in enumerate(ids) if sample_id not in layer_ids[layer]]
                        if rows:
                            table.append({"mean": batch.means[layer][rows], "sample_id": [ids[k] for k in rows],
                                          "class_id": batch.class_ids[rows].astype(np.int16)})
                            layer_ids[layer].update(ids[k] for k in rows)
                    new = [k for k, sample_id in enumerate(ids) if sample_id not in sink.existing]
                    added = sink.write(SampleBatch(
                        images=batch.images[new], sample_ids=[ids[k] for k in new], class_ids=batch.class_ids[new],
                        origins=[f"generator:{identity.model_id}#{i}" for i in batch.indices[new].tolist()],
                        source="generated", split="generated", seed=request.seed, model_id=identity.model_id,
                    ))
                    if not added:
                        writer.commit()  # activations-only batch (samples made by an earlier run without --layers)
                    bar.update(len(ids))

                # This thread computes (and joins the other ranks' gathers); batch k is written while k+1 is made.
                write_behind(compute_steps(job, needed, ranks), write)
    except BaseException:
        if not planned:
            ranks.broadcast(Failure())
        raise


def check_class_plan(sink: Any, prefix: str, plan: ClassPlan) -> None:
    """Refuse to extend a seed's samples with a different class assignment (the ids would lie).

    Checks up to 256 evenly spaced existing samples: a changed assignment differs almost everywhere.
    """
    rows, indices = generated_indices(sink.table.keys(), prefix)
    if not len(rows):
        return
    pick = np.unique(np.linspace(0, len(rows) - 1, min(len(rows), 256)).astype(np.int64))
    rows, indices = rows[pick], indices[pick]
    stored = np.asarray(sink.table.column("class_id").get_orthogonal_selection((rows,)), dtype=np.int64)
    expected = plan.classes_of(indices)
    bad = np.flatnonzero(stored != expected)
    if len(bad):
        k = int(bad[0])
        raise InputError(
            f"--seed {plan.seed}: the lake's sample {prefix}{indices[k]} has class {stored[k]}, but this run's "
            f"--classes/--samples-per-class give class {expected[k]}; repeat the flags of the first run or use another --seed")
