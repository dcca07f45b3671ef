"""`python -m ingest edit ...`: from a point of the map back to the generator.

Six operations on samples already in the lake (each a plain function here, a CLI
subcommand, and what the explorer's job buttons run):

- **regenerate** ``--from ID[,ID...]``: recompute stored samples of ``ingest generate`` from
  what their ids say (model, schedule, seed, index) and the job's recorded class plan and
  compute block; reports match (bit for bit) or mismatch (exit status 1). Writes no sample,
  only its provenance record, which holds the result.
- **variations** ``--from ID --n N --seed S``: N new noise draws, the parent's class, model and
  schedule (a real parent: its class, the lake's probe model, one step). Variation k's noise comes from (S, k) on a stream of its own (`EDIT_STREAM`).
- **class-swap** ``--from ID --class C[,C...]``: the parent's own noise (every step's), another class; one
  sample per class.
- **interpolate** ``--from A,B --n N``: N points t = 0, 1/(N-1), ..., 1, *ends included* (t=0
  is A's noise and class, t=1 B's): spherical interpolation (slerp) of every step's noise,
  linear interpolation of the class one-hot vectors (the network takes a label vector, so a
  mix is a valid input).
- **neighbours** ``--from ID,ID,... --layer L [--mask 0101...] [--channels 0,5] [--sigma S]``:
  activation masking. The mean of the chosen samples' block outputs at L (the spatial maps,
  recomputed now: generated samples by re-running their generation pass, real ones by
  probing them at --sigma with their probe noise) replaces L's output while the generator
  runs from the *first* parent's noise and class; optionally only inside a spatial mask and/or
  for a channel subset (`models.replace`).
- **from-real** ``--from ID[,ID...] --sigma S``: probe a real sample at S exactly as ``ingest
  activations`` does (x0 + S * eps, eps from (noise_seed, sample_id), its own class) and keep
  the one-step denoised image (`ingest.reconstruct`), one sample per parent.

What is written (one commit): the new rows of ``samples`` (source ``generated``, split
``edited``, origin ``edit:<operation>``, ``model_id`` the generator's, with ``~<schedule>`` for a
multi-step parent, ``seed`` the edit seed or -1), their rows of ``lineage`` (operation,
parents and every parameter, the job's run id) and, for one-pass edits, their generation-pass
channel means in every ``generation/<layer>`` group of the same model. Then the new samples
(only them) are probed as ``--probe`` says (default: every ``activations/<layer>`` at every
sigma it holds), so ``analysis place`` can put them on the map.

Ids and resumption: ``edit/<operation>/<digest>/<k>``, the digest a hash of (model, operation,
parents, every parameter that shapes the result) and k the member: the variation index, the
target class of a class swap, the interpolation step; 0 for neighbours and from-real. So the
same edit always makes the same ids, a rerun adds nothing (and finishes probing a run killed
while probing), and ``variations --n 8`` after ``--n 4`` adds variations 4..7.

Determinism: a sample's low bits depend on the other samples of its forward call, so each
edit fixes its calls by its own identity: variations run in compute blocks of variation
indices (k = jB .. jB+B-1, B the device's `ingest.probe.compute_block`, as ``generate``
does), so variation k is the same bits whatever N; every other edited sample runs in a pass
of its own (one per class, per interpolation point, per blend); from-real runs its parent's
probe block, so it equals the stored reconstruction. Same device type and thread count.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InputError
from .options import add_lake_flag

if TYPE_CHECKING:
    from lake import Lake

    from .probe import ModelIdentity

MAX_N = 64  # the most samples one edit job makes (the explorer offers up to this)
EDIT_STREAM = 3  # third SeedSequence word of edit noise, apart from class draws (1) and later steps (2)
SIGMA_LIMIT = 80.0
SPLIT = "edited"
CLI_OPERATIONS = {"variations": "variations", "class-swap": "class_swap", "interpolate": "interpolate",
                  "neighbours": "neighbours", "from-real": "from_real"}
_GENERATED_ID = re.compile(r"^gen/(?P<model>[^/]+)/s(?P<seed>\d+)/(?P<index>\d+)$")
_RANDOM_MODEL = re.compile(r"^(?P<preset>.+)-random-seed(?P<seed>\d+)$")


# --------------------------------------------------------------------------- parents


@dataclass(frozen=True)
class Parent:
    """A sample an edit starts from, as the lake and its id describe it."""

    sample_id: str
    row: int  # in samples
    source: str  # "real" or "generated"
    class_id: int
    model_id: str  # samples/model_id: the generator, with ~<schedule> for multi-step samples ('' for real)
    seed: int  # the generation seed (-1 unless generated)
    index: int | None  # the index within its seed when made by `ingest generate`, else None

    @property
    def base_model(self) -> str:
        """The generator's weights without the schedule."""
        return self.model_id.partition("~")[0]

    @property
    def sigmas(self) -> tuple[float, ...]:
        """The schedule it was sampled on ((80,) for one step)."""
        return schedule_of(self.model_id)

    @property
    def from_generate(self) -> bool:
        """Whether its noise is known from its id alone (made by ``ingest generate``)."""
        return self.index is not None


def schedule_of(model_id: str) -> tuple[float, ...]:
    """The sampling schedule a samples/model_id names: ``<model>~<schedule id>``, or one step at 80."""
    from lake.layout import parse_schedule_id

    schedule = model_id.partition("~")[2]
    return parse_schedule_id(schedule) if schedule else (SIGMA_LIMIT,)


def parse_ids(text: str | Sequence[str], flag: str = "--from") -> list[str]:
    """--from as a list of sample ids (comma-separated, order kept, duplicates dropped)."""
    tokens = text.split(",") if isinstance(text, str) else [str(t) for t in text]
    ids: list[str] = []
    for token in tokens:
        if token.strip() and token.strip() not in ids:
            ids.append(token.strip())
    if not ids:
        raise InputError(f"{flag}: give at least one sample id")
    return ids


def load_parents(lake: Lake, ids: Sequence[str]) -> list[Parent]:
    """The samples `ids` name, in that order; InputError for an id the lake lacks."""
    from lake.layout import SAMPLES_GROUP

    if not lake.num_samples:
        raise InputError(f"{lake.path}: the lake has no samples")
    all_ids = lake.sample_ids()
    where = {sample_id: row for row, sample_id in enumerate(all_ids.tolist())}
    parents = []
    for sample_id in ids:
        if sample_id not in where:
            raise InputError(f"--from: no sample {sample_id!r} in {lake.path}")
        row = where[sample_id]
        match = _GENERATED_ID.match(sample_id)
        model_id = str(lake.column(SAMPLES_GROUP, "model_id", [row])[0])
        source = str(lake.column(SAMPLES_GROUP, "source", [row])[0])
        parents.append(Parent(
            sample_id=sample_id, row=row, source=source,
            class_id=int(lake.column(SAMPLES_GROUP, "class_id", [row])[0]), model_id=model_id,
            seed=int(lake.column(SAMPLES_GROUP, "seed", [row])[0]),
            index=int(match.group("index")) if match and source == "generated" and match.group("model") == model_id else None))
    return parents


