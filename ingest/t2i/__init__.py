"""`python -m ingest generate-t2i`: text-to-image DMD2 samples (SDXL, SD v1.5), their prompts and activations.

A run plans its samples prompt-major (prompt 0's indices 0..N-1, then prompt 1's, ...) over the
distinct prompts of its sources (`ingest.t2i.prompts`). Sample (prompt, index) of a seed has the id
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

The modules, one concept each:

    cli.py      add_parser (the flags) and run (flags -> typed arguments)
    spec.py     T2IModelSpec, T2ISettings: generate_t2i's typed arguments
    prompts.py  prompt sources: .txt/.csv files, --prompt, --prompts-from-classes (collect_prompts)
    plan.py     pure planning: timesteps, default name, --layers, samples, compute blocks
    prepare.py  every rank's start: check the base, load the model, resolve sites, measure shapes (T2IJob)
    compute.py  the compute loop every rank runs: blocks through the network, packed, gathered
    write.py    rank 0: open and check the tables, plan what is missing, append each step in one commit
    job.py      generate_t2i: check the arguments, prepare, then write (rank 0) or compute (other ranks)
"""
from __future__ import annotations

from .cli import add_parser, run
from .compute import T2IBatch, T2IJob, compute_steps, probe_shapes
from .job import generate_t2i
from .plan import (T2I_COMPUTE_BLOCK, ComputeBlock, PlannedSample, compute_blocks, default_name, parse_layers,
                   parse_timesteps, plan_samples)
from .prompts import DEFAULT_TEMPLATE, PromptList, PromptSpec, collect_prompts
from .spec import T2IModelSpec, T2ISettings
from .write import IDENTITY_KEYS, identity_attrs, samples_rows

__all__ = [
    "add_parser", "run", "generate_t2i", "T2IModelSpec", "T2ISettings", "T2IJob", "T2IBatch", "compute_steps",
    "probe_shapes", "T2I_COMPUTE_BLOCK", "ComputeBlock", "PlannedSample", "compute_blocks", "default_name",
    "parse_layers", "parse_timesteps", "plan_samples", "DEFAULT_TEMPLATE", "PromptList", "PromptSpec",
    "collect_prompts", "IDENTITY_KEYS", "identity_attrs", "samples_rows",
]
