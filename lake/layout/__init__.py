"""The lake's layout: every group path, the analysis key, every id grammar and every table spec, in one place.

Nothing outside `lake/` spells a group path or builds a table spec by hand: jobs and
analyses ask this module where things go and what they look like, and read them back
through the typed readers of `lake.reader.Lake`. Schema version 1 (docs/lake.md):

    samples/                          one row per image (SAMPLES): image + labels
    generation/<layer>/               per generated sample: the generation pass's channel means
    activations/<layer>/              per probed sample: mean (sample, sigma, channel), probed, labels
    analysis/pca/<key>/               PCA scores (sample, component) + the fitted transform
    analysis/embeddings/<key>/<name>/ UMAP coordinates (sample, axis); <name> = umap2d-n15-d0.1-...
    analysis/knn/<key>/               k-NN graph (sample, k)
    analysis/compare/<key>/           real vs generated per sample, plus per-class metrics (class)
    analysis/clusters/<key>/          k-means cluster of each sample's PCA scores (sample)
    analysis/prompts/<name>/          per prompt of text-to-image model <name>: cluster and 2-D map
                                      of the pooled text embeddings (prompt)
    provenance/<run_id>/              one job's record (attributes only)

A *key* is ``<layer>@sigma<sigma:g>`` (`AnalysisKey`, `parse_key`): one (layer, sigma)
slice of an activation table, the unit every analysis works on. Every per-sample
analysis table carries the label columns (`LABEL_COLUMNS`) in the PCA table's row order.

Noise axis (docs/lake.md):

    trajectories/<schedule>/          per multi-step sample: x0_hat (sample, sigma, y, x, channel), one
                                      entry per step along ``sigma`` (the step's input sigma, decreasing)
    trajectories/<schedule>/<layer>/  the generation pass's channel means per step (sample, sigma, channel)
    reconstructions/                  per probed sample and sigma: the noisy input and D's one-step x0_hat
    analysis/trajectory/<layer>/      one embedding of every sigma of a layer (sample, sigma, axis),
                                      plus per-sigma scores (trustworthiness, jump) along ``sigma``
    analysis/trajectory/<layer>/<schedule>/  the steps of a schedule placed in that same embedding

A *schedule* is the strictly decreasing list of input sigmas of a k-step sampler, named
by `schedule_id` (``sigmas80-20-5-1.5``), or EDM's Heun sampler, named by `HeunSchedule`
(``heun18``, ``heun256-churn40``; its ``sigma`` axis holds the sigma each step's first
network pass saw). One-step samples (schedule ``[80]``) have no trajectory group:
``samples`` and ``generation/<layer>`` already are their single step. A trajectories group
holds one model; a model other than the lake's first names its layer groups
``<model>.<layer>``, as everywhere else.

Edits and placement (docs/lake.md):

    lineage/                          one row per sample made from other samples (variations, class
                                      swap, interpolation, neighbour blends, ...): operation, parents
    analysis/placed/<key>/            samples projected through the key's stored PCA (scores), not fitted
    analysis/placed/<key>/<name>/     the same samples placed in the stored embedding <name>

Edited samples are ordinary rows of ``samples`` (source ``generated``, split ``edited``);
their lineage is a linked table joined on ``sample_id`` rather than a ``samples`` column,
so lakes made before edits existed need no migration. Their parents are
``parent_ids`` (comma-separated sample ids). A placed point is never a fitted one: fitted
rows stay in ``analysis/pca``/``embeddings``, placed rows live under ``analysis/placed``.

Text-to-image models (SDXL, SD v1.5; docs/lake.md), one folder per model *name*:

    t2i/<name>/samples                per sample: the prompt coordinates (prompt_id, prompt,
                                      negative_prompt, guidance, seed, index, class_id), the image
                                      at its native size (sample, y, x, channel) and, optionally,
                                      a preview of every step's x0 (sample, timestep, preview_y,
                                      preview_x, channel); the attributes are the model identity
                                      (family, base, UNet and LoRA hashes, timesteps, size)
    t2i/<name>/prompts                per distinct prompt: its text and the pooled text embedding
                                      (prompt, feature), the prompt feature analyses cluster
    activations/<name>.<module>       per sample and step: the module's channel means along
                                      ``sigma`` (each step's EDM-equivalent noise level
                                      sqrt((1 - abar_t) / abar_t)), optionally pooled s x s maps
    activations/<name>.<module>+update  the same for the block's residual update (output - input)

Every text-to-image sample is also an ordinary ``samples`` row (source ``generated``, split
``t2i``, model_id ``<name>``) whose ``image`` is a 64x64 thumbnail (centre square, area
resampled), so thumbnails, the explorer and notebooks work unchanged; ``class_id`` is the
ImageNet class a ``--prompts-from-classes`` prompt names, else -1. Its id is
``t2i/<name>/<prompt_id>/s<seed>/<index>`` (`t2i_sample_id`), a stable function of (model,
prompt, seed, index); ``prompt_id`` is a hash of the prompt and negative prompt (`prompt_id`).
A name holds one model identity and one image size: another UNet, LoRA or size needs
another name. Its activation tables are ordinary ``activations/<layer>`` tables whose
layer is ``<name>.<module>`` (`t2i_layer`), so every analysis (keys
``<name>.<module>@sigma<s>``), the joint embedding over steps and the explorer work on
them unchanged; the step-to-timestep map is in their ``timesteps``/``sigmas`` attributes.

Several models probing the same real images (DMD2 student, EDM teacher, checkpoints):

    models/                           one row per registered model (`models_spec`, `ModelRecord`):
                                      name (the registry key, a t2i-style name), kind (imagenet64,
                                      t2i), preset, weights (random, checkpoint), weights_sha256,
                                      source (checkpoint path as given), label, schedule (schedule
                                      id, '' for one step), model_id, seed (-1 unless random)

Rows are in registration order (`Lake.models()`; ``models()[0]`` is the lake's first model) and
written once (`lake.model_registry.register_model`: the same record again is a no-op, another
record under a registered name is refused). ``activations/<layer>`` belongs to one model (its
``model_id`` attribute, checked on every append). Another model's probes go to
``activations/<name>.<layer>`` (`model_layer`, `split_model_layer`), as text-to-image models'
tables do, so results of both models sit side by side under ``analysis/<kind>/``. Which model
keeps the unprefixed groups (the first) is the ingest side's policy. Lakes made before the
registry have no ``models`` group and read as having no registered model.

Judgements of two models' images (the explorer's A/B page):

    ratings/                          one row per rating (`ratings_spec`, `lake.ratings`): rating_id,
                                      first/second_sample_id and _model, choice (first, second,
                                      tie), left (the side shown first), rater, rated_at

The package, by concept (every name is importable from ``lake.layout`` itself): `paths`
(group paths, the analysis key, schedule ids), `ids` (sample-id and model-id grammars and
their parsers), `tables` (samples, generation, activations, trajectories, reconstructions, ratings,
lineage), `analysis_tables` (the analysis results), `t2i` (text-to-image models), `registry`
(the ``models`` table and model-qualified layer names).
"""
from __future__ import annotations