def _need_generated(parent: Parent, operation: str, from_generate: bool = False) -> None:
    if parent.source != "generated":
        raise InputError(f"--from {parent.sample_id}: {operation} needs a generated sample, this one is {parent.source}")
    if from_generate and not parent.from_generate:
        raise InputError(f"--from {parent.sample_id}: {operation} needs a sample made by `ingest generate` "
                         "(gen/<model>/s<seed>/<index>), whose noise its id determines")


def _need_count(n: int, low: int, flag: str = "--n") -> None:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not low <= n <= MAX_N:
        raise InputError(f"{flag} must be an integer in {low}..{MAX_N}, got {n}")


def parse_mask(text: str | None, height: int, width: int) -> np.ndarray | None:
    """--mask ('0'/'1' row-major over the layer's H x W map) as an (H, W) bool array; None or '' is everywhere."""
    if text is None or text == "":
        return None
    text = text.strip()
    if len(text) != height * width or set(text) - {"0", "1"}:
        bad = sorted(set(text) - {"0", "1"})
        problem = f"characters {''.join(bad)!r}" if bad else f"{len(text)} characters"
        raise InputError(f"--mask: expected {height * width} characters '0'/'1' (the layer's {height}x{width} map, "
                         f"row-major), got {problem}")
    mask = np.frombuffer(text.encode(), dtype=np.uint8).reshape(height, width) == ord("1")
    if not mask.any():
        raise InputError("--mask: selects no position (all '0'); leave it out to replace everywhere")
    return mask


def parse_channels(text: str | Sequence[int] | None, channels: int) -> list[int] | None:
    """--channels (comma-separated indices into the layer's channels) sorted, or None for all."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    tokens = text.split(",") if isinstance(text, str) else [str(t) for t in text]
    chosen: set[int] = set()
    for token in tokens:
        if not token.strip():
            continue
        try:
            value = int(token)
        except ValueError:
            raise InputError(f"--channels: {token.strip()!r} is not an integer") from None
        if not 0 <= value < channels:
            raise InputError(f"--channels: {value} is out of range; the layer has channels 0..{channels - 1}")
        chosen.add(value)
    if not chosen:
        raise InputError("--channels: give at least one channel, or leave the flag out for all")
    return sorted(chosen)


def parse_sigma(value: float | str | None, flag: str = "--sigma") -> float:
    """A probe's noise level in (0, 80], float32-exact."""
    if value is None:
        raise InputError(f"{flag} is required here (the noise level to probe at, e.g. 10)")
    try:
        sigma = float(value)
    except ValueError:
        raise InputError(f"{flag}: {value!r} is not a number") from None
    if not math.isfinite(sigma) or not 0 < sigma <= SIGMA_LIMIT:
        raise InputError(f"{flag} must lie in (0, {SIGMA_LIMIT:g}], got {value}")
    return float(np.float32(sigma))


# --------------------------------------------------------------------------- the network


@dataclass
class EditModel:
    """The generator an edit runs, loaded, and what the lake records about it."""

    module: Any
    device: Any
    identity: ModelIdentity
    checkpoint: str | None  # the path it was loaded from (None: seeded random weights)


def load_edit_model(lake: Lake, model_id: str, checkpoint: str | None = None, device: str = "auto") -> EditModel:
    """Load the generator `model_id` names (as `LoadedGenerator.model_id` spells it), checked against that id.

    Random weights (``<preset>-random-seed<S>``) are rebuilt; a checkpoint
    (``<preset>-<sha256[:12]>``) is `checkpoint` when given, else a file the lake's
    provenance records with that hash. One-line InputError when it cannot be found or differs.
    """
    import models

    from .probe import ModelIdentity, ModelSpec, load_model

    random = _RANDOM_MODEL.match(model_id)
    if random:
        preset, seed = random.group("preset"), int(random.group("seed"))
        try:
            models.get_preset(preset)
        except ValueError as exc:
            raise InputError(f"{lake.path}: model {model_id}: {exc}") from None
        try:
            torch_device = models.pick_device(None if device == "auto" else device)
        except ValueError as exc:
            raise InputError(f"--device: {exc}") from None
        loaded = models.load_generator(preset, device=str(torch_device), seed=seed)
        identity = ModelIdentity(model_id=loaded.model_id, preset=preset, weights="random", checkpoint_name=None,
                                 checkpoint_sha256=None, dtype="fp32")
        return EditModel(loaded.module, loaded.device, identity, None)
    preset, _, short = model_id.rpartition("-")
    candidates = [checkpoint] if checkpoint else _recorded_checkpoints(lake, short)
    if not candidates:
        raise InputError(f"{lake.path}: model {model_id} ran a checkpoint that no provenance record locates on this "
                         "machine; pass --checkpoint PATH")
    for path in candidates:
        loaded, identity = load_model(ModelSpec(preset=preset, checkpoint=path, device=device))
        if identity.model_id == model_id:
            return EditModel(loaded.module, loaded.device, identity, str(path))
    raise InputError(f"--checkpoint {candidates[0]}: this is model {identity.model_id}, the samples were made by "
                     f"{model_id}")


def _recorded_checkpoints(lake: Lake, sha_prefix: str) -> list[str]:
    paths: list[str] = []
    for record in reversed(lake.provenance()):
        for item in record.get("inputs") or []:
            path = str(item.get("path") or "")
            if str(item.get("sha256") or "").startswith(sha_prefix) and path and path not in paths and os.path.exists(path):
                paths.append(path)
    return paths


def edit_noise(seed: int, k: int, step: int, shape: Sequence[int] = (3, 64, 64)) -> Any:
    """Standard-normal float32 noise of step `step` of edit sample `k` of edit seed `seed` (CPU).

    Keyed ``(seed, k, EDIT_STREAM)`` (step 0) or ``(seed, k, EDIT_STREAM, step)``: a stream of its
    own, so a variation never repeats a generated sample's noise for the same seed.
    """
    import torch

    from models.generation import _rng  # the one keyed-RNG constructor (validates the keys)

    key = (seed, k, EDIT_STREAM) if step == 0 else (seed, k, EDIT_STREAM, step)
    return torch.from_numpy(_rng(*key).standard_normal(tuple(shape), dtype=np.float32))


