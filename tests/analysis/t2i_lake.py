"""Small text-to-image lakes for the analysis tests, written through the committed layout.

The tables are the ones `python -m ingest generate-t2i` writes (README "Text-to-image
models"): ``t2i/<name>/samples`` and ``t2i/<name>/prompts`` (`t2i_samples_spec`,
`t2i_prompts_spec`), ``activations/<name>.<module>`` along the steps' sigmas
(`t2i_activations_spec`) and the ordinary ``samples`` rows (source generated, split t2i).
Activations and pooled embeddings are synthetic with a known cluster structure: prompt p
belongs to topic p % n_topics, and a sample's activations at every step are its topic's
centre plus noise, so clusters can be checked against the topics.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lake import SAMPLES, LakeWriter, Provenance
from lake.layout import (
    T2I_SPLIT,
    LayerShape,
    prompt_id,
    t2i_activations_spec,
    t2i_prompts_spec,
    t2i_sample_id,
    t2i_samples_spec,
)

SDXL_TIMESTEPS = (999, 749, 499, 249)
# sqrt((1 - abar_t) / abar_t) of SDXL's scaled-linear schedule at those timesteps (not round numbers, as in real lakes).
SDXL_SIGMAS = (14.614646, 3.3307815, 1.0, 0.29118)
MID = "mid_block.attentions.0"
DOWN = "down_blocks.2.attentions.1"


@dataclass
class T2IModel:
    """What was written for one model: prompts, topics and sample ids in table order."""

    name: str
    prompts: list[str]
    prompt_ids: list[str]
    topic: np.ndarray  # per prompt
    sample_ids: list[str]
    sample_topic: np.ndarray  # per sample
    pooled: np.ndarray


def write_t2i_model(lake: Path, name: str = "dmd2-sdxl-4step", family: str = "sdxl", n_prompts: int = 12,
                    samples_per_prompt: int = 4, n_topics: int = 3, channels: int = 16, pooled_dim: int = 32,
                    modules: tuple[str, ...] = (MID, DOWN), timesteps: tuple[int, ...] = SDXL_TIMESTEPS,
                    sigmas: tuple[float, ...] = SDXL_SIGMAS, write_prompts: bool = True, seed: int = 0,
                    family_in_activations: bool = True) -> T2IModel:
    """Append one text-to-image model's tables to `lake` (created if needed)."""
    rng = np.random.default_rng(seed)
    prompts = [f"a photo of topic {p % n_topics} variant {p}" for p in range(n_prompts)]
    ids = [prompt_id(p) for p in prompts]
    topic = np.arange(n_prompts) % n_topics
    directions = rng.normal(0, 1, (n_topics, pooled_dim))
    # Pooled embeddings differ in scale per prompt (normalisation must not care) but point to their topic.
    pooled = (directions[topic] + 0.15 * rng.normal(0, 1, (n_prompts, pooled_dim))) * rng.uniform(0.5, 20, (n_prompts, 1))
    sample_prompt = np.repeat(np.arange(n_prompts), samples_per_prompt)
    sample_index = np.tile(np.arange(samples_per_prompt), n_prompts)
    sample_ids = [t2i_sample_id(name, ids[p], 7, int(i)) for p, i in zip(sample_prompt, sample_index)]
    n = len(sample_ids)
    identity = {"family": family, "base_sha256": "0" * 64, "unet_sha256": "1" * 64, "lora_sha256": "",
                "timesteps": list(timesteps), "sigmas": list(sigmas), "height": 32, "width": 32, "guidance": 0.0}
    centres = rng.normal(0, 5, (n_topics, channels))
    with LakeWriter.open(lake, Provenance(job="test t2i")) as writer:
        writer.table(t2i_samples_spec(name, 32, 32, timesteps, identity, step_previews=False)).append({
            "image": np.zeros((n, 32, 32, 3), np.uint8), "sample_id": np.asarray(sample_ids, dtype=object),
            "prompt_id": np.asarray([ids[p] for p in sample_prompt], dtype=object),
            "prompt": np.asarray([prompts[p] for p in sample_prompt], dtype=object),
            "negative_prompt": np.full(n, "", dtype=object), "guidance": np.zeros(n, np.float32),
            "seed": np.full(n, 7, np.int64), "index": sample_index.astype(np.int64), "class_id": np.full(n, -1, np.int16)})
        if write_prompts:
            writer.table(t2i_prompts_spec(name, pooled_dim, identity)).append({
                "pooled": pooled.astype(np.float32), "prompt_id": np.asarray(ids, dtype=object),
                "prompt": np.asarray(prompts, dtype=object), "negative_prompt": np.full(n_prompts, "", dtype=object),
                "class_id": np.full(n_prompts, -1, np.int16)})
        layer_attrs = identity if family_in_activations else {k: v for k, v in identity.items() if k != "family"}
        for m, module in enumerate(modules):
            values = np.stack([centres[topic[sample_prompt]] * (1 + s) + m + rng.normal(0, 1, (n, channels)) for s in range(len(sigmas))], axis=1)
            writer.table(t2i_activations_spec(name, module, LayerShape(channels, 1, 1), timesteps, sigmas, False, layer_attrs)).append({
                "mean": values.astype(np.float32), "probed": np.ones((n, len(sigmas)), bool),
                "sample_id": np.asarray(sample_ids, dtype=object), "source": np.full(n, "generated", dtype=object),
                "class_id": np.full(n, -1, np.int16)})
        writer.table(SAMPLES).append({
            "image": np.zeros((n, 64, 64, 3), np.uint8), "sample_id": np.asarray(sample_ids, dtype=object),
            "source": np.full(n, "generated", dtype=object), "split": np.full(n, T2I_SPLIT, dtype=object),
            "class_id": np.full(n, -1, np.int16), "wnid": np.full(n, "", dtype=object), "class_name": np.full(n, "", dtype=object),
            "origin": np.asarray([f"t2i {name}: {prompts[p]}" for p in sample_prompt], dtype=object),
            "seed": np.full(n, 7, np.int64), "model_id": np.full(n, name, dtype=object)})
        writer.commit()
    return T2IModel(name, prompts, ids, topic, sample_ids, topic[sample_prompt], pooled)
