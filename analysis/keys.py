"""Resolving the (layer, sigma) table an analysis runs on.

The key itself (``<layer>@sigma<sigma:g>``, `AnalysisKey`) and every result group's path
belong to the lake's layout (`lake.layout`); they are re-exported here for callers that
import them from analysis. This module adds what the commands need on top: aliases,
defaults and one-line errors naming what the lake holds.

Text-to-image tables (``activations/<name>.<module>``, docs/lake.md "Text-to-image models") are
keyed the same way; on top of that a layer may name its capture site by the family's alias
(``dmd2-sdxl-4step.mid`` = ``dmd2-sdxl-4step.mid_block.attentions.0``,
`lake.schema.T2I_SITE_ALIASES`), and a noise level may be given as the step's *timestep*
(the table's ``timesteps``/``sigmas`` attributes map one to the other).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from lake.layout import (
    RESIDUAL_SUFFIX,
    AnalysisKey,
    activations_group,
    format_sigma,
    model_layer,
    split_model_layer,
    split_t2i_layer,
    t2i_layer,
)
from lake.layout import parse_key as _parse_key
from lake.reader import sigma_position
from lake.schema import LAYER_ALIASES, T2I_SITE_ALIASES  # torch-free, shared with models/

from .errors import AnalysisError

__all__ = [
    "LAYER_ALIASES",
    "T2I_SITE_ALIASES",
    "AnalysisKey",
    "available_layers",
    "available_sigmas",
    "canonical_layer",
    "describe_layer",
    "format_sigma",
    "parse_key",
    "resolve_key",
    "resolve_layer",
    "sigma_index",
    "t2i_family",
    "t2i_site_alias",
    "t2i_timesteps",
    "timestep_of_sigma",
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


def _sigma_position(sigmas: list[float], sigma: float) -> int | None:
    """`sigma_index`, also accepting a sigma as keys and `list` print it (``%g``: 6 digits).

    Text-to-image sigmas are not round (timestep 999 of SDXL is sigma 14.6146...), so the
    printed form, e.g. from a key ``...@sigma14.6146``, must find its table too.
    """
    index = sigma_index(sigmas, sigma)
    if index is None:
        printed = [i for i, s in enumerate(sigmas) if format_sigma(s) == format_sigma(sigma)]
        index = printed[0] if len(printed) == 1 else None
    return index


# --------------------------------------------------------------------------- text-to-image tables


def t2i_family(lake: Any, name: str) -> str | None:
    """The family (``sdxl``, ``sd15``) of text-to-image model `name`: its activation tables' or samples' attrs."""
    for layer in available_layers(lake):
        attrs = lake.attrs(activations_group(layer))
        if attrs.get("t2i_model") == name and attrs.get("family"):
            return str(attrs["family"])
    family = lake.t2i_model(name).get("family") if hasattr(lake, "t2i_model") else None
    return str(family) if family else None


def t2i_site_alias(lake: Any, layer: str) -> str | None:
    """``<name>.<alias>[+update]`` of a text-to-image layer whose module has a site alias, else None."""
    parts = split_t2i_layer(layer)
    if parts is None:
        return None
    name, module, residual = parts
    family = t2i_family(lake, name)
    for candidate in [family] if family in T2I_SITE_ALIASES else list(T2I_SITE_ALIASES):
        for alias, target in T2I_SITE_ALIASES[candidate].items():
            if target == module:
                return t2i_layer(name, alias, residual)
    return None


def t2i_timesteps(lake: Any, layer: str) -> dict[float, int] | None:
    """{stored sigma: timestep} of a text-to-image table (from its attrs), None for other tables."""
    attrs = lake.attrs(activations_group(layer))
    timesteps, sigmas = attrs.get("timesteps"), attrs.get("sigmas")
    if not timesteps or not sigmas or len(timesteps) != len(sigmas):
        return None
    return {float(np.float32(s)): int(t) for s, t in zip(sigmas, timesteps)}


def timestep_of_sigma(lake: Any, layer: str, sigma: float) -> int | None:
    """The timestep whose noise level is `sigma` in a text-to-image table (None: not one, or not such a table)."""
    mapping = t2i_timesteps(lake, layer)
    if not mapping:
        return None
    index = _sigma_position(list(mapping), sigma)
    return None if index is None else list(mapping.values())[index]


def describe_layer(lake: Any, layer: str) -> str:
    """`layer` as error messages list it: with its site alias when it has one (``x.mid_block.attentions.0 (x.mid)``)."""
    alias = t2i_site_alias(lake, layer)
    return layer if alias is None else f"{layer} ({alias})"


def _t2i_candidates(lake: Any, layers: list[str], name: str, site: str, residual: bool) -> list[str]:
    """Layers of model `name` in the lake that the site alias `site` names (its family's, else any family's)."""
    family = t2i_family(lake, name)
    families = [family] if family in T2I_SITE_ALIASES else list(T2I_SITE_ALIASES)
    found = {t2i_layer(name, T2I_SITE_ALIASES[f][site], residual) for f in families if site in T2I_SITE_ALIASES[f]}
    return sorted(found & set(layers))


def resolve_layer(lake: Any, layer: str, layers: list[str] | None = None) -> tuple[str, list[str]]:
    """The canonical ``activations/<layer>`` name that `layer` means, with a note when it was an alias.

    Accepted: a stored layer; an ImageNet alias (``bottleneck``), also of a second
    registered model (``teacher.bottleneck`` = ``teacher.enc.8x8_block2``); a text-to-image layer
    with its site alias (``dmd2-sdxl-4step.mid``, ``...mid+update``); a bare site alias
    (``down2.attn1``) when exactly one text-to-image model of the lake has that site.
    Raises AnalysisError with one line listing the lake's layers otherwise.
    """
    layers = available_layers(lake) if layers is None else layers
    lake_name = getattr(lake, "path", "lake")
    if layer in layers:
        return layer, []
    canonical = canonical_layer(layer)
    if canonical in layers:
        return canonical, [f"layer {layer} = {canonical}"]
    model, block = split_model_layer(layer)
    if model is not None and model_layer(model, canonical_layer(block)) in layers:  # teacher.bottleneck
        qualified = model_layer(model, canonical_layer(block))
        return qualified, [f"layer {layer} = {qualified}"]
    parts = split_t2i_layer(layer)
    if parts is not None:
        name, site, residual = parts
        found = _t2i_candidates(lake, layers, name, site, residual)
        if len(found) == 1:
            return found[0], [f"layer {layer} = {found[0]} (site alias of {t2i_family(lake, name) or 'its family'})"]
    site, residual = layer.removesuffix(RESIDUAL_SUFFIX), layer.endswith(RESIDUAL_SUFFIX)
    models = sorted({parts[0] for other in layers if (parts := split_t2i_layer(other)) is not None})
    found = [match for model in models for match in _t2i_candidates(lake, layers, model, site, residual)]
    if len(found) == 1:
        return found[0], [f"layer {layer} = {found[0]} (the only text-to-image model with site {site})"]
    if len(found) > 1:
        options = ", ".join(t2i_layer(model, site, residual) for model in models
                            if _t2i_candidates(lake, layers, model, site, residual))
        raise AnalysisError(f"{lake_name}: layer {layer!r} is a site of several text-to-image models; name one: {options}")
    raise AnalysisError(f"{lake_name}: no activations for layer {layer!r}; the lake has: {', '.join(describe_layer(lake, x) for x in layers)}")


def _sigma_list(sigmas: list[float], timesteps: dict[float, int] | None) -> str:
    if timesteps:
        return ", ".join(f"{format_sigma(s)} (timestep {timesteps[float(np.float32(s))]})" if float(np.float32(s)) in timesteps
                         else format_sigma(s) for s in sigmas)
    return ", ".join(format_sigma(s) for s in sigmas)


def resolve_key(lake: Any, layer: str | None, sigma: float | None, timestep: int | None = None) -> tuple[AnalysisKey, list[str]]:
    """Check (layer, sigma) against the lake, filling in omitted values.

    `timestep` names the noise level of a text-to-image table by its step's timestep
    instead of `sigma` (give one of the two). Returns the key and notes to show the user
    (what was picked, which alias was used; when the sigma was picked, that note is the
    last). Raises AnalysisError with one line listing what the lake holds when the pair
    is unknown.
    """
    notes: list[str] = []
    layers = available_layers(lake)
    lake_name = getattr(lake, "path", "lake")
    if not layers:
        raise AnalysisError(f"{lake_name}: holds no activation tables (activations/<layer>); run `python -m ingest activations` first")
    if sigma is not None and timestep is not None:
        raise AnalysisError("give --sigma or --timestep, not both")
    if layer is None:
        layer = layers[0]
        notes.append(f"--layer not given; using {describe_layer(lake, layer)}" + ("" if len(layers) == 1 else f" (the first of {', '.join(layers)})"))
    else:
        layer, alias_notes = resolve_layer(lake, layer, layers)
        notes += alias_notes
    key = AnalysisKey(layer, 0.0)
    sigmas = available_sigmas(lake, layer)
    if not sigmas:
        raise AnalysisError(f"{lake_name}: {key.activations_group} has no sigma values")
    timesteps = t2i_timesteps(lake, layer)
    if timestep is not None:
        if not timesteps:
            raise AnalysisError(f"{lake_name}: --timestep applies to text-to-image tables; {key.activations_group} is indexed by sigma only "
                                f"(use --sigma: {_sigma_list(sigmas, None)})")
        matches = [s for s, t in timesteps.items() if t == int(timestep)]
        index = sigma_index(sigmas, matches[0]) if matches else None
        if index is None:
            have = [timesteps[float(np.float32(s))] for s in sigmas if float(np.float32(s)) in timesteps]
            raise AnalysisError(f"{lake_name}: {key.activations_group} has no timestep {timestep}; it has: {', '.join(str(t) for t in have)}")
        sigma = sigmas[index]
        notes.append(f"--timestep {timestep} = sigma {format_sigma(sigma)}")
    elif sigma is None:
        sigma = sigmas[0]
        step = f" = timestep {timesteps[float(np.float32(sigma))]}" if timesteps and float(np.float32(sigma)) in timesteps else ""
        notes.append(f"--sigma not given; using {format_sigma(sigma)}{step}"
                     + ("" if len(sigmas) == 1 else f" (the first of {_sigma_list(sigmas, timesteps)})"))
    else:
        index = _sigma_position(sigmas, sigma)
        if index is None:
            raise AnalysisError(f"{lake_name}: {key.activations_group} has no sigma {format_sigma(sigma)}; it has: {_sigma_list(sigmas, timesteps)}")
        sigma = sigmas[index]
    return AnalysisKey(layer, float(np.float32(sigma))), notes