@dataclass
class Passes:
    """Images and generation-pass means of a batch of edited samples (CPU, numpy)."""

    images: np.ndarray  # (n, 64, 64, 3) uint8: the last step's x0_hat
    means: dict[str, np.ndarray]  # layer -> (n, C) float32 of the first (sigma 80) pass; one-step edits only


def run_passes(model: EditModel, noises: Any, labels: Any, sigmas: Sequence[float], layers: Sequence[str] = (),
               replacement: dict[str, Any] | None = None) -> Passes:
    """Sample from `noises` (K, n, 3, 64, 64) with label vectors `labels` (n, 1000) on schedule `sigmas`.

    The recurrence and its ops are `models.denoise_steps`', so with one-hot labels this is the
    generator's own sampling; label vectors may mix classes (interpolation). `replacement`
    (`models.replace` keywords) replaces a block's output in every pass. `layers` are captured
    in the first pass (their channel means, for ``generation/<layer>``), one-step only.
    """
    from contextlib import ExitStack

    import torch

    import models

    module, device = model.module, model.device
    labels = labels.to(device=device, dtype=torch.float32)
    with torch.inference_mode(), ExitStack() as stack:
        if replacement is not None:
            stack.enter_context(models.replace(module, **replacement))  # before capture: capture sees the replaced map
        acts = stack.enter_context(models.capture(module, list(layers))) if layers else {}
        x = noises[0].to(device=device, dtype=torch.float32) * float(sigmas[0])
        means: dict[str, np.ndarray] = {}
        for i, sigma in enumerate(sigmas):
            x0_hat = module(x, torch.full((x.shape[0],), float(sigma), device=device), labels)
            if i == 0:
                means = {name: acts[name].to(torch.float32).mean(dim=(2, 3)).cpu().numpy() for name in layers}
            if i + 1 < len(sigmas):
                x = x0_hat + float(sigmas[i + 1]) * noises[i + 1].to(device=device, dtype=torch.float32)
        images = models.to_uint8_nhwc(x0_hat).cpu().numpy()
    return Passes(images=images, means=means if len(sigmas) == 1 else {})


def one_hot(class_ids: Sequence[int], num_classes: int = 1000) -> Any:
    import torch
    from torch.nn import functional as F

    return F.one_hot(torch.as_tensor(list(class_ids), dtype=torch.int64), num_classes).to(torch.float32)


