"""Naming the (layer, sigma) tables an analysis runs on, and the groups its results live in.

A *key* is ``<layer>@sigma<sigma:g>`` (e.g. ``enc.8x8_block2@sigma2``); every result of
one activation table is stored under that key (see README "analysis/...").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import AnalysisError

from lake.schema import LAYER_ALIASES  # torch-free, shared with models/

ACTIVATIONS_PREFIX = "activations"
PCA_PREFIX = "analysis/pca"
EMBEDDINGS_PREFIX = "analysis/embeddings"
KNN_PREFIX = "analysis/knn"
COMPARE_PREFIX = "analysis/compare"


def format_sigma(sigma: float) -> str:
    """The sigma as it appears in keys: float32 value printed with ``%g`` (2, 0.5, 80)."""
    return f"{float(np.float32(sigma)):g}"


@dataclass(frozen=True)
class AnalysisKey:
    """One (layer, sigma) activation table: the unit every analysis works on."""

    layer: str
    sigma: float

    @property
    def name(self) -> str:
        return f"{self.layer}@sigma{format_sigma(self.sigma)}"

    @property
    def activations_group(self) -> str:
        return f"{ACTIVATIONS_PREFIX}/{self.layer}"

    @property
    def pca_group(self) -> str:
        return f"{PCA_PREFIX}/{self.name}"

    @property
    def knn_group(self) -> str:
        return f"{KNN_PREFIX}/{self.name}"

    @property
    def compare_group(self) -> str:
        return f"{COMPARE_PREFIX}/{self.name}"

    @property
    def embeddings_group(self) -> str:
        return f"{EMBEDDINGS_PREFIX}/{self.name}"

    def embedding_group(self, name: str) -> str:
        return f"{EMBEDDINGS_PREFIX}/{self.name}/{name}"

    def __str__(self) -> str:
        return self.name


def parse_key(text: str) -> AnalysisKey:
    """Inverse of `AnalysisKey.name`."""
    layer, sep, sigma = text.rpartition("@sigma")
    if not sep or not layer:
        raise AnalysisError(f"{text!r}: not an analysis key; expected <layer>@sigma<sigma>, e.g. enc.8x8_block2@sigma2")
    try:
        return AnalysisKey(layer, float(np.float32(sigma)))
    except ValueError:
        raise AnalysisError(f"{text!r}: sigma {sigma!r} is not a number") from None


def canonical_layer(layer: str) -> str:
    """The canonical block name for an alias (``bottleneck``), or the name unchanged."""
    return LAYER_ALIASES.get(layer, layer)


def available_layers(lake: object) -> list[str]:
    """Layers with an activation table in the lake (``activations/<layer>`` groups)."""
    prefix = ACTIVATIONS_PREFIX + "/"
    return [g[len(prefix):] for g in lake.groups(ACTIVATIONS_PREFIX) if g.count("/") == 1]  # type: ignore[attr-defined]


def available_sigmas(lake: object, layer: str) -> list[float]:
    """The noise levels stored for one layer, in table order."""
    values = lake.column(f"{ACTIVATIONS_PREFIX}/{layer}", "sigma")  # type: ignore[attr-defined]
    return [float(v) for v in np.asarray(values, dtype=np.float32)]


def sigma_index(sigmas: list[float], sigma: float) -> int | None:
    """Position of `sigma` among the stored float32 sigmas (None when absent)."""
    target = np.float32(sigma)
    for i, s in enumerate(sigmas):
        if np.float32(s) == target or np.isclose(np.float32(s), target, rtol=1e-6, atol=0):
            return i
    return None


def resolve_key(lake: object, layer: str | None, sigma: float | None) -> tuple[AnalysisKey, list[str]]:
    """Check (layer, sigma) against the lake, filling in omitted values.

    Returns the key and notes to show the user (what was picked, or which alias was used).
    Raises AnalysisError with one line listing what the lake holds when the pair is unknown.
    """
    notes: list[str] = []
    layers = available_layers(lake)
    lake_name = getattr(lake, "path", "lake")
    if not layers:
        raise AnalysisError(f"{lake_name}: holds no activation tables (activations/<layer>); run `python -m ingest activations` first")
    if layer is None:
        layer = layers[0]
        notes.append(f"--layer not given; using {layer}" + ("" if len(layers) == 1 else f" (the first of {', '.join(layers)})"))
    else:
        canonical = canonical_layer(layer)
        if canonical not in layers:
            raise AnalysisError(f"{lake_name}: no activations for layer {layer!r}; the lake has: {', '.join(layers)}")
        if canonical != layer:
            notes.append(f"layer {layer} = {canonical}")
        layer = canonical
    sigmas = available_sigmas(lake, layer)
    if not sigmas:
        raise AnalysisError(f"{lake_name}: activations/{layer} has no sigma values")
    if sigma is None:
        sigma = sigmas[0]
        notes.append(f"--sigma not given; using {format_sigma(sigma)}" + ("" if len(sigmas) == 1 else f" (the first of {', '.join(format_sigma(s) for s in sigmas)})"))
    else:
        index = sigma_index(sigmas, sigma)
        if index is None:
            raise AnalysisError(
                f"{lake_name}: activations/{layer} has no sigma {format_sigma(sigma)}; it has: {', '.join(format_sigma(s) for s in sigmas)}"
            )
        sigma = sigmas[index]
    return AnalysisKey(layer, float(np.float32(sigma))), notes
