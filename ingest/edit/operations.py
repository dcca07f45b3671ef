"""The edit operations, each a plain function: compute everything first (`EditPlan`), then write and
probe (`ingest.edit.write.finish`). `regenerate` only checks stored samples and writes no sample.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lake.layout import edit_sample_id

from ..core.forward import one_hot, run_passes
from ..core.generation import SIGMA_LIMIT
from ..core.recorded import (
    RunModel,
    load_model_id,
    load_probe_model,
    probe_identity,
    probe_setup,
    recorded_checkpoints,
)
from ..errors import InputError
from ..options import parse_class_list
from .parents import (
    MAX_N,
    Parent,
    base_model_of,
    edit_noise,
    load_parents,
    need_count,
    need_generated,
    parent_noises,
    parse_channels,
    parse_ids,
    parse_mask,
    parse_sigma,
    schedule_of,
    slerp,
)
from .plan import EditOutcome, EditPlan, EditSample, edit_digest, generation_layers, parse_probe, probe_noise_seed
from .write import finish, progress_bar

if TYPE_CHECKING:
    from lake import Lake


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

    from lake import LakeWriter, Provenance, open_lake
    from lake.layout import SAMPLES_GROUP

    from ..core.generation import ClassPlan, generate_indices

    lake = open_lake(lake_path)
    parents = load_parents(lake, parse_ids(sample_ids))
    for parent in parents:
        need_generated(parent, "regenerate", from_generate=True)
    records = {p.sample_id: _generate_record(lake, p) for p in parents}
    models_by_id: dict[str, RunModel] = {}
    results = []
    for parent in parents:
        if parent.base_model not in models_by_id:
            models_by_id[parent.base_model] = load_model_id(lake, parent.base_model, checkpoint, device)
        model = models_by_id[parent.base_model]
        params = records[parent.sample_id]
        classes = params.get("classes")
        plan = ClassPlan(parent.seed, params.get("samples_per_class"), tuple(classes) if classes else None)
        block = int(params.get("compute_block") or 8)
        assert parent.index is not None
        start = parent.index - parent.index % block
        indices = np.arange(start, start + block, dtype=np.int64)
        class_ids = torch.from_numpy(plan.classes_of(indices))
        out = generate_indices(model.module, model.device, parent.seed, indices, class_ids, parent.sigmas, [])
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

    from ..core.models import compute_block

    need_count(n, 1)
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
        model_id = probe_setup(lake).model_id
    requests = parse_probe(lake, probe)
    model = load_model_id(lake, base_model_of(model_id), checkpoint, device)
    sigmas = schedule_of(model_id)
    layers = generation_layers(lake, model) if len(sigmas) == 1 else []
    digest = edit_digest(model_id, "variations", [parent.sample_id], {"seed": int(seed)})
    plan = EditPlan("variations", model_id, model, int(seed), parameters={"n": n})
    block = compute_block(model.device)
    with progress_bar(n, "variations", progress) as bar:
        for start in range(0, n, block):
            ks = list(range(start, start + block))  # a whole block, as generate does: k's bits never depend on N
            noises = torch.stack([torch.stack([edit_noise(int(seed), k, s) for k in ks]) for s in range(len(sigmas))])
            out = run_passes(model, noises, one_hot([parent.class_id] * len(ks)), sigmas, layers)
            for j, k in enumerate(ks):
                if k < n:
                    plan.samples.append(EditSample(edit_sample_id("variations", digest, k), out.images[j], parent.class_id,
                                                   {layer: out.means[layer][j] for layer in out.means}, [parent.sample_id]))
            bar.update(min(n, start + block) - start)
    return finish(lake_path, plan, parents, probe, requests, checkpoint, device, progress)


def class_swap(lake_path: str | os.PathLike[str], parent_id: str, classes: str | Sequence[int | str], *,
               probe: str | None = "all", checkpoint: str | None = None, device: str = "auto",
               progress: bool = True) -> EditOutcome:
    """The parent's noise (every step's) with another class: one sample per class, k = the class id."""
    from lake import open_lake

    try:
        targets = parse_class_list(classes)
    except InputError as exc:
        raise InputError(str(exc).replace("--classes", "--class")) from None
    if not targets:
        raise InputError("--class: give at least one class (id, wnid or name)")
    need_count(len(targets), 1, "--class (number of classes)")
    lake = open_lake(lake_path)
    parents = load_parents(lake, parse_ids(parent_id))
    if len(parents) != 1:
        raise InputError(f"--from: class swap starts from one sample, got {len(parents)}")
    parent = parents[0]
    need_generated(parent, "class swap", from_generate=True)
    requests = parse_probe(lake, probe)
    model = load_model_id(lake, parent.base_model, checkpoint, device)
    sigmas = parent.sigmas
    layers = generation_layers(lake, model) if len(sigmas) == 1 else []
    digest = edit_digest(parent.model_id, "class_swap", [parent.sample_id], {})
    plan = EditPlan("class_swap", parent.model_id, model, -1, parameters={"classes": list(targets)})
    noises = parent_noises(parent)[:, None]  # (K, 1, 3, 64, 64)
    with progress_bar(len(targets), "class-swap", progress) as bar:
        for class_id in targets:  # one pass each: a class's sample never depends on the others asked for
            out = run_passes(model, noises, one_hot([class_id]), sigmas, layers)
            plan.samples.append(EditSample(edit_sample_id("class_swap", digest, class_id), out.images[0], class_id,
                                           {layer: out.means[layer][0] for layer in out.means}, [parent.sample_id]))
            bar.update(1)
    return finish(lake_path, plan, parents, probe, requests, checkpoint, device, progress)


def interpolate(lake_path: str | os.PathLike[str], parent_ids: str | Sequence[str], n: int = 8, *,
                probe: str | None = "all", checkpoint: str | None = None, device: str = "auto",
                progress: bool = True) -> EditOutcome:
    """N points from A to B, ends included (t = k/(N-1)): slerp of every step's noise, linear mix of the one-hots.

    The sample's class_id is the nearer parent's (t < 0.5: A's); `lineage.weight` holds t.
    """
    import torch

    from lake import open_lake

    need_count(n, 2)
    lake = open_lake(lake_path)
    parents = load_parents(lake, parse_ids(parent_ids))
    if len(parents) != 2:
        raise InputError(f"--from: interpolate needs exactly two generated samples A,B, got {len(parents)}")
    for parent in parents:
        need_generated(parent, "interpolate", from_generate=True)
    a, b = parents
    if a.model_id != b.model_id:
        raise InputError(f"--from: {a.sample_id} and {b.sample_id} come from different models or schedules "
                         f"({a.model_id}, {b.model_id}); interpolate within one")
    requests = parse_probe(lake, probe)
    model = load_model_id(lake, a.base_model, checkpoint, device)
    sigmas = a.sigmas
    layers = generation_layers(lake, model) if len(sigmas) == 1 else []
    digest = edit_digest(a.model_id, "interpolate", [a.sample_id, b.sample_id], {"n": n})
    plan = EditPlan("interpolate", a.model_id, model, -1, parameters={"n": n, "ends": "included"})
    noise_a, noise_b = parent_noises(a).numpy(), parent_noises(b).numpy()
    label_a, label_b = one_hot([a.class_id]).numpy(), one_hot([b.class_id]).numpy()
    with progress_bar(n, "interpolate", progress) as bar:
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
    return finish(lake_path, plan, parents, probe, requests, checkpoint, device, progress)


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

    from lake import open_lake

    from ..core.forward import block_inputs, layer_map
    from ..core.models import layer_shapes, resolve_layer_flag

    lake = open_lake(lake_path)
    parents = load_parents(lake, parse_ids(parent_ids))
    first = parents[0]
    need_generated(first, "neighbours (its first sample, whose noise and class start the pass)", from_generate=True)
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
    model = load_model_id(lake, first.base_model, checkpoint, device)
    names = resolve_layer_flag(layer, model.module, "--layer")
    if len(names) != 1:
        raise InputError(f"--layer: give one block, got {layer!r}")
    name = names[0]
    c, h, w = layer_shapes(model.module, [name])[name]
    chosen_mask = parse_mask(mask, h, w)
    chosen_channels = parse_channels(channels, c)
    layers = generation_layers(lake, model)
    noise_seed = probe_noise_seed(lake)
    maps = []
    with progress_bar(len(parents) + 1, "neighbours", progress) as bar:
        for parent in parents:  # one pass per parent: its map is a function of that sample alone
            if parent.source == "generated":
                x = parent_noises(parent)[0][None].to(model.device) * SIGMA_LIMIT
                at = SIGMA_LIMIT
            else:
                image = lake.images([parent.row])
                x0, eps = block_inputs(image, [parent.sample_id], noise_seed, model.device)
                x, at = x0 + probe_sigma * eps, probe_sigma
            maps.append(layer_map(model.module, x, at, one_hot([parent.class_id]), name))
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
    return finish(lake_path, plan, parents, probe, requests, checkpoint, device, progress)


def from_real(lake_path: str | os.PathLike[str], parent_ids: str | Sequence[str], sigma: float | str, *,
              probe: str | None = "all", checkpoint: str | None = None, device: str = "auto",
              progress: bool = True) -> EditOutcome:
    """Probe each real parent at `sigma` with its probe noise and keep the one-step denoised image.

    The network and noise seed are the lake's probes' (`ingest.core.recorded.load_probe_model`),
    and the pass runs the parent's probe compute block, so the image equals its stored
    reconstruction at that sigma bit for bit. One sample per parent.
    """
    import torch

    from lake import open_lake
    from lake.layout import SAMPLES_GROUP

    from ..core.forward import block_inputs, denoise_block

    probe_sigma = parse_sigma(sigma)
    lake = open_lake(lake_path)
    parents = load_parents(lake, parse_ids(parent_ids))
    need_count(len(parents), 1, "--from (number of samples)")
    for parent in parents:
        if parent.source != "real":
            raise InputError(f"--from {parent.sample_id}: from-real needs a real sample, this one is {parent.source}")
    requests = parse_probe(lake, probe)
    loaded = load_probe_model(lake, checkpoint=checkpoint, device=device)
    setup = loaded.setup
    identity = probe_identity(setup)
    recorded = recorded_checkpoints(lake, setup.checkpoint_sha256) if setup.weights == "checkpoint" else []
    model = RunModel(loaded.module, loaded.device, identity, checkpoint or (recorded[0] if recorded else None))
    layers = generation_layers(lake, model)
    parameters = {"sigma": probe_sigma, "noise_seed": setup.noise_seed}
    plan = EditPlan("from_real", setup.model_id, model, -1, sigma=probe_sigma, parameters=dict(parameters))
    ids = lake.sample_ids()
    block = setup.compute_block
    with progress_bar(len(parents), "from-real", progress) as bar:
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
    return finish(lake_path, plan, parents, probe, requests, checkpoint, device, progress)