def parent_noises(parent: Parent, shape: Sequence[int] = (3, 64, 64)) -> Any:
    """Every step's noise of a sample of ``ingest generate``: (K, 3, 64, 64)."""
    import models

    assert parent.index is not None
    return models.step_noise_batch(parent.seed, [parent.index], len(parent.sigmas), shape)[:, 0]


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation of two noise tensors (float32), exact at the ends: t=0 gives `a`, t=1 gives `b`.

    Computed in float64 (sin(theta)/sin(theta) is exactly 1, sin(0) exactly 0); falls back to
    a linear mix when the two are (anti)parallel, where the great circle is undefined.
    """
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    cos = float(np.dot(a64.ravel(), b64.ravel()) / (np.linalg.norm(a64) * np.linalg.norm(b64)))
    theta = math.acos(min(1.0, max(-1.0, cos)))
    if math.sin(theta) < 1e-6:
        mixed = (1 - t) * a64 + t * b64
    else:
        mixed = (math.sin((1 - t) * theta) * a64 + math.sin(t * theta) * b64) / math.sin(theta)
    return mixed.astype(np.float32)


# --------------------------------------------------------------------------- what an edit writes


@dataclass
class EditSample:
    """One edited sample and how it was made (its `lineage` row)."""

    sample_id: str
    image: np.ndarray  # (64, 64, 3) uint8
    class_id: int
    means: dict[str, np.ndarray]  # layer -> (C,) float32; empty for multi-step edits
    parent_ids: list[str]
    weight: float = math.nan


@dataclass
class EditPlan:
    """Everything an edit job writes, computed before the lake is opened for writing."""

    operation: str  # one of lake.layout.EDIT_OPERATIONS
    model_id: str  # samples/model_id of the new samples (with ~<schedule> when multi-step)
    model: EditModel
    seed: int  # the edit seed (-1 when none)
    layer: str = ""
    mask: str = ""
    channels: str = ""
    sigma: float = math.nan
    samples: list[EditSample] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)


def edit_digest(model_id: str, operation: str, parents: Sequence[str], parameters: dict[str, Any]) -> str:
    """Short stable hash of an edit: the same edit always gets the same sample ids."""
    text = json.dumps({"model_id": model_id, "operation": operation, "parents": list(parents),
                       "parameters": parameters}, sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def edit_sample_id(operation: str, digest: str, k: int) -> str:
    return f"edit/{operation}/{digest}/{k}"


@dataclass(frozen=True)
class EditOutcome:
    """What an edit job did: every sample id of the edit (in order) and how many rows were new."""

    operation: str
    sample_ids: list[str]
    added: int
    run_id: str


def write_edit(lake_path: str | os.PathLike[str], plan: EditPlan, provenance: Any) -> int:
    """Append the plan's samples not yet in the lake, their lineage and generation means, in one commit.

    Returns the number of samples added. Rows of `lineage` or ``generation/<layer>`` missing for
    samples already present (none, unless written by hand) are filled in too, so a rerun
    always ends complete.
    """
    from lake import SAMPLES, LakeWriter
    from lake.layout import LINEAGE_GROUP, LayerShape, generation_group, lineage_spec

    from .activation_store import open_generation_table
    from .pipeline import SampleBatch

    with LakeWriter.open(lake_path, provenance, create=False) as writer:
        samples = writer.table(SAMPLES)
        present = set(samples.keys().tolist())
        new = [s for s in plan.samples if s.sample_id not in present]
        if new:
            samples.append(SampleBatch(
                images=np.stack([s.image for s in new]), sample_ids=[s.sample_id for s in new],
                class_ids=np.array([s.class_id for s in new]), origins=[f"edit:{plan.operation}"] * len(new),
                source="generated", split=SPLIT, seed=plan.seed, model_id=plan.model_id).columns())
        identity = plan.model.identity.attrs()
        found = writer.attrs(LINEAGE_GROUP)
        lineage = writer.table(lineage_spec(found or {"description": "how each edited sample was made"}))
        have = set(lineage.keys().tolist())
        rows = [s for s in plan.samples if s.sample_id not in have]
        if rows:
            lineage.append({
                "sample_id": [s.sample_id for s in rows], "operation": [plan.operation] * len(rows),
                "parent_ids": [",".join(s.parent_ids) for s in rows], "layer": [plan.layer] * len(rows),
                "mask": [plan.mask] * len(rows), "channels": [plan.channels] * len(rows),
                "sigma": np.full(len(rows), plan.sigma, dtype=np.float32),
                "weight": np.array([s.weight for s in rows], dtype=np.float32),
                "edit_seed": np.full(len(rows), plan.seed, dtype=np.int64),
                "class_id": np.array([s.class_id for s in rows], dtype=np.int16),
                "run_id": [provenance.run_id] * len(rows)})
        layers = sorted({layer for s in plan.samples for layer in s.means})
        for layer in layers:
            attrs = writer.attrs(generation_group(layer)) or {}
            if attrs.get("model_id") != identity["model_id"]:
                continue  # a group of another model's generation: these samples are not its to hold
            channels = int(plan.samples[0].means[layer].shape[0])
            height, width = _resolution(plan.model.module, layer)
            table = open_generation_table(writer, layer, LayerShape(channels, height, width), attrs)
            missing = [s for s in plan.samples if s.sample_id not in set(table.keys().tolist())]
            if missing:
                table.append({"mean": np.stack([s.means[layer] for s in missing]),
                              "sample_id": [s.sample_id for s in missing],
                              "class_id": np.array([s.class_id for s in missing], dtype=np.int16)})
    return len(new)


def _resolution(module: Any, layer: str) -> tuple[int, int]:
    from .probe import layer_shapes

    _, height, width = layer_shapes(module, [layer])[layer]
    return height, width


# --------------------------------------------------------------------------- probing the new samples


@dataclass(frozen=True)
class ProbeRequest:
    """Which probes the new samples get: layers sharing one (sigmas, noise seed, spatial setting)."""

    layers: tuple[str, ...]
    sigmas: tuple[float, ...]
    noise_seed: int
    keep_spatial: bool


def parse_probe(lake: Lake, text: str | None) -> list[ProbeRequest]:
    """--probe: ``all`` (every activations/<layer> at every sigma it has), ``none``, or keys LAYER@sigmaS."""
    from lake.layout import activations_group, parse_key
    from lake.schema import LAYER_ALIASES

    text = "all" if text is None else text.strip()
    if text == "none":
        return []
    layers = lake.activation_layers()
    if text == "all":
        wanted = {layer: lake.activation_sigmas(layer) for layer in layers}
    else:
        wanted = {}
        for token in (t.strip() for t in text.split(",")):
            if not token:
                continue
            try:
                key = parse_key(token)
            except ValueError as exc:
                raise InputError(f"--probe: {exc}") from None
            key = type(key)(LAYER_ALIASES.get(key.layer, key.layer), key.sigma)  # bottleneck@sigma2 works too
            if key.layer not in layers:
                raise InputError(f"--probe {token}: the lake has no activations/{key.layer}; it has "
                                 f"{', '.join(layers) or 'none'} (or say all or none)")
            have = [float(np.float32(s)) for s in lake.activation_sigmas(key.layer)]
            if key.sigma not in have:
                raise InputError(f"--probe {token}: activations/{key.layer} holds sigmas "
                                 f"{', '.join(f'{s:g}' for s in have)}")
            wanted.setdefault(key.layer, [])
            if key.sigma not in wanted[key.layer]:
                wanted[key.layer].append(key.sigma)
    groups: dict[tuple[Any, ...], list[str]] = {}
    for layer, sigmas in wanted.items():
        attrs = lake.attrs(activations_group(layer))
        signature = (tuple(float(s) for s in sigmas), int(attrs.get("noise_seed", 0)), bool(attrs.get("keep_spatial")))
        groups.setdefault(signature, []).append(layer)
    return [ProbeRequest(tuple(layers), sigmas, seed, spatial) for (sigmas, seed, spatial), layers in groups.items()]


def probe_new(lake_path: str | os.PathLike[str], sample_ids: Sequence[str], requests: Sequence[ProbeRequest], *,
              checkpoint: str | None = None, device: str = "auto", progress: bool = True) -> None:
    """Probe only `sample_ids` with the lake's probe model, as `requests` say (`probe_activations`)."""
    from lake import open_lake

    from .activations import probe_activations
    from .probe import ModelSpec
    from .reconstruct import find_checkpoint, probe_setup

    lake = open_lake(lake_path)
    for request in requests:
        setup = probe_setup(lake, request.layers[0])
        path = checkpoint
        if setup.weights == "checkpoint" and path is None:
            found = [p for p in find_checkpoint(lake, setup) if os.path.exists(p)]
            if not found:
                raise InputError(f"{lake.path}: its probes ran a checkpoint no provenance record locates here; "
                                 "pass --checkpoint PATH")
            path = found[0]
        probe_activations(lake_path, ModelSpec(preset=setup.preset, checkpoint=path, device=device, dtype=setup.dtype),
                          list(request.layers), list(request.sigmas), source="all", noise_seed=request.noise_seed,
                          keep_spatial=request.keep_spatial, progress=progress, sample_ids=list(sample_ids))


# --------------------------------------------------------------------------- the operations


@dataclass(frozen=True)
class RegenerateResult:
    """One regenerated sample against its stored image."""

    sample_id: str
    match: bool
    differing: int  # pixel values (of 64*64*3) that differ
    max_diff: int
    class_ok: bool  # the recorded class plan gives the stored class

    def message(self) -> str:
        if self.match:
            return f"regenerate {self.sample_id}: match (bit for bit)"
        if not self.class_ok:
            return f"regenerate {self.sample_id}: mismatch: the generate job's class plan gives another class than the stored one"
        return (f"regenerate {self.sample_id}: mismatch: {self.differing} of 12288 pixel values differ from the "
                f"stored image (max |difference| {self.max_diff})")


def _generate_record(lake: Lake, parent: Parent) -> dict[str, Any]:
    """The parameters of the latest ``ingest generate`` run that made samples of (model, schedule, seed)."""
    from lake.layout import schedule_id

    schedule = schedule_id(parent.sigmas)
    for record in reversed(lake.provenance()):
        params = record.get("parameters") or {}
        if (record.get("job") == "ingest generate" and params.get("model_id") == parent.base_model
                and params.get("seed") == parent.seed and params.get("schedule", schedule_id((SIGMA_LIMIT,))) == schedule):
            return dict(params)
    raise InputError(f"--from {parent.sample_id}: the lake has no provenance record of the `ingest generate` run that "
                     "made it (its class plan and compute block are needed)")


