"""`python -m ingest generate`: DMD2 samples in one step (or several), and the activations of their generation pass.

Sample i of a run is a pure function of (seed, i, model, schedule): its noise comes from an
RNG keyed by (seed, i) (each later step's from (seed, i, step), `models.step_noise`), its
class from (seed, i) or from i alone with --samples-per-class.
The network runs on fixed blocks of indices (see ingest.core.models), so the images and
activations are bit-identical whatever --batch-size, however often the job was
interrupted or extended, and however many processes made them (same device type and
threads per process). Rows are appended in index order, samples and
`generation/<layer>` in the same commit.

Schedules (--steps K or --sigmas LIST): the default, one step at sigma 80, is the one-step
generator exactly as it always was (same ids, same bits). Any other schedule makes
different samples, so its model identity in `samples` is ``<model_id>~<schedule id>``
(`lake.layout.schedule_id`), and every step's x0_hat goes to `trajectories/<schedule>`
and each --layers block's per-step channel means to `trajectories/<schedule>/<layer>`
(not `generation/<layer>`, which is the sigma-80 one-step pass), in the same commit as
the samples rows.

Multi-process: `accelerate launch -m ingest generate ...` (or torchrun). Every process
computes its share of each batch's blocks; rank 0 gathers them and alone writes the
lake, so the lake ends exactly as a single-process run leaves it.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .core.generation import ONE_STEP, ClassPlan
from .core.sampling import Sampling, parse_sampling
from .errors import InputError
from .options import add_lake_flag, add_run_flags, parse_class_list, positive
from .ranks import Failure, split_steps

if TYPE_CHECKING:
    from .core.models import ModelSpec


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from lake.cli import command

    from .core.models import add_model_flags

    parser = command(
        subparsers,
        "generate",
        run,
        help="generate samples with the one-step generator, in one step or several (and record its activations)",
        description="Generate samples 0..N-1 with DMD2's one-step generator, D(80 * noise, 80, class), into the lake's "
        "samples table (source=generated), with the spatial mean of each --layers block in generation/<layer>. "
        "With --steps or --sigmas, sample in several steps (x = sigma_0*eps_0; x0_hat_i = D(x, sigma_i, class); "
        "x = x0_hat_i + sigma_(i+1)*eps_(i+1)); every step's x0_hat then goes to trajectories/<schedule> and the "
        "per-step block means to trajectories/<schedule>/<layer>. "
        "Sample i depends only on (--seed, i, model, schedule); rerunning with a larger --num-samples adds only the "
        "new ones, and a killed run resumes where it stopped. Multi-GPU: accelerate launch -m ingest generate ...",
    )
    add_lake_flag(parser)
    parser.add_argument("--num-samples", type=int, required=True, metavar="N",
                        help="make sure samples 0..N-1 of this seed, model and schedule are in the lake (only missing ones are made)")
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
    parser.add_argument("--sampler", choices=("dmd2", "heun"), default="dmd2",
                        help="dmd2 (default): DMD2's sampler, one step or --steps/--sigmas. heun: EDM's Heun sampler "
                        "(Karras schedule, rho 7, sigma 80 down to 0.002, 2K-1 passes), as DMD2's EDM teacher samples; "
                        "its samples start from the same noise as the one-step generator's sample of the same seed "
                        "and index, and every step goes to trajectories/heun<K>[-churn<C>]")
    parser.add_argument("--steps", default=None, metavar="K",
                        help="sample in K steps. dmd2: on the Karras (rho=7) schedule from 80 down to 0.5 (--steps 4: "
                        "80, 21.3641, 4.19162, 0.5); default 1, the one-step generator at 80, exactly as without the flag. "
                        "heun: K Heun steps, default 18 (EDM's deterministic sampler). Not with --sigmas")
    parser.add_argument("--churn", type=float, default=0.0, metavar="S",
                        help="with --sampler heun: EDM's S_churn (default 0, deterministic); above 0 the sampler is EDM's "
                        "stochastic one with its ImageNet-64 S_min 0.05, S_max 50, S_noise 1.003 (EDM's ImageNet-64 "
                        "setting: --steps 256 --churn 40); every step's noise is keyed by (seed, index, step)")
    parser.add_argument("--sigmas", default=None, metavar="LIST",
                        help="sample with this explicit schedule of input sigmas, comma-separated, strictly decreasing, "
                        "each in (0, 80] (e.g. 80,20,5,1.5); kept to float32 and 6 significant digits, as the schedule id "
                        "sigmas80-20-5-1.5 names it. Not with --steps")
    add_model_flags(parser, multi_process=True)
    add_run_flags(parser, default_batch=256)


def generated_indices(ids: Any, model_id: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, indices) of the ids that are generated samples of (`model_id`, `seed`)."""
    from lake.layout import parse_generated_id

    rows, indices = [], []
    for row, sample_id in enumerate(ids):
        parsed = parse_generated_id(sample_id)
        if parsed is not None and parsed[0] == model_id and parsed[1] == seed:
            rows.append(row)
            indices.append(parsed[2])
    return np.asarray(rows, dtype=np.int64), np.asarray(indices, dtype=np.int64)