from ..schema import IMAGE_CODEC, IMAGES_PER_CHUNK, STRING, ColumnSpec, TableSpec
from .analysis_tables import (
    LABEL_COLUMNS,
    PLACED_NEIGHBOURS,
    cka_spec,
    clusters_spec,
    compare_spec,
    embedding_spec,
    joint_embedding_spec,
    knn_spec,
    label_column_specs,
    neighbourhood_spec,
    pca_spec,
    SET_METRICS,
    sets_spec,
    placed_embedding_spec,
    placed_spec,
    prompt_clusters_spec,
)
from .ids import (
    MODEL_NAME_PATTERN,
    ModelIdParts,
    ONE_STEP_SCHEDULE,
    SAMPLE_KINDS,
    SampleId,
    SampleKind,
    checkpoint_model_id,
    edit_sample_id,
    generated_id_prefix,
    generated_sample_id,
    heun_model_id,
    jpeg_sample_id,
    npz_sample_id,
    parse_generated_id,
    parse_model_id,
    parse_sample_id,
    prompt_id,
    random_model_id,
    schedule_model_id,
    t2i_sample_id,
)
from .paths import (
    ACTIVATIONS_GROUP,
    ANALYSIS_GROUP,
    ANALYSIS_KINDS,
    AnalysisKey,
    GENERATION_GROUP,
    IMAGE_SIZE,
    KEY_SEPARATOR,
    LINEAGE_GROUP,
    RATINGS_GROUP,
    MODELS_GROUP,
    PROVENANCE_GROUP,
    RECONSTRUCTIONS_GROUP,
    SAMPLES_GROUP,
    T2I_GROUP,
    TRAJECTORIES_GROUP,
    activations_group,
    analysis_group,
    analysis_prefix,
    HEUN_PREFIX,
    HeunSchedule,
    check_schedule_id,
    child_name,
    cka_group,
    format_sigma,
    generation_group,
    joint_embedding_group,
    key_pair,
    model_pair_key,
    neighbourhood_group,
    parse_key,
    parse_heun_schedule_id,
    parse_schedule_id,
    provenance_group,
    schedule_id,
    SETS_SEPARATOR,
    sets_group,
    sets_name,
    staging_group,
    trajectory_group,
    trajectory_layer_group,
)
from .registry import (
    MODEL_COLUMNS,
    MODEL_KINDS,
    MODEL_WEIGHTS,
    RESERVED_MODEL_NAMES,
    ModelRecord,
    check_model_name,
    check_model_record,
    is_generator_block,
    model_layer,
    model_record,
    models_spec,
    split_model_layer,
)
from .t2i import (
    RESIDUAL_SUFFIX,
    T2I_PREVIEW_MAX,
    T2I_PROBE,
    T2I_SPLIT,
    T2I_THUMBNAIL_SIZE,
    check_t2i_name,
    preview_size,
    split_t2i_layer,
    t2i_activations_spec,
    t2i_group,
    t2i_layer,
    t2i_prompts_group,
    t2i_prompts_spec,
    t2i_samples_group,
    t2i_samples_spec,
)
from .tables import (
    DENOISER_PROBE,
    EDIT_OPERATIONS,
    FLOAT_CODEC,
    GENERATION_PROBE,
    IMAGE_DESCRIPTION,
    LayerShape,
    RECONSTRUCTION_PROBE,
    SAMPLES,
    SAMPLE_SOURCES,
    TARGET_CHUNK_BYTES,
    TRAJECTORY_PROBE,
    activations_spec,
    generation_spec,
    lineage_spec,
    RATING_CHOICES,
    ratings_spec,
    reconstructions_spec,
    rows_per_chunk,
    trajectory_layer_spec,
    trajectory_spec,
)