def regenerate(lake_path: str | os.PathLike[str], sample_ids: str | Sequence[str], *, checkpoint: str | None = None,
               device: str = "auto") -> list[RegenerateResult]:
    """Recompute stored samples of ``ingest generate`` and compare them with the stored images, bit for bit.

    Each sample is recomputed in its original compute block (indices kB .. kB+B-1 with the
    classes of the run's recorded class plan), so a healthy lake matches exactly on the
    device type it was made on. Writes no sample; the results go into this job's
    provenance record (parameters.results). Bad ids raise a one-line InputError.
    """
    import torch

    import models
    from lake import LakeWriter, Provenance, open_lake
    from lake.layout import SAMPLES_GROUP

    from .generate import ClassPlan
    from .probe import generate_block, generate_steps_block

    lake = open_lake(lake_path)
    parents = load_parents(lake, parse_ids(sample_ids))
    for parent in parents:
        _need_generated(parent, "regenerate", from_generate=True)
    records = {p.sample_id: _generate_record(lake, p) for p in parents}
    models_by_id: dict[str, EditModel] = {}
    results = []
    for parent in parents:
        if parent.base_model not in models_by_id:
            models_by_id[parent.base_model] = load_edit_model(lake, parent.base_model, checkpoint, device)
        model = models_by_id[parent.base_model]
        params = records[parent.sample_id]
        classes = params.get("classes")
        plan = ClassPlan(parent.seed, params.get("samples_per_class"), tuple(classes) if classes else None)
        block = int(params.get("compute_block") or 8)
        assert parent.index is not None
        start = parent.index - parent.index % block
        indices = np.arange(start, start + block, dtype=np.int64)
        class_ids = torch.from_numpy(plan.classes_of(indices))
        shape = (3, 64, 64)
        if parent.sigmas == (SIGMA_LIMIT,):
            noise = torch.stack([models.sample_noise(parent.seed, int(i), shape) for i in indices]).to(model.device)
            out = generate_block(model.module, noise, class_ids, [])
        else:
            noises = models.step_noise_batch(parent.seed, indices.tolist(), len(parent.sigmas), shape)
            out = generate_steps_block(model.module, noises.to(model.device), class_ids, parent.sigmas, [])
        image = out.images[parent.index - start].cpu().numpy()
        stored = lake.column(SAMPLES_GROUP, "image", [parent.row])[0]
        diff = np.abs(image.astype(np.int16) - stored.astype(np.int16))
        class_ok = int(class_ids[parent.index - start]) == parent.class_id
        results.append(RegenerateResult(parent.sample_id, bool(class_ok and not diff.any()), int((diff > 0).sum()),
                                        int(diff.max()), bool(class_ok)))
    first = models_by_id[parents[0].base_model]
    provenance = Provenance(job="ingest edit regenerate", parameters={
        "operation": "regenerate", "parents": [p.sample_id for p in parents], "device": str(first.device),
        **first.identity.attrs(),
        "results": [{"sample_id": r.sample_id, "match": r.match, "pixel_values_differing": r.differing,
                     "max_abs_difference": r.max_diff, "class_matches_plan": r.class_ok} for r in results]})
    with LakeWriter.open(lake_path, provenance, create=False):
        pass  # the record alone: regenerate writes no sample
    return results


def _edit_provenance(plan: EditPlan, parents: Sequence[Parent], probe: str | None) -> Any:
    from lake import InputFile, Provenance

    inputs = []
    if plan.model.checkpoint:
        path = plan.model.checkpoint
        inputs.append(InputFile(path=os.path.abspath(path), size=os.path.getsize(path),
                                sha256=plan.model.identity.checkpoint_sha256 or ""))
    return Provenance(job=f"ingest edit {plan.operation}", inputs=inputs, parameters={
        "operation": plan.operation, "parents": [p.sample_id for p in parents], **plan.parameters,
        "layer": plan.layer, "mask": plan.mask, "channels": plan.channels,
        "sigma": None if math.isnan(plan.sigma) else plan.sigma, "edit_seed": plan.seed,
        "sample_model_id": plan.model_id, **plan.model.identity.attrs(), "device": str(plan.model.device),
        "probe": probe or "all", "sample_ids": [s.sample_id for s in plan.samples]})


def _finish(lake_path: str | os.PathLike[str], plan: EditPlan, parents: Sequence[Parent], probe: str | None,
            requests: list[ProbeRequest], checkpoint: str | None, device: str, progress: bool) -> EditOutcome:
    """Write the plan (one commit), then probe its samples."""
    provenance = _edit_provenance(plan, parents, probe)
    added = write_edit(lake_path, plan, provenance)
    ids = [s.sample_id for s in plan.samples]
    if requests:
        probe_new(lake_path, ids, requests, checkpoint=checkpoint, device=device, progress=progress)
    return EditOutcome(plan.operation, ids, added, provenance.run_id)


def _progress(total: int, operation: str, progress: bool) -> Any:
    from .pipeline import progress_bar

    return progress_bar(total, f"ingest edit {operation}", disable=not progress)


def _generation_layers(lake: Lake, model: EditModel) -> list[str]:
    """The lake's generation/<layer> groups of this model: an edit records its pass there too."""
    from lake.layout import generation_group

    return [layer for layer in lake.generation_layers()
            if lake.attrs(generation_group(layer)).get("model_id") == model.identity.model_id]


def variations(lake_path: str | os.PathLike[str], parent_id: str, n: int = 8, *, seed: int = 0,
               probe: str | None = "all", checkpoint: str | None = None, device: str = "auto",
               progress: bool = True) -> EditOutcome:
    """N new noise draws of the parent's class, model and schedule; variation k's noise from (seed, k).

    A real parent gives new samples of its class by the lake's probe model (the generator
    whose probes place it on the map), in one step.
    Ids ``edit/variations/<digest>/<k>`` with a digest of (model, parent, seed), so N only
    says how many: a larger N later adds the rest.
    """
    import torch

    from lake import open_lake

    from .probe import compute_block

    _need_count(n, 1)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"--seed must be a non-negative integer, got {seed}")
    lake = open_lake(lake_path)
    parents = load_parents(lake, parse_ids(parent_id))
    if len(parents) != 1:
        raise InputError(f"--from: variations start from one sample, got {len(parents)}")
    parent = parents[0]
    if parent.source == "generated":
        model_id = parent.model_id
    else:  # a real sample: new draws of its class by the generator whose probes put it on the map, in one step
        from .reconstruct import probe_setup

        model_id = probe_setup(lake).model_id
    requests = parse_probe(lake, probe)
    model = load_edit_model(lake, model_id.partition("~")[0], checkpoint, device)
    sigmas = schedule_of(model_id)
    layers = _generation_layers(lake, model) if len(sigmas) == 1 else []
    digest = edit_digest(model_id, "variations", [parent.sample_id], {"seed": int(seed)})
    plan = EditPlan("variations", model_id, model, int(seed), parameters={"n": n})
    block = compute_block(model.device)
    with _progress(n, "variations", progress) as bar:
        for start in range(0, n, block):
            ks = list(range(start, start + block))  # a whole block, as generate does: k's bits never depend on N
            noises = torch.stack([torch.stack([edit_noise(int(seed), k, s) for k in ks]) for s in range(len(sigmas))])
            out = run_passes(model, noises, one_hot([parent.class_id] * len(ks)), sigmas, layers)
            for j, k in enumerate(ks):
                if k < n:
                    plan.samples.append(EditSample(edit_sample_id("variations", digest, k), out.images[j], parent.class_id,
                                                   {layer: out.means[layer][j] for layer in out.means}, [parent.sample_id]))
            bar.update(min(n, start + block) - start)
    return _finish(lake_path, plan, parents, probe, requests, checkpoint, device, progress)


