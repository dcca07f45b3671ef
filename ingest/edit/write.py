"""Writing an edit: its samples, lineage and generation means in one commit, then probing only them.

Everything is computed before the lake is opened for writing (`ingest.edit.plan.EditPlan`), so a
job killed while computing leaves the lake as it was; killed while probing, its samples are
committed and the rerun only finishes the probes.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InputError
from .parents import Parent
from .plan import EditOutcome, EditPlan, ProbeRequest

SPLIT = "edited"


def write_edit(lake_path: str | os.PathLike[str], plan: EditPlan, provenance: Any) -> int:
    """Append the plan's samples not yet in the lake, their lineage and generation means, in one commit.

    Returns the number of samples added. Rows of `lineage` or ``generation/<layer>`` missing for
    samples already present (none, unless written by hand) are filled in too, so a rerun
    always ends complete.
    """
    from lake import SAMPLES, LakeWriter, open_lake
    from lake.layout import LINEAGE_GROUP, LayerShape, generation_group, lineage_spec

    from ..activation_store import open_generation_table
    from ..core.registry import model_table_layer
    from ..pipeline import SampleBatch

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
        blocks = sorted({block for s in plan.samples for block in s.means})
        committed = open_lake(lake_path)
        for block in blocks:
            layer = model_table_layer(committed, identity["model_id"], block)  # teacher.enc..., or the block itself
            attrs = writer.attrs(generation_group(layer)) or {}
            if attrs.get("model_id") != identity["model_id"]:
                continue  # a group of another model's generation: these samples are not its to hold
            channels = int(plan.samples[0].means[block].shape[0])
            height, width = _resolution(plan.model.module, block)
            table = open_generation_table(writer, layer, LayerShape(channels, height, width), attrs)
            missing = [s for s in plan.samples if s.sample_id not in set(table.keys().tolist())]
            if missing:
                table.append({"mean": np.stack([s.means[block] for s in missing]),
                              "sample_id": [s.sample_id for s in missing],
                              "class_id": np.array([s.class_id for s in missing], dtype=np.int16)})
    return len(new)


def _resolution(module: Any, layer: str) -> tuple[int, int]:
    from ..core.models import layer_shapes

    _, height, width = layer_shapes(module, [layer])[layer]
    return height, width


def probe_new(lake_path: str | os.PathLike[str], sample_ids: Sequence[str], requests: Sequence[ProbeRequest], *,
              checkpoint: str | None = None, device: str = "auto", progress: bool = True) -> None:
    """Probe only `sample_ids` with the lake's probe model, as `requests` say (`probe_activations`)."""
    from lake import open_lake

    from lake.layout import split_model_layer

    from ..core.models import ModelSpec
    from ..core.recorded import find_checkpoint, probe_setup
    from ..core.registry import registered_name
    from ..probing import probe_activations

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
        # The probes' own model: a second registered model's tables (teacher.<block>) are probed under its name.
        spec = ModelSpec(preset=setup.preset, checkpoint=path, device=device, dtype=setup.dtype,
                         name=registered_name(lake, setup.model_id))
        probe_activations(lake_path, spec, [split_model_layer(layer)[1] for layer in request.layers],
                          list(request.sigmas), source="all", noise_seed=request.noise_seed,
                          keep_spatial=request.keep_spatial, progress=progress, sample_ids=list(sample_ids))


def edit_provenance(plan: EditPlan, parents: Sequence[Parent], probe: str | None) -> Any:
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


def finish(lake_path: str | os.PathLike[str], plan: EditPlan, parents: Sequence[Parent], probe: str | None,
            requests: list[ProbeRequest], checkpoint: str | None, device: str, progress: bool) -> EditOutcome:
    """Write the plan (one commit), then probe its samples."""
    provenance = edit_provenance(plan, parents, probe)
    added = write_edit(lake_path, plan, provenance)
    ids = [s.sample_id for s in plan.samples]
    if requests:
        probe_new(lake_path, ids, requests, checkpoint=checkpoint, device=device, progress=progress)
    return EditOutcome(plan.operation, ids, added, provenance.run_id)


def progress_bar(total: int, operation: str, progress: bool) -> Any:
    from ..pipeline import progress_bar as bar

    return bar(total, f"ingest edit {operation}", disable=not progress)
