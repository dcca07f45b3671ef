"""Every table spec that `lake.layout` declares, built with placeholder names, by group pattern.

`specs()` calls each public ``*_spec`` function of `lake.layout` (and takes each `TableSpec`
constant) with sentinel arguments chosen by parameter name, and turns the sentinels in the
resulting group path back into the placeholders the docs use (`activations/<layer>`,
`analysis/pca/<key>`, ...). A spec function with a parameter this module does not know fails
loudly, so a new kind of table cannot slip past the schema test unnoticed.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import lake.layout as layout
from lake.schema import TableSpec

# Sentinels that pass the layout's name checks, and the placeholder each stands for in the docs.
LAYER, NAME, MODULE, SCHEDULE, FIRST, SECOND = "zzlayer", "zzname", "zzmodule", "sigmas80-20", "zzfirst", "zzsecond"
KEY = layout.AnalysisKey(LAYER, 2.0)
# A CKA table names two models and a sigma; a neighbourhood table two keys; a sets table two generated sets
# (`first`/`second` fill each).
PLACEHOLDERS = ((layout.model_pair_key(FIRST, SECOND, 2.0), "<first>~<second>@sigma<s>"),
                (layout.sets_name(FIRST, SECOND), "<first>__vs__<second>"),
                (layout.key_pair(FIRST, SECOND), "<first key>~<second key>"), (str(KEY), "<key>"), (SCHEDULE, "<schedule>"), (LAYER, "<layer>"), (NAME, "<name>"), (MODULE, "<module>"))

ARGUMENTS: dict[str, Any] = {
    "layer": LAYER,
    "name": NAME,
    "module": MODULE,
    "schedule": SCHEDULE,
    "key": KEY,
    "shape": layout.LayerShape(4, 2, 2),
    "sigmas": (80.0, 20.0),
    "timesteps": (999, 499),
    "keep_spatial": True,
    "step_previews": True,
    "residual": False,
    "attrs": {},
    "n_components": 2,
    "k": 3,
    "height": 64,
    "width": 64,
    "pooled_dim": 4,
    "first": FIRST,
    "second": SECOND,
    "sigma": 2.0,
    "first_layers": ("enc.8x8_block2",),
    "second_layers": ("zzsecond.enc.8x8_block2",),
}
# Optional parameters that choose another group (each value given is one more table).
VARIANTS: dict[str, tuple[Any, ...]] = {"schedule": (None, SCHEDULE), "residual": (False, True)}


@dataclass(frozen=True)
class Documentable:
    """One table as the docs must describe it: its group pattern, dimensions, columns and fixed attributes."""

    builder: str
    pattern: str
    dims: frozenset[str]
    columns: frozenset[str]
    attributes: frozenset[str]


def pattern_of(path: str) -> str:
    for sentinel, placeholder in PLACEHOLDERS:
        path = path.replace(sentinel, placeholder)
    return path


def _calls(function: Any) -> list[dict[str, Any]]:
    """The argument sets to build `function` with: one, or one per variant of a group-choosing parameter."""
    base: dict[str, Any] = {}
    variant: tuple[str, tuple[Any, ...]] | None = None
    for parameter in inspect.signature(function).parameters.values():
        if parameter.name in VARIANTS and parameter.default is not inspect.Parameter.empty:
            variant = (parameter.name, VARIANTS[parameter.name])
        if parameter.name not in ARGUMENTS:
            if parameter.default is inspect.Parameter.empty:
                raise AssertionError(f"lake.layout.{function.__name__} has a parameter {parameter.name!r} that "
                                     "tests/docs/layout_specs.py cannot fill: teach ARGUMENTS about it")
            continue
        base[parameter.name] = ARGUMENTS[parameter.name]
    if variant is None:
        return [base]
    return [{**base, variant[0]: value} for value in variant[1]]


def _documentable(builder: str, spec: TableSpec) -> Documentable:
    dims = {spec.row_dim} | {d for c in spec.columns for d in c.inner_dims} | set(spec.fixed_coords)
    return Documentable(builder, pattern_of(spec.path), frozenset(dims), frozenset(c.name for c in spec.columns),
                        frozenset(spec.attrs))


def specs() -> list[Documentable]:
    """Every table of the layout, one entry per distinct group pattern (the first builder's)."""
    found: dict[str, Documentable] = {}
    for name in sorted(layout.__all__):
        value = getattr(layout, name)
        if isinstance(value, TableSpec):
            entries = [_documentable(name, value)]
        elif name.endswith("_spec") and callable(value):
            entries = [_documentable(name, value(**kwargs)) for kwargs in _calls(value)]
        else:
            continue
        for entry in entries:
            if entry.pattern in found:  # the same group from two builders: document the union
                old = found[entry.pattern]
                entry = Documentable(old.builder, old.pattern, old.dims | entry.dims, old.columns | entry.columns,
                                     old.attributes | entry.attributes)
            found[entry.pattern] = entry
    return sorted(found.values(), key=lambda d: d.pattern)


def top_level_groups() -> list[str]:
    """The lake's top-level group names (`*_GROUP` constants of lake.layout)."""
    return sorted(str(getattr(layout, n)) for n in layout.__all__ if n.endswith("_GROUP"))


def analysis_kinds() -> list[str]:
    return [f"{layout.ANALYSIS_GROUP}/{kind}" for kind in layout.ANALYSIS_KINDS]
