"""Resolving the (layer, sigma) table an analysis runs on.

The key itself (``<layer>@sigma<sigma:g>``, `AnalysisKey`) and every result group's path
belong to the lake's layout (`lake.layout`); they are re-exported here for callers that
import them from analysis. This module adds what the commands need on top: aliases,
defaults and one-line errors naming what the lake holds.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from lake.layout import AnalysisKey, format_sigma
from lake.layout import parse_key as _parse_key
from lake.reader import sigma_position
from lake.schema import LAYER_ALIASES  # torch-free, shared with models/

from .errors import AnalysisError

__all__ = [
    "LAYER_ALIASES",
    "AnalysisKey",
    "available_layers",
    "available_sigmas",
    "canonical_layer",
    "format_sigma",
    "parse_key",
    "resolve_key",
    "sigma_index",
]


def parse_key(text: str) -> AnalysisKey:
    """Inverse of `AnalysisKey.name` (`lake.layout.parse_key`), raising AnalysisError."""
    try:
        return _parse_key(text)
    except ValueError as exc:
        raise AnalysisError(str(exc)) from None


def canonical_layer(layer: str) -> str:
    """The canonical block name for an alias (``bottleneck``), or the name unchanged."""
    return LAYER_ALIASES.get(layer, layer)


def available_layers(lake: Any) -> list[str]:
    """Layers with an activation table in the lake (``activations/<layer>`` groups)."""
    return list(lake.activation_layers())


def available_sigmas(lake: Any, layer: str) -> list[float]:
    """The noise levels stored for one layer, in table order."""
    return list(lake.activation_sigmas(layer))


# Position of a sigma among the stored float32 sigmas (None when absent).
sigma_index = sigma_position


def resolve_key(lake: Any, layer: str | None, sigma: float | None) -> tuple[AnalysisKey, list[str]]:
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
    key = AnalysisKey(layer, 0.0)
    sigmas = available_sigmas(lake, layer)
    if not sigmas:
        raise AnalysisError(f"{lake_name}: {key.activations_group} has no sigma values")
    if sigma is None:
        sigma = sigmas[0]
        notes.append(f"--sigma not given; using {format_sigma(sigma)}" + ("" if len(sigmas) == 1 else f" (the first of {', '.join(format_sigma(s) for s in sigmas)})"))
    else:
        index = sigma_index(sigmas, sigma)
        if index is None:
            raise AnalysisError(
                f"{lake_name}: {key.activations_group} has no sigma {format_sigma(sigma)}; it has: {', '.join(format_sigma(s) for s in sigmas)}"
            )
        sigma = sigmas[index]
    return AnalysisKey(layer, float(np.float32(sigma))), notes
