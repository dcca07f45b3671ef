"""Rank 0's side of `ingest generate-t2i`: open and check every table the run writes, plan what they lack,
then append each write step's rows to all of them in one commit.

The tables: the 64x64 thumbnails in ``samples`` (split ``t2i``), native images, step previews and
prompt coordinates in ``t2i/<name>/samples``, new prompts' pooled embeddings in
``t2i/<name>/prompts``, and each capture site's per-step channel means in
``activations/<name>.<module>`` (and ``+update``). A table's identity attributes
(`IDENTITY_KEYS`) must match the run's, or the run is refused before anything is written.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..ranks import Failure  # rank 0's "cannot start" message, as `ingest generate` sends it
from .compute import T2IBatch, T2IJob, compute_steps
from .plan import PlannedSample, compute_blocks, plan_samples
from .spec import T2IModelSpec, T2ISettings


# Identity attributes of t2i/<name>: a run with other values would put other pictures under the same ids.
IDENTITY_KEYS = ("family", "base_sha256", "unet_sha256", "lora_sha256", "timesteps", "height", "width", "guidance")


def identity_attrs(job: T2IJob) -> dict[str, Any]:
    """What t2i/<name>'s tables record about the model (checked on every append: `IDENTITY_KEYS`)."""
    return {**{k: str(v) for k, v in job.model.identity.items()}, "model_key": job.model.model_key,
            "name": job.name, "timesteps": [int(t) for t in job.timesteps], "sigmas": list(job.sigmas),
            "height": int(job.height), "width": int(job.width), "guidance": float(job.guidance),
            "compute_block": job.block}


@dataclass
class _Tables:
    """The run's open tables and the sample ids each already holds (kept up to date as steps append rows)."""

    t2i: Any  # t2i/<name>/samples
    prompts: Any  # t2i/<name>/prompts
    samples: Any  # samples
    layers: dict[str, Any]  # activation layer name -> table
    present: dict[str, set[str]]  # "t2i" and each activation layer -> the sample ids it holds
    existing: set[str]  # the samples table's ids
    stored_prompts: set[str]  # the prompt ids t2i/<name>/prompts holds


def write_lake(lake: str | os.PathLike[str], spec: T2IModelSpec, settings: T2ISettings, job: T2IJob, ranks: Any) -> None:
    """Rank 0: open and check every table, plan what is missing, tell the other ranks, then append and commit."""
    from lake import LakeWriter

    from ..overlap import write_behind
    from ..pipeline import progress_bar

    attrs = identity_attrs(job)
    planned = plan_samples(len(job.prompts), settings.samples_per_prompt)
    plan_sent = False
    try:
        with LakeWriter.open(lake, _provenance(spec, settings, job, ranks, attrs)) as writer:
            tables = _open_tables(writer, job, attrs)
            needed = _missing_samples(job, tables, planned)
            blocks = compute_blocks(needed, job.block)
            wanted = set(needed)
            ranks.broadcast((blocks, wanted))
            plan_sent = True

            with progress_bar(len(needed), "ingest generate-t2i", disable=not settings.progress) as bar:

                def write(batch: T2IBatch) -> None:
                    _append_step(job, tables, batch)
                    writer.commit()  # one commit for every table's rows of this step
                    bar.update(len(batch.samples))

                # This thread computes (and joins the other ranks' gathers); batch k is written while k+1 is made.
                write_behind(compute_steps(job, blocks, wanted, ranks), write)
    except BaseException:
        if not plan_sent:
            ranks.broadcast(Failure())
        raise


def _provenance(spec: T2IModelSpec, settings: T2ISettings, job: T2IJob, ranks: Any, attrs: dict[str, Any]) -> Any:
    """The run's provenance record: the checkpoint and LoRA files (with the digests the model computed) and
    every parameter that shapes the rows."""
    from lake import InputFile, Provenance

    inputs = []
    for path, digest in ((spec.checkpoint, job.model.identity.get("unet_sha256", "")),
                         (spec.lora, job.model.identity.get("lora_sha256", ""))):
        if path:
            inputs.append(InputFile(path=str(Path(path).resolve()), size=Path(path).stat().st_size, sha256=digest))
    return Provenance(
        job="ingest generate-t2i", inputs=inputs,
        parameters={**attrs, "base_path": str(Path(spec.base).resolve()), "prompts": len(job.prompts),
                    "samples_per_prompt": settings.samples_per_prompt, "seed": job.seed, "layers": job.sites,
                    "residual": job.residual, "spatial": job.spatial, "step_previews": job.step_previews,
                    "dtype": spec.dtype, "device": str(job.model.device), "processes": ranks.count},
    )