def class_swap(lake_path: str | os.PathLike[str], parent_id: str, classes: str | Sequence[int | str], *,
               probe: str | None = "all", checkpoint: str | None = None, device: str = "auto",
               progress: bool = True) -> EditOutcome:
    """The parent's noise (every step's) with another class: one sample per class, k = the class id."""
    from lake import open_lake

    from .generate import parse_class_list

    try:
        targets = parse_class_list(classes)
    except InputError as exc:
        raise InputError(str(exc).replace("--classes", "--class")) from None
    if not targets:
        raise InputError("--class: give at least one class (id, wnid or name)")
    _need_count(len(targets), 1, "--class (number of classes)")
    lake = open_lake(lake_path)
    parents = load_parents(lake, parse_ids(parent_id))
    if len(parents) != 1:
        raise InputError(f"--from: class swap starts from one sample, got {len(parents)}")
    parent = parents[0]
    _need_generated(parent, "class swap", from_generate=True)
    requests = parse_probe(lake, probe)
    model = load_edit_model(lake, parent.base_model, checkpoint, device)
    sigmas = parent.sigmas
    layers = _generation_layers(lake, model) if len(sigmas) == 1 else []
    digest = edit_digest(parent.model_id, "class_swap", [parent.sample_id], {})
    plan = EditPlan("class_swap", parent.model_id, model, -1, parameters={"classes": list(targets)})
    noises = parent_noises(parent)[:, None]  # (K, 1, 3, 64, 64)
    with _progress(len(targets), "class-swap", progress) as bar:
        for class_id in targets:  # one pass each: a class's sample never depends on the others asked for
            out = run_passes(model, noises, one_hot([class_id]), sigmas, layers)
            plan.samples.append(EditSample(edit_sample_id("class_swap", digest, class_id), out.images[0], class_id,
                                           {layer: out.means[layer][0] for layer in out.means}, [parent.sample_id]))
            bar.update(1)
    return _finish(lake_path, plan, parents, probe, requests, checkpoint, device, progress)


def interpolate(lake_path: str | os.PathLike[str], parent_ids: str | Sequence[str], n: int = 8, *,
                probe: str | None = "all", checkpoint: str | None = None, device: str = "auto",
                progress: bool = True) -> EditOutcome:
    """N points from A to B, ends included (t = k/(N-1)): slerp of every step's noise, linear mix of the one-hots.

    The sample's class_id is the nearer parent's (t < 0.5: A's); `lineage.weight` holds t.
    """
    import torch

    from lake import open_lake

    _need_count(n, 2)
    lake = open_lake(lake_path)
    parents = load_parents(lake, parse_ids(parent_ids))
    if len(parents) != 2:
        raise InputError(f"--from: interpolate needs exactly two generated samples A,B, got {len(parents)}")
    for parent in parents:
        _need_generated(parent, "interpolate", from_generate=True)
    a, b = parents
    if a.model_id != b.model_id:
        raise InputError(f"--from: {a.sample_id} and {b.sample_id} come from different models or schedules "
                         f"({a.model_id}, {b.model_id}); interpolate within one")
    requests = parse_probe(lake, probe)
    model = load_edit_model(lake, a.base_model, checkpoint, device)
    sigmas = a.sigmas
    layers = _generation_layers(lake, model) if len(sigmas) == 1 else []
    digest = edit_digest(a.model_id, "interpolate", [a.sample_id, b.sample_id], {"n": n})
    plan = EditPlan("interpolate", a.model_id, model, -1, parameters={"n": n, "ends": "included"})
    noise_a, noise_b = parent_noises(a).numpy(), parent_noises(b).numpy()
    label_a, label_b = one_hot([a.class_id]).numpy(), one_hot([b.class_id]).numpy()
    with _progress(n, "interpolate", progress) as bar:
        for k in range(n):  # one pass per point, so its bits do not depend on the others
            t = k / (n - 1)
            noises = torch.from_numpy(np.stack([slerp(noise_a[s], noise_b[s], t) for s in range(len(sigmas))]))[:, None]
            labels = torch.from_numpy(((1 - t) * label_a.astype(np.float64) + t * label_b).astype(np.float32))
            out = run_passes(model, noises, labels, sigmas, layers)
            sample = EditSample(edit_sample_id("interpolate", digest, k), out.images[0],
                                a.class_id if t < 0.5 else b.class_id, {layer: out.means[layer][0] for layer in out.means},
                                [a.sample_id, b.sample_id], weight=t)
            plan.samples.append(sample)
            bar.update(1)
    return _finish(lake_path, plan, parents, probe, requests, checkpoint, device, progress)


def _probe_noise_seed(lake: Lake) -> int:
    """The noise seed of the lake's probes (0 when it has none yet), so a real parent is probed as they were."""
    from .reconstruct import probe_setup

    try:
        return probe_setup(lake).noise_seed
    except InputError:
        return 0