def present_mask(ids: Any, model_id: str, seed: int, n: int) -> np.ndarray:
    """Which of the indices 0..n-1 of (`model_id`, `seed`) already have a row among `ids`."""
    mask = np.zeros(n, dtype=bool)
    _, indices = generated_indices(ids, model_id, seed)
    mask[indices[indices < n]] = True
    return mask


def blocks_of(indices: np.ndarray, block: int) -> np.ndarray:
    """The sorted compute blocks (index // block) that cover `indices`."""
    return np.unique(np.asarray(indices, dtype=np.int64) // block)


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
    sampling: Sampling = Sampling()  # canonical (parse_sampling)
    heun: Any = None  # sampling.config(): the Heun sampler's HeunConfig, built once

    @property
    def sigmas(self) -> tuple[float, ...]:
        """The sigma axis of the trajectories (each step's input sigma)."""
        return self.sampling.sigmas

    @property
    def multi_step(self) -> bool:
        """Whether this run samples on a schedule other than one step at 80 (and so writes trajectories)."""
        return self.sampling.heun is not None or self.sigmas != ONE_STEP

    @property
    def sample_model_id(self) -> str:
        """The model identity of the samples (ids, origins, samples/model_id): `Sampling.model_id`."""
        return self.sampling.model_id(self.model_id)


@dataclass
class GeneratedBatch:
    """Generated samples gathered from every rank, in index order."""

    indices: np.ndarray  # (n,) int64
    class_ids: np.ndarray
    images: np.ndarray  # (n, 64, 64, 3) uint8
    means: dict[str, np.ndarray]  # layer -> (n, C) float32; (n, K, C) for a multi-step schedule
    steps: np.ndarray | None = None  # (n, K, 64, 64, 3) uint8: every step's x0_hat (multi-step only)


def compute_steps(job: GenerationJob, needed: np.ndarray, ranks: Any) -> Iterator[GeneratedBatch]:
    """Generate the blocks covering `needed`, a write-sized step at a time; yields only on rank 0.

    Every rank runs this loop in the same order (the gathers are collective). A rank
    with no block left in the last step sends padding marked with index -1.
    """
    import torch

    from .core.generation import generate_indices

    wanted = set(needed.tolist())
    size = job.blocks_per_rank * job.block
    for step in split_steps(blocks_of(needed, job.block), job.blocks_per_rank, ranks.count):
        mine = step[ranks.index * job.blocks_per_rank : (ranks.index + 1) * job.blocks_per_rank]
        outputs = []
        for block in mine:
            indices = np.arange(block * job.block, (block + 1) * job.block, dtype=np.int64)
            class_ids = torch.from_numpy(job.classes.classes_of(indices))
            out = generate_indices(job.module, job.device, job.seed, indices, class_ids, job.sigmas, job.layers,
                                   job.noise_shape, heun=job.heun)
            outputs.append((indices, out))
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
            steps=gathered["steps"][keep] if job.multi_step else None,
        )


def _pack(job: GenerationJob, outputs: list[tuple[np.ndarray, Any]], size: int) -> dict[str, np.ndarray]:
    """This rank's blocks as fixed-size arrays (padding: index -1), synchronising with the device once."""
    import torch

    image_shape = (*job.noise_shape[1:], job.noise_shape[0])
    step_axis = (len(job.sigmas),) if job.multi_step else ()  # per-step arrays: (size, K, ...)
    arrays: dict[str, np.ndarray] = {
        "index": np.full(size, -1, dtype=np.int64),
        "image": np.zeros((size, *image_shape), dtype=np.uint8),
        **{f"mean/{layer}": np.zeros((size, *step_axis, job.channels[layer]), dtype=np.float32) for layer in job.layers},
    }
    if job.multi_step:
        arrays["steps"] = np.zeros((size, *step_axis, *image_shape), dtype=np.uint8)
    if outputs:
        n = sum(len(indices) for indices, _ in outputs)
        arrays["index"][:n] = np.concatenate([indices for indices, _ in outputs])
        arrays["image"][:n] = torch.cat([out.images for _, out in outputs]).cpu().numpy()
        for layer in job.layers:
            arrays[f"mean/{layer}"][:n] = torch.cat([out.means[layer] for _, out in outputs]).cpu().numpy()
        if job.multi_step:
            arrays["steps"][:n] = torch.cat([out.steps for _, out in outputs]).cpu().numpy()
    return arrays


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
    from .core.models import ModelSpec

    generate(args.lake, ModelSpec.from_args(args), args.num_samples, seed=args.seed,
             samples_per_class=args.samples_per_class, classes=args.classes, layers=args.layers,
             batch_size=args.batch_size, progress=not args.no_progress, steps=args.steps, sigmas=args.sigmas,
             sampler=args.sampler, churn=args.churn)