def _open_tables(writer: Any, job: T2IJob, attrs: dict[str, Any]) -> _Tables:
    """Open (creating if needed) every table of the run, refusing one made with another identity or settings."""
    from lake.layout import SAMPLES, t2i_prompts_spec, t2i_samples_group, t2i_samples_spec

    group = t2i_samples_group(job.name)
    _check_samples_table(writer.attrs(group), group, attrs, job.step_previews)
    t2i = writer.table(t2i_samples_spec(job.name, job.height, job.width, job.timesteps,
                                        {**attrs, "step_previews": job.step_previews}, job.step_previews))
    prompts = writer.table(t2i_prompts_spec(job.name, job.pooled_dim, attrs))
    layers = _open_activation_tables(writer, job, attrs)
    samples = writer.table(SAMPLES)
    return _Tables(t2i=t2i, prompts=prompts, samples=samples, layers=layers,
                   present={"t2i": set(t2i.keys()), **{layer: set(table.keys()) for layer, table in layers.items()}},
                   existing=set(samples.keys()), stored_prompts=set(prompts.keys()))


def _missing_samples(job: T2IJob, tables: _Tables, planned: list[PlannedSample]) -> list[PlannedSample]:
    """The planned samples some table lacks, in plan order."""
    return [s for s in planned if (sample_id := job.sample_id(s)) not in tables.existing
            or any(sample_id not in have for have in tables.present.values())]


def _append_step(job: T2IJob, tables: _Tables, batch: T2IBatch) -> None:
    """One write step's rows, each to every table that lacks them (the caller commits)."""
    sample_ids = [job.sample_id(s) for s in batch.samples]
    specs = [job.prompts[s.prompt] for s in batch.samples]
    _append_activations(job, tables, batch, sample_ids, specs)
    _append_t2i_samples(job, tables, batch, sample_ids, specs)
    _append_prompts(tables, batch, specs)
    _append_samples(job, tables, batch, sample_ids, specs)


def _missing(sample_ids: list[str], have: set[str]) -> list[int]:
    """Rows of this step whose sample id `have` lacks."""
    return [k for k, sample_id in enumerate(sample_ids) if sample_id not in have]


def _append_activations(job: T2IJob, tables: _Tables, batch: T2IBatch, sample_ids: list[str], specs: list[Any]) -> None:
    """Each site's per-step channel means (and residual updates, spatial maps) to its activation tables."""
    for layer, (site, kind) in _layer_sources(job).items():
        rows = _missing(sample_ids, tables.present[layer])
        if not rows:
            continue
        values = (batch.updates if kind == "update" else batch.means)[site][rows]
        activation: dict[str, Any] = {
            "mean": values, "probed": np.ones(values.shape[:2], dtype=bool),
            "sample_id": [sample_ids[k] for k in rows], "source": ["generated"] * len(rows),
            "class_id": np.array([specs[k].class_id for k in rows], dtype=np.int16)}
        if job.spatial and kind == "mean":
            activation["spatial"] = batch.spatial[site][rows].astype(np.float16)
        tables.layers[layer].append(activation)
        tables.present[layer].update(sample_ids[k] for k in rows)


def _append_t2i_samples(job: T2IJob, tables: _Tables, batch: T2IBatch, sample_ids: list[str], specs: list[Any]) -> None:
    """Native images, step previews and prompt coordinates to t2i/<name>/samples."""
    rows = _missing(sample_ids, tables.present["t2i"])
    if not rows:
        return
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
    tables.t2i.append(columns)
    tables.present["t2i"].update(sample_ids[k] for k in rows)


def _append_prompts(tables: _Tables, batch: T2IBatch, specs: list[Any]) -> None:
    """Each prompt of this step not stored yet, with its pooled embedding, to t2i/<name>/prompts."""
    new_prompts: dict[str, int] = {}  # prompt_id -> first row of this batch with it
    for k, p in enumerate(specs):
        if p.prompt_id not in tables.stored_prompts and p.prompt_id not in new_prompts:
            new_prompts[p.prompt_id] = k
    if not new_prompts:
        return
    first = list(new_prompts.values())
    tables.prompts.append({
        "pooled": batch.pooled[first], "prompt_id": list(new_prompts),
        "prompt": [specs[k].prompt for k in first],
        "negative_prompt": [specs[k].negative_prompt for k in first],
        "class_id": np.array([specs[k].class_id for k in first], dtype=np.int16)})
    tables.stored_prompts.update(new_prompts)


def _append_samples(job: T2IJob, tables: _Tables, batch: T2IBatch, sample_ids: list[str], specs: list[Any]) -> None:
    """The 64x64 thumbnails, with the lake's common sample columns, to samples (split t2i)."""
    from lake.layout import T2I_SPLIT

    from ..pipeline import SampleBatch

    rows = _missing(sample_ids, tables.existing)
    if not rows:
        return
    tables.samples.append(samples_rows(SampleBatch(
        images=batch.thumbnails[rows], sample_ids=[sample_ids[k] for k in rows],
        class_ids=np.array([specs[k].class_id for k in rows], dtype=np.int16),
        origins=[f"t2i {job.name}: {specs[k].prompt}" for k in rows], source="generated",
        split=T2I_SPLIT, seed=job.seed, model_id=job.name)))
    tables.existing.update(sample_ids[k] for k in rows)


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
    from ..activation_store import check_identity

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

    from ..activation_store import check_identity

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