def neighbours(lake_path: str | os.PathLike[str], parent_ids: str | Sequence[str], layer: str, *,
               mask: str | None = None, channels: str | Sequence[int] | None = None, sigma: float | str | None = None,
               probe: str | None = "all", checkpoint: str | None = None, device: str = "auto",
               progress: bool = True) -> EditOutcome:
    """Activation masking: generate from the first parent's noise and class with `layer`'s output replaced by the
    mean of every parent's output there (optionally only inside `mask` / for `channels`).

    Parents' maps are recomputed one sample per pass: a generated (one-step) parent's
    generation pass, a real parent's probe at `sigma` (its probe noise, its class; `sigma`
    is required when a real parent is given). The first parent must be a one-step sample of
    ``ingest generate``. With the first parent alone and no mask, the result is the parent.
    """
    import torch

    import models
    from lake import open_lake

    from .probe import layer_shapes, resolve_layer_flag
    from .reconstruct import block_inputs

    lake = open_lake(lake_path)
    parents = load_parents(lake, parse_ids(parent_ids))
    first = parents[0]
    _need_generated(first, "neighbours (its first sample, whose noise and class start the pass)", from_generate=True)
    if len(parents) > MAX_N:
        raise InputError(f"--from: at most {MAX_N} samples, got {len(parents)}")
    for parent in parents:
        if parent.source == "generated" and (not parent.from_generate or len(parent.sigmas) != 1):
            raise InputError(f"--from {parent.sample_id}: neighbours takes real samples and one-step samples of "
                             "`ingest generate` (whose generation pass it re-runs)")
        if parent.source == "generated" and parent.base_model != first.base_model:
            raise InputError(f"--from {parent.sample_id}: made by {parent.base_model}, the first sample by "
                             f"{first.base_model}; blend samples of one generator")
    real = [p for p in parents if p.source != "generated"]
    # Without a real parent the sigma plays no part (and is recorded as none); given anyway, it is still checked.
    probe_sigma = parse_sigma(sigma) if real or sigma is not None else math.nan
    requests = parse_probe(lake, probe)
    model = load_edit_model(lake, first.base_model, checkpoint, device)
    names = resolve_layer_flag(layer, model.module, "--layer")
    if len(names) != 1:
        raise InputError(f"--layer: give one block, got {layer!r}")
    name = names[0]
    c, h, w = layer_shapes(model.module, [name])[name]
    chosen_mask = parse_mask(mask, h, w)
    chosen_channels = parse_channels(channels, c)
    layers = _generation_layers(lake, model)
    noise_seed = _probe_noise_seed(lake)
    maps = []
    with _progress(len(parents) + 1, "neighbours", progress) as bar:
        for parent in parents:  # one pass per parent: its map is a function of that sample alone
            with torch.inference_mode(), models.capture(model.module, [name], stop_early=True) as acts:
                if parent.source == "generated":
                    x = parent_noises(parent)[0][None].to(model.device) * SIGMA_LIMIT
                    at = SIGMA_LIMIT
                else:
                    image = lake.images([parent.row])
                    x0, eps = block_inputs(image, [parent.sample_id], noise_seed, model.device)
                    x, at = x0 + probe_sigma * eps, probe_sigma
                model.module(x, torch.full((1,), float(at), device=model.device), one_hot([parent.class_id]).to(model.device))
            maps.append(acts[name][0].to(torch.float32))
            bar.update(1)
        mean = torch.stack(maps).mean(dim=0)
        replacement = {"layer": name, "value": mean,
                       "mask": None if chosen_mask is None else torch.from_numpy(chosen_mask),
                       "channels": chosen_channels}
        noises = parent_noises(first)[:, None]
        out = run_passes(model, noises, one_hot([first.class_id]), first.sigmas, layers, replacement)
        bar.update(1)
    mask_text = "" if chosen_mask is None else "".join("1" if v else "0" for v in chosen_mask.ravel())
    channel_text = "" if chosen_channels is None else ",".join(str(v) for v in chosen_channels)
    parameters = {"layer": name, "mask": mask_text, "channels": channel_text,
                  "sigma": probe_sigma if real else None, "noise_seed": noise_seed if real else None}
    digest = edit_digest(first.model_id, "neighbours", [p.sample_id for p in parents], parameters)
    plan = EditPlan("neighbours", first.model_id, model, -1, layer=name, mask=mask_text, channels=channel_text,
                    sigma=probe_sigma if real else math.nan, parameters={"noise_seed": noise_seed if real else None})
    plan.samples.append(EditSample(edit_sample_id("neighbours", digest, 0), out.images[0], first.class_id,
                                   {layer: out.means[layer][0] for layer in out.means}, [p.sample_id for p in parents]))
    return _finish(lake_path, plan, parents, probe, requests, checkpoint, device, progress)


def from_real(lake_path: str | os.PathLike[str], parent_ids: str | Sequence[str], sigma: float | str, *,
              probe: str | None = "all", checkpoint: str | None = None, device: str = "auto",
              progress: bool = True) -> EditOutcome:
    """Probe each real parent at `sigma` with its probe noise and keep the one-step denoised image.

    The network and noise seed are the lake's probes' (`ingest.reconstruct.load_probe_model`),
    and the pass runs the parent's probe compute block, so the image equals its stored
    reconstruction at that sigma bit for bit. One sample per parent.
    """
    import torch

    from lake import open_lake
    from lake.layout import SAMPLES_GROUP

    from .probe import ModelIdentity
    from .reconstruct import block_inputs, denoise_block, load_probe_model

    probe_sigma = parse_sigma(sigma)
    lake = open_lake(lake_path)
    parents = load_parents(lake, parse_ids(parent_ids))
    _need_count(len(parents), 1, "--from (number of samples)")
    for parent in parents:
        if parent.source != "real":
            raise InputError(f"--from {parent.sample_id}: from-real needs a real sample, this one is {parent.source}")
    requests = parse_probe(lake, probe)
    loaded = load_probe_model(lake, checkpoint=checkpoint, device=device)
    setup = loaded.setup
    identity = ModelIdentity(model_id=setup.model_id, preset=setup.preset, weights=setup.weights,
                             checkpoint_name=setup.checkpoint or None, checkpoint_sha256=setup.checkpoint_sha256 or None,
                             dtype=setup.dtype)
    recorded = _recorded_checkpoints(lake, setup.checkpoint_sha256) if setup.weights == "checkpoint" else []
    model = EditModel(loaded.module, loaded.device, identity, checkpoint or (recorded[0] if recorded else None))
    layers = _generation_layers(lake, model)
    parameters = {"sigma": probe_sigma, "noise_seed": setup.noise_seed}
    plan = EditPlan("from_real", setup.model_id, model, -1, sigma=probe_sigma, parameters=dict(parameters))
    ids = lake.sample_ids()
    block = setup.compute_block
    with _progress(len(parents), "from-real", progress) as bar:
        for parent in parents:
            start = parent.row - parent.row % block  # the probe's block: the same bits as the stored reconstruction
            rows = slice(start, min(start + block, len(ids)))
            x0, eps = block_inputs(lake.images(rows), ids[rows].tolist(), setup.noise_seed, model.device)
            labels = torch.from_numpy(lake.column(SAMPLES_GROUP, "class_id", rows).astype(np.int64))
            out = denoise_block(model.module, x0, eps, probe_sigma, labels, layers)
            at = parent.row - start
            digest = edit_digest(setup.model_id, "from_real", [parent.sample_id], parameters)
            plan.samples.append(EditSample(edit_sample_id("from_real", digest, 0), out.x0_hat[at].cpu().numpy(),
                                           parent.class_id,
                                           {layer: out.output.means[layer][at].cpu().numpy() for layer in layers},
                                           [parent.sample_id]))
            bar.update(1)
    return _finish(lake_path, plan, parents, probe, requests, checkpoint, device, progress)