def generate(lake: str | os.PathLike[str], model: ModelSpec, num_samples: int, *, seed: int = 0,
             samples_per_class: int | None = None, classes: str | Sequence[int | str] | None = None,
             layers: str | Sequence[str] | None = None, batch_size: int = 256, progress: bool = True,
             steps: int | str | None = None, sigmas: str | Sequence[float] | None = None, sampler: str = "dmd2",
             churn: float = 0.0) -> None:
    """Make sure generated samples 0..num_samples-1 of (`seed`, `model`, schedule) are in `lake` (created if missing).

    Sample i depends only on (seed, i, model, schedule); only missing samples are made.
    `classes` (ids, wnids or names) restricts the classes, cycled in order with
    `samples_per_class`; `layers` (names or aliases) also stores their generation-pass
    channel means in ``generation/<layer>``. `steps` (the Karras schedule from 80 to 0.5)
    or `sigmas` (an explicit, strictly decreasing schedule in (0, 80]) sample in several
    steps (`ingest.core.sampling.parse_schedule`); the per-step x0_hat and means then go to
    ``trajectories/<schedule>[/<layer>]``. `sampler` "heun" samples with EDM's Heun sampler
    instead (`steps` Heun steps, `churn` its S_churn; `parse_sampling`). Under `accelerate launch`/torchrun every
    process calls this; rank 0 alone writes. Bad input raises InputError (one line).
    """
    from .core.models import compute_block, layer_shapes, load_model, resolve_layer_flag
    from .ranks import detect_ranks

    positive(batch_size, "--batch-size")
    positive(samples_per_class, "--samples-per-class")
    if num_samples < 0:
        raise InputError(f"--num-samples must be >= 0, got {num_samples}")
    if seed < 0:
        raise InputError(f"--seed must be >= 0, got {seed}")
    sampling = parse_sampling(sampler, steps, sigmas, churn)
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
        channels={layer: shape[0] for layer, shape in shapes.items()}, sampling=sampling, heun=sampling.config(),
    )
    if not ranks.is_main:
        needed = ranks.broadcast(None)
        if isinstance(needed, Failure):
            raise SystemExit(2)
        for _ in compute_steps(job, needed, ranks):
            pass
        ranks.close()
        return
    write_lake(GenerateRequest(lake, model, num_samples, seed, samples_per_class, progress), job, identity, shapes, ranks)
    ranks.close()


