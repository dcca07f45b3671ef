"""Neighbourhood-change step: which samples two tables (two models, or two layers) see with different neighbours.

For the samples both keys' PCA tables hold, the k nearest other shared samples are found in
each key's PCA space (the same k-NN method as the `knn` step: exact below `exact_below` rows,
NN-descent above), and each sample's score is the share of its first-key neighbours that are
not among its second-key neighbours: 0 when both tables give it the same neighbourhood, 1 when
they share none. Restricting both graphs to the shared samples keeps a sample the other table
lacks from counting as a difference. Writes ``analysis/neighbourhood/<first>~<second>``
(`lake.layout.neighbourhood_spec`), rows in the first key's PCA order; reused while both PCAs
and the parameters are unchanged.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from lake import StagedGroup
from lake.layout import LABEL_COLUMNS, key_pair, neighbourhood_group, neighbourhood_spec

from ..errors import AnalysisError
from ..keys import AnalysisKey
from ..neighbors import EXACT_BELOW, build_knn_graph
from ..params import NEIGHBOURHOOD_K
from ..results import LabelColumns, now, read_labels, to_attr, write_rows
from ..store import load_scores, pca_run_id
from .base import Computed, Context, Step


@dataclass(frozen=True)
class KeyPair:
    """Two (layer, sigma) tables compared sample by sample: what the neighbourhood step runs on."""

    first: AnalysisKey
    second: AnalysisKey

    @property
    def name(self) -> str:
        return key_pair(self.first, self.second)


@dataclass(frozen=True)
class NeighbourhoodConfig:
    """Parameters of the neighbourhood change."""

    k: int = NEIGHBOURHOOD_K
    pca_dim: int = 50
    exact_below: int = EXACT_BELOW
    seed: int = 42


def neighbourhood_change(first: np.ndarray, second: np.ndarray, block_rows: int = 65_536) -> np.ndarray:
    """Per row, the share of `first`'s neighbour rows (n x k) that are not in `second`'s row (n x k).

    Compared a block of rows at a time: the k x k comparison of every row at once would hold n k^2 booleans.
    """
    k = first.shape[1]
    same = np.concatenate([(first[s:s + block_rows, :, None] == second[s:s + block_rows, None, :]).any(axis=2).sum(axis=1)
                           for s in range(0, len(first), block_rows)]) if len(first) else np.zeros(0)
    return (1.0 - same / k).astype(np.float32)


@dataclass(frozen=True)
class NeighbourhoodStep(Step):
    """The neighbourhood change of every shared sample between the pair's two keys, with `config`."""

    kind: ClassVar[str] = "neighbourhood"
    reads_pca: ClassVar[bool] = False  # it reads two PCAs: the command makes sure both exist
    reuse_reason: ClassVar[str] = "same parameters and PCAs"

    config: NeighbourhoodConfig = NeighbourhoodConfig()

    def group(self, key: Any) -> str:
        return neighbourhood_group(key.first, key.second)

    def label(self, key: Any) -> str:
        return str(key.name)

    def parameters(self) -> dict[str, Any]:
        return asdict(self.config)

    def reusable(self, ctx: Context, stored: dict[str, Any]) -> bool:
        pair = ctx.key
        return (stored.get("parameters") == to_attr(self.parameters()) and stored.get("first_pca_run_id") == pca_run_id(ctx.lake, pair.first)
                and stored.get("second_pca_run_id") == pca_run_id(ctx.lake, pair.second))

    def attributes(self, ctx: Context, computed: Computed) -> dict[str, Any]:
        pair = ctx.key
        return to_attr({"analysis": self.kind, "key": pair.name, "first_key": pair.first.name, "second_key": pair.second.name,
                        "parameters": self.parameters(), "run_id": "", "created": now(),
                        "first_pca_run_id": pca_run_id(ctx.lake, pair.first), "second_pca_run_id": pca_run_id(ctx.lake, pair.second),
                        **computed.attrs})

    def summary(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return {"n_shared": attrs.get("n_shared"), "k": attrs.get("parameters", {}).get("k"), "mean_change": attrs.get("mean_change")}

    def compute(self, ctx: Context) -> Computed:
        lake, pair, config = ctx.lake, ctx.key, self.config
        first_labels, second_labels = read_labels(lake, pair.first.pca_group), read_labels(lake, pair.second.pca_group)
        first_ids, second_ids = first_labels.sample_id.astype(str), second_labels.sample_id.astype(str)
        shared_first = np.flatnonzero(np.isin(first_ids, second_ids))  # the first key's row order
        position = {sample_id: row for row, sample_id in enumerate(second_ids)}
        shared_second = np.fromiter((position[i] for i in first_ids[shared_first]), dtype=np.int64, count=len(shared_first))
        if len(shared_first) <= config.k:
            raise AnalysisError(f"{lake.path}: {pair.first.name} and {pair.second.name} share {len(shared_first)} samples; "
                                f"the neighbourhood change with k={config.k} needs more than {config.k}")
        ctx.log(f"neighbourhood change of {len(shared_first)} shared samples between {pair.first.name} and {pair.second.name}, k={config.k}")
        graphs = [build_knn_graph(load_scores(lake, key, config.pca_dim)[rows], config.k, exact_below=config.exact_below, seed=config.seed)
                  for key, rows in ((pair.first, shared_first), (pair.second, shared_second))]
        change = neighbourhood_change(graphs[0].indices, graphs[1].indices)
        labels = LabelColumns(*(getattr(first_labels, name)[shared_first] for name in LABEL_COLUMNS))
        attrs = {"n_shared": len(shared_first), "mean_change": float(change.mean()), "method": graphs[0].method}

        def write(target: StagedGroup, final: dict[str, Any]) -> None:
            table = target.table(neighbourhood_spec(pair.first, pair.second, config.k, final))
            write_rows(table, labels, {"neighbourhood_change": change,
                                       "shared_neighbours": np.round((1.0 - change) * config.k).astype(np.int16)})

        def message(final: dict[str, Any]) -> str:
            return (f"wrote {self.group(pair)}: {len(change)} shared samples, on average {final['mean_change']:.0%} of each one's "
                    f"{config.k} nearest differ")

        return Computed(attrs, write, message)