__all__ = [
    "ACTIVATIONS_GROUP",
    "ANALYSIS_GROUP",
    "ANALYSIS_KINDS",
    "AnalysisKey",
    "ColumnSpec",
    "DENOISER_PROBE",
    "EDIT_OPERATIONS",
    "FLOAT_CODEC",
    "GENERATION_GROUP",
    "GENERATION_PROBE",
    "IMAGES_PER_CHUNK",
    "IMAGE_CODEC",
    "IMAGE_DESCRIPTION",
    "IMAGE_SIZE",
    "KEY_SEPARATOR",
    "LABEL_COLUMNS",
    "LINEAGE_GROUP",
    "RATINGS_GROUP",
    "RATING_CHOICES",
    "LayerShape",
    "MODELS_GROUP",
    "MODEL_COLUMNS",
    "MODEL_KINDS",
    "MODEL_NAME_PATTERN",
    "MODEL_WEIGHTS",
    "ModelIdParts",
    "ModelRecord",
    "ONE_STEP_SCHEDULE",
    "PLACED_NEIGHBOURS",
    "PROVENANCE_GROUP",
    "RECONSTRUCTIONS_GROUP",
    "RECONSTRUCTION_PROBE",
    "RESERVED_MODEL_NAMES",
    "RESIDUAL_SUFFIX",
    "SAMPLES",
    "SAMPLES_GROUP",
    "SAMPLE_KINDS",
    "SAMPLE_SOURCES",
    "STRING",
    "SampleId",
    "SampleKind",
    "T2I_GROUP",
    "T2I_PREVIEW_MAX",
    "T2I_PROBE",
    "T2I_SPLIT",
    "T2I_THUMBNAIL_SIZE",
    "TARGET_CHUNK_BYTES",
    "TRAJECTORIES_GROUP",
    "TRAJECTORY_PROBE",
    "TableSpec",
    "activations_group",
    "activations_spec",
    "analysis_group",
    "analysis_prefix",
    "check_model_name",
    "check_model_record",
    "check_t2i_name",
    "checkpoint_model_id",
    "HEUN_PREFIX",
    "HeunSchedule",
    "check_schedule_id",
    "child_name",
    "cka_group",
    "cka_spec",
    "clusters_spec",
    "compare_spec",
    "edit_sample_id",
    "embedding_spec",
    "format_sigma",
    "generated_id_prefix",
    "generated_sample_id",
    "heun_model_id",
    "generation_group",
    "generation_spec",
    "joint_embedding_group",
    "joint_embedding_spec",
    "jpeg_sample_id",
    "knn_spec",
    "label_column_specs",
    "is_generator_block",
    "lineage_spec",
    "ratings_spec",
    "model_layer",
    "model_record",
    "models_spec",
    "npz_sample_id",
    "parse_generated_id",
    "key_pair",
    "model_pair_key",
    "neighbourhood_group",
    "neighbourhood_spec",
    "parse_key",
    "parse_model_id",
    "parse_sample_id",
    "parse_heun_schedule_id",
    "parse_schedule_id",
    "pca_spec",
    "placed_embedding_spec",
    "placed_spec",
    "preview_size",
    "prompt_clusters_spec",
    "prompt_id",
    "provenance_group",
    "random_model_id",
    "reconstructions_spec",
    "rows_per_chunk",
    "schedule_id",
    "SETS_SEPARATOR",
    "SET_METRICS",
    "sets_group",
    "sets_name",
    "sets_spec",
    "schedule_model_id",
    "split_model_layer",
    "split_t2i_layer",
    "staging_group",
    "t2i_activations_spec",
    "t2i_group",
    "t2i_layer",
    "t2i_prompts_group",
    "t2i_prompts_spec",
    "t2i_sample_id",
    "t2i_samples_group",
    "t2i_samples_spec",
    "trajectory_group",
    "trajectory_layer_group",
    "trajectory_layer_spec",
    "trajectory_spec",
]