# --------------------------------------------------------------------------- the command line


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from lake.cli import command

    parser = subparsers.add_parser(
        "edit", help="from a point back to the generator: regenerate, variations, class swap, interpolate, "
        "neighbour blends, from a real image",
        description="Make new samples from samples already in the lake (or check one): each operation writes its "
        "samples (split 'edited'), their lineage and generation means in one commit, then probes only them "
        "(--probe) so `python -m analysis place` can put them on the map. Rerunning the same edit adds nothing.")
    operations = parser.add_subparsers(dest="operation", required=True, metavar="OPERATION")

    def common(name: str, run: Any, help: str, description: str, from_help: str) -> argparse.ArgumentParser:
        sub = command(operations, name, run, help=help, description=description)
        add_lake_flag(sub)
        sub.add_argument("--from", dest="parents", required=True, metavar="ID[,ID...]", help=from_help)
        sub.add_argument("--checkpoint", default=None, metavar="PATH",
                         help="generator weights, when the lake's provenance does not locate them (the samples' "
                         "model id must match); not needed for seeded random weights")
        sub.add_argument("--device", default="auto",
                         help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps. Bits are reproducible on the "
                         "device type that made them")
        sub.add_argument("--no-progress", action="store_true", help="hide the progress bars")
        if name != "regenerate":
            sub.add_argument("--probe", default="all", metavar="all|none|KEY,KEY",
                             help="probe the new samples afterwards: all (default: every activations/<layer> group at "
                             "every sigma it has), none, or keys like enc.8x8_block2@sigma2")
        return sub

    common("regenerate", run_regenerate, "recompute stored generated samples and compare them bit for bit",
           "Recompute each sample of `ingest generate` from its id (model, schedule, seed, index) in its original "
           "compute block and compare with the stored image. Prints match or mismatch per sample; exit status 1 on "
           "any mismatch. Writes no sample, only a provenance record holding the results.",
           "comma-separated ids of generated samples (gen/<model>/s<seed>/<index>)")
    sub = common("variations", run_variations, "N new noise draws of a sample's class",
                 "N new samples of the parent's class, model and schedule, variation k with noise drawn from "
                 "(--seed, k) on a stream of their own; a real parent gets its class by the lake's probe model, in "
                 "one step. A larger --n later adds only the new variations.",
                 "one sample (generated, or real)")
    sub.add_argument("--n", type=int, default=8, metavar="N", help=f"how many variations, 1..{MAX_N} (default 8)")
    sub.add_argument("--seed", type=int, default=0, metavar="S", help="edit seed of the new noise draws (default 0)")
    sub = common("class-swap", run_class_swap, "the same noise with another class",
                 "One sample per --class: the parent's own noise (every step's, for a multi-step parent) conditioned "
                 "on that class instead.", "one sample of `ingest generate`")
    sub.add_argument("--class", dest="classes", required=True, metavar="C[,C...]",
                     help="target classes: ids 0..999, wnids or names, comma-separated")
    sub = common("interpolate", run_interpolate, "N steps between two generated samples",
                 "N samples from A to B, both ends included (t = 0, 1/(N-1), ..., 1; t=0 reproduces A, t=1 B): "
                 "spherical interpolation of their noise, linear interpolation of their class one-hot vectors.",
                 "two samples of `ingest generate` of one model and schedule: A,B")
    sub.add_argument("--n", type=int, default=8, metavar="N", help=f"points including both ends, 2..{MAX_N} (default 8)")
    sub = common("neighbours", run_neighbours, "generate with a block's output replaced by the samples' mean there",
                 "Activation masking: the mean of the --from samples' outputs at --layer (recomputed now: generated "
                 "samples by re-running their generation pass, real ones by probing them at --sigma) replaces that "
                 "block's output while the generator runs from the first sample's noise and class; optionally only "
                 "inside --mask and/or for --channels.",
                 "sample ids: the first a one-step sample of `ingest generate` (its noise and class), then any "
                 "generated or real ones (e.g. its neighbours)")
    sub.add_argument("--layer", required=True, metavar="L",
                     help="the block to replace (name or alias, e.g. bottleneck or enc.8x8_block2); an unknown one "
                     "lists the valid ones")
    sub.add_argument("--mask", default=None, metavar="0101...",
                     help="replace only where this row-major '0'/'1' string over the layer's H x W map has '1' "
                     "(64 characters for 8x8); default everywhere")
    sub.add_argument("--channels", default=None, metavar="LIST",
                     help="replace only these channels (comma-separated indices); default all")
    sub.add_argument("--sigma", default=None, metavar="S",
                     help="noise level at which real samples are probed for their maps, in (0, 80]; required when "
                     "--from holds a real sample")
    sub = common("from-real", run_from_real, "denoise a real image from noise level sigma in one step",
                 "Probe each real sample at --sigma exactly as `ingest activations` does (x0 + sigma*eps, eps from "
                 "the probes' noise seed and the sample id, its own class) and keep the one-step denoised image.",
                 "one or more real samples")
    sub.add_argument("--sigma", required=True, metavar="S", help="noise level in (0, 80], e.g. 10")


def _report(outcome: EditOutcome) -> None:
    kept = len(outcome.sample_ids) - outcome.added
    print(f"ingest edit {outcome.operation}: {outcome.added} new sample(s)"
          + (f", {kept} already in the lake" if kept else "") + f" (run {outcome.run_id})", file=sys.stderr)
    for sample_id in outcome.sample_ids:
        print(sample_id)


def _common(args: argparse.Namespace) -> dict[str, Any]:
    return {"probe": args.probe, "checkpoint": args.checkpoint, "device": args.device, "progress": not args.no_progress}


def run_regenerate(args: argparse.Namespace) -> int:
    """`python -m ingest edit regenerate`: one line per sample; status 1 on any mismatch."""
    results = regenerate(args.lake, args.parents, checkpoint=args.checkpoint, device=args.device)
    for result in results:
        print(result.message(), file=sys.stdout if result.match else sys.stderr)
    return 0 if all(r.match for r in results) else 1


def run_variations(args: argparse.Namespace) -> None:
    _report(variations(args.lake, args.parents, args.n, seed=args.seed, **_common(args)))


def run_class_swap(args: argparse.Namespace) -> None:
    _report(class_swap(args.lake, args.parents, args.classes, **_common(args)))


def run_interpolate(args: argparse.Namespace) -> None:
    _report(interpolate(args.lake, args.parents, args.n, **_common(args)))


def run_neighbours(args: argparse.Namespace) -> None:
    _report(neighbours(args.lake, args.parents, args.layer, mask=args.mask, channels=args.channels, sigma=args.sigma,
                       **_common(args)))


def run_from_real(args: argparse.Namespace) -> None:
    _report(from_real(args.lake, args.parents, args.sigma, **_common(args)))
