"""CKA step: every layer of one registered model against every layer of another, on their shared samples.

Reads ``activations/<layer>`` of each model at one sigma (the lake's first model's tables are
unprefixed, another model's are ``<model>.<layer>``), keeps the samples every chosen table
holds with finite values at that sigma (a sample probed by one model only, or at another
sigma only, is left out), and writes ``analysis/cka/<first>~<second>@sigma<s>``
(`lake.layout.cka_spec`): ``cka`` as a (first_layer, second_layer) matrix. The computation is
`analysis.cka.cka_matrix`: one pass over row blocks, never an n x n Gram matrix. Reused while
the parameters and every table's row count are unchanged (rows are only ever appended).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from lake import Lake, StagedGroup
from lake.layout import activations_group, cka_group, cka_spec, format_sigma, model_pair_key, split_model_layer, split_t2i_layer

from ..cka import BLOCK_ROWS, MIN_ROWS, cka_matrix
from ..errors import AnalysisError
from ..inputs import open_activations
from ..keys import AnalysisKey, available_sigmas, sigma_index
from ..results import now, to_attr
from .base import Computed, Context, Step

METHOD = "debiased linear CKA (Kornblith et al. 2019, unbiased HSIC of Song et al. 2012), feature-space form"


@dataclass(frozen=True)
class ModelPair:
    """Two registered models compared at one noise level: what the CKA step runs on."""

    first: str
    second: str
    sigma: float

    @property
    def name(self) -> str:
        return model_pair_key(self.first, self.second, self.sigma)


def model_layers(lake: Lake, model: str) -> list[str]:
    """The ImageNet activation tables `model` probed (their lake names), sorted; one-line error for an unknown model."""
    records = lake.models()
    names = [record.name for record in records]
    if model not in names:
        known = ", ".join(names) if names else "none (a lake made before the model registry holds only its first model)"
        raise AnalysisError(f"{lake.path}: no model {model!r} in the lake's models table; registered: {known}")
    record = records[names.index(model)]
    if record.kind != "imagenet64":
        raise AnalysisError(f"{lake.path}: model {model!r} is a {record.kind} model; CKA compares ImageNet models' probes of the same samples")
    prefix = None if model == names[0] else model
    return [layer for layer in lake.activation_layers() if split_t2i_layer(layer) is None and split_model_layer(layer)[0] == prefix]


class _SharedRows:
    """The rows of one (layer, sigma) table that hold the shared samples, in the shared order, read a block at a time."""

    def __init__(self, values: Any, rows: np.ndarray):
        self.values, self.rows = values, rows
        self.shape = (len(rows), int(values.shape[1]))

    def __getitem__(self, part: slice) -> np.ndarray:
        rows = self.rows[part]
        order = np.argsort(rows, kind="stable")
        block = np.empty((len(rows), self.shape[1]), dtype=np.float64)
        block[order] = np.asarray(self.values[rows[order]], dtype=np.float64)  # sorted indices: one read per chunk
        return block


@dataclass(frozen=True)
class CkaStep(Step):
    """CKA of `first_layers` of the pair's first model against `second_layers` of its second (empty: all they have)."""

    kind: ClassVar[str] = "cka"
    reads_pca: ClassVar[bool] = False
    uses_dask: ClassVar[bool] = True
    reuse_reason: ClassVar[str] = "same models, layers and rows"

    first_layers: tuple[str, ...] = ()
    second_layers: tuple[str, ...] = ()
    block_rows: int = BLOCK_ROWS

    def group(self, key: Any) -> str:
        return cka_group(key.first, key.second, key.sigma)

    def label(self, key: Any) -> str:
        return str(key.name)

    def parameters(self) -> dict[str, Any]:
        return {"first_layers": list(self.first_layers), "second_layers": list(self.second_layers)}

    def provenance(self, ctx: Context) -> dict[str, Any]:
        return {"key": ctx.key.name, "block_rows": self.block_rows, **self.parameters()}

    def resolved(self, lake: Lake, pair: ModelPair) -> CkaStep:
        """This step with each side's layers checked against the lake (or all of the model's at the sigma)."""
        sides = []
        for model, asked in ((pair.first, self.first_layers), (pair.second, self.second_layers)):
            offered = [layer for layer in model_layers(lake, model) if sigma_index(available_sigmas(lake, layer), pair.sigma) is not None]
            unknown = [layer for layer in asked if layer not in offered]
            if unknown:
                raise AnalysisError(f"{lake.path}: model {model!r} has no activation table {unknown[0]!r} at sigma "
                                    f"{format_sigma(pair.sigma)}; it has: {', '.join(offered) or 'none'}")
            if not offered:
                raise AnalysisError(f"{lake.path}: model {model!r} has no activation table at sigma {format_sigma(pair.sigma)}; "
                                    f"probe it with `python -m ingest activations --model {model} --sigmas {format_sigma(pair.sigma)}`")
            sides.append(tuple(asked) or tuple(offered))
        return CkaStep(sides[0], sides[1], self.block_rows)

    def reusable(self, ctx: Context, stored: dict[str, Any]) -> bool:
        return stored.get("parameters") == to_attr(self.parameters()) and stored.get("source_rows") == source_rows(ctx.lake, self.tables)

    def attributes(self, ctx: Context, computed: Computed) -> dict[str, Any]:
        pair = ctx.key
        return to_attr({"analysis": self.kind, "key": pair.name, "first_model": pair.first, "second_model": pair.second,
                        "sigma": pair.sigma, "parameters": self.parameters(), "run_id": "", "created": now(), **computed.attrs})

    def summary(self, attrs: dict[str, Any]) -> dict[str, Any]:
        parameters = attrs.get("parameters", {})
        return {"n_shared": attrs.get("n_shared"), "first_layers": len(parameters.get("first_layers", [])),
                "second_layers": len(parameters.get("second_layers", [])), "mean_diagonal": attrs.get("mean_diagonal")}

    @property
    def tables(self) -> list[str]:
        """Every activation table the step reads, each once."""
        return list(dict.fromkeys([*self.first_layers, *self.second_layers]))

    def compute(self, ctx: Context) -> Computed:
        lake, pair = ctx.lake, ctx.key
        values = {layer: open_activations(lake, AnalysisKey(layer, pair.sigma)).values for layer in self.tables}
        shared, rows = shared_rows(lake, values, self.block_rows)
        if len(shared) < MIN_ROWS:
            raise AnalysisError(f"{lake.path}: {pair.first} and {pair.second} share {len(shared)} samples with finite activations at sigma "
                                f"{format_sigma(pair.sigma)}; CKA needs at least {MIN_ROWS} (probe the same samples with both models)")
        ctx.log(f"CKA of {len(self.first_layers)} x {len(self.second_layers)} layers of {pair.first} and {pair.second} "
                f"at sigma {format_sigma(pair.sigma)} on {len(shared)} shared samples, {ctx.where}")
        matrix = cka_matrix([_SharedRows(values[layer], rows[layer]) for layer in self.first_layers],
                            [_SharedRows(values[layer], rows[layer]) for layer in self.second_layers], self.block_rows)
        matched = [matrix[i, j] for i, a in enumerate(self.first_layers) for j, b in enumerate(self.second_layers) if _bare(a) == _bare(b)]
        attrs = {"n_shared": len(shared), "source_rows": source_rows(lake, self.tables), "method": METHOD,
                 "mean_diagonal": float(np.mean(matched)) if matched else None}

        def write(target: StagedGroup, final: dict[str, Any]) -> None:
            table = target.table(cka_spec(pair.first, pair.second, pair.sigma, self.first_layers, self.second_layers, final))
            table.append({"first_layer": np.asarray(self.first_layers, dtype=object), "cka": matrix})

        def message(final: dict[str, Any]) -> str:
            same = f"; same-named layers {final['mean_diagonal']:.3f} on average" if final.get("mean_diagonal") is not None else ""
            return f"wrote {self.group(pair)}: {matrix.shape[0]} x {matrix.shape[1]} layers on {len(shared)} shared samples{same}"

        return Computed(attrs, write, message)


