"""The typed arguments of `generate_t2i`: which model to load (`T2IModelSpec`) and how to sample and capture
(`T2ISettings`); `ingest.t2i.cli.run` builds both from the flags."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class T2IModelSpec:
    """Which text-to-image model to load, where: what --base/--checkpoint/--lora/--family/--device/--dtype say."""

    base: str
    checkpoint: str | None = None
    lora: str | None = None
    family: str | None = None  # None: detected from the base folder (given: checked against it)
    device: str = "auto"
    dtype: str = "fp32"


@dataclass(frozen=True)
class T2ISettings:
    """How to sample and what to capture; everything but the model and the prompts."""

    name: str | None = None  # None: dmd2-<family>-<K>step[-lora]
    samples_per_prompt: int = 1
    seed: int = 0
    steps: int | str | None = None
    timesteps: str | Sequence[int] | None = None
    guidance: float = 0.0
    height: int | None = None
    width: int | None = None
    layers: str | Sequence[str] | None = None  # None: the family's default sites; "none": no capture
    residual: bool = False
    spatial: int = 0
    step_previews: bool = True
    batch_size: int = 16
    progress: bool = True