def write_lake(request: GenerateRequest, job: GenerationJob, identity: Any, shapes: dict[str, tuple[int, int, int]],
               ranks: Any) -> None:
    """Rank 0: plan what is missing, tell the other ranks, then append and commit batch after batch."""
    from lake import LakeWriter
    from lake.layout import generated_sample_id

    from .activation_store import LayerShape, open_generation_table, open_trajectory_layer_table, open_trajectory_table
    from .core.models import random_weights_note
    from .overlap import write_behind
    from .pipeline import SampleBatch, SampleSink, progress_bar

    provenance = generate_provenance(request, job, identity, ranks)
    sample_model_id = job.sample_model_id
    schedule = job.sampling.schedule
    planned = False
    try:
        with LakeWriter.open(request.lake, provenance) as writer:
            place = place_generator(request, job, identity)
            sink = SampleSink(writer)
            attrs = {**identity.attrs(), "compute_block": job.block}
            place.register(writer)
            if job.multi_step:
                tables = {layer: open_trajectory_layer_table(writer, schedule, place.layer(layer), LayerShape(*shapes[layer]),
                                                             job.sigmas, attrs) for layer in job.layers}
                trajectory = open_trajectory_table(writer, schedule, job.sigmas, attrs)
            else:
                tables = {layer: open_generation_table(writer, place.layer(layer), LayerShape(*shapes[layer]), attrs)
                          for layer in job.layers}
            check_class_plan(sink, sample_model_id, job.classes)
            layer_ids = {layer: set(table.keys()) for layer, table in tables.items()}
            trajectory_ids = set(trajectory.keys()) if job.multi_step else set()
            missing = ~present_mask(sink.existing, sample_model_id, request.seed, request.num_samples)
            for ids in [*layer_ids.values(), *([trajectory_ids] if job.multi_step else [])]:
                missing |= ~present_mask(ids, sample_model_id, request.seed, request.num_samples)
            needed = np.flatnonzero(missing)
            ranks.broadcast(needed)
            planned = True
            note = random_weights_note(identity)  # once the job is sure to run: errors stay one line
            if note:
                print(note, file=sys.stderr)

            with progress_bar(len(needed), "ingest generate", disable=not request.progress) as bar:

                def write(batch: GeneratedBatch) -> None:
                    ids = [generated_sample_id(sample_model_id, request.seed, i) for i in batch.indices.tolist()]
                    for layer, table in tables.items():
                        rows = [k for k, sample_id in enumerate(ids) if sample_id not in layer_ids[layer]]
                        if rows:
                            table.append({"mean": batch.means[layer][rows], "sample_id": [ids[k] for k in rows],
                                          "class_id": batch.class_ids[rows].astype(np.int16)})
                            layer_ids[layer].update(ids[k] for k in rows)
                    if job.multi_step:
                        rows = [k for k, sample_id in enumerate(ids) if sample_id not in trajectory_ids]
                        if rows:
                            assert batch.steps is not None
                            trajectory.append({"x0_hat": batch.steps[rows], "sample_id": [ids[k] for k in rows],
                                               "class_id": batch.class_ids[rows].astype(np.int16)})
                            trajectory_ids.update(ids[k] for k in rows)
                    new = [k for k, sample_id in enumerate(ids) if sample_id not in sink.existing]
                    added = sink.write(SampleBatch(
                        images=batch.images[new], sample_ids=[ids[k] for k in new], class_ids=batch.class_ids[new],
                        origins=[f"generator:{job.sample_model_id}#{i}" for i in batch.indices[new].tolist()],
                        source="generated", split="generated", seed=request.seed, model_id=job.sample_model_id,
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


def place_generator(request: GenerateRequest, job: GenerationJob, identity: Any) -> Any:
    """The registered model the samples come from (ingest.core.registry), read from the committed lake under
    the writer's lock; a model other than the first names its tables ``<model>.<layer>``."""
    from .core.registry import place_model_at

    return place_model_at(request.lake, identity, request.model.name, request.model.checkpoint)


def generate_provenance(request: GenerateRequest, job: GenerationJob, identity: Any, ranks: Any) -> Any:
    """The run's provenance record: the checkpoint file as its input, every parameter that shapes the samples."""
    from lake import InputFile, Provenance

    inputs = []
    if request.model.checkpoint:
        from models.checkpoint import resolve_checkpoint

        path = resolve_checkpoint(request.model.checkpoint)
        inputs.append(InputFile(path=str(path), size=path.stat().st_size, sha256=identity.checkpoint_sha256 or ""))
    return Provenance(
        job="ingest generate",
        inputs=inputs,
        parameters={"num_samples": request.num_samples, "seed": request.seed, "samples_per_class": request.samples_per_class,
                    "classes": list(job.classes.classes) if job.classes.classes else None, "layers": job.layers,
                    **identity.attrs(), "dtype": identity.dtype, "device": str(job.device),
                    "compute_block": job.block, "processes": ranks.count,
                    "sigmas": list(job.sigmas), "steps": len(job.sigmas), "schedule": job.sampling.schedule,
                    "sampler": "heun" if job.heun is not None else "dmd2",
                    **({"heun": {k: (None if v == math.inf else v) for k, v in dataclasses.asdict(job.heun).items()}}
                       if job.heun is not None else {})},
    )


def check_class_plan(sink: Any, model_id: str, plan: ClassPlan) -> None:
    """Refuse to extend a seed's samples with a different class assignment (the ids would lie).

    Checks up to 256 evenly spaced existing samples: a changed assignment differs almost everywhere.
    """
    from lake.layout import generated_sample_id

    rows, indices = generated_indices(sink.table.keys(), model_id, plan.seed)
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
            f"--seed {plan.seed}: the lake's sample {generated_sample_id(model_id, plan.seed, int(indices[k]))} has class {stored[k]}, but this run's "
            f"--classes/--samples-per-class give class {expected[k]}; repeat the flags of the first run or use another --seed")