def _bare(layer: str) -> str:
    """A layer's block name without its model prefix (``teacher.enc.8x8_block2`` -> ``enc.8x8_block2``)."""
    return split_model_layer(layer)[1]


def source_rows(lake: Lake, tables: Sequence[str]) -> dict[str, int]:
    """The rows each activation table holds now (what a stored table's `source_rows` records); 0 for a table that is gone."""
    return {layer: int((lake.shape(activations_group(layer), "sample_id") or (0,))[0]) for layer in tables}


def shared_rows(lake: Lake, values: dict[str, Any], block_rows: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The sample ids every table holds with finite values (sorted), and each table's rows of them in that order.

    The finite check reads each table once, a block at a time; only ids and masks are held.
    """
    shared: np.ndarray | None = None
    positions: dict[str, dict[str, int]] = {}
    for layer, array in values.items():
        ids = np.asarray(lake.column(activations_group(layer), "sample_id"), dtype=object).astype(str)
        finite = np.concatenate([np.isfinite(np.asarray(array[start:start + block_rows])).all(axis=1)
                                 for start in range(0, len(ids), block_rows)]) if len(ids) else np.zeros(0, bool)
        kept = ids[finite]
        shared = kept if shared is None else np.intersect1d(shared, kept)
        positions[layer] = {sample_id: row for row, sample_id in enumerate(ids)}
    assert shared is not None
    shared = np.unique(shared)
    return shared, {layer: np.fromiter((index[s] for s in shared), dtype=np.int64, count=len(shared)) for layer, index in positions.items()}
