"""The UMAP parameters and their defaults, declared once (standard library only).

`UMAPParams` is what determines an embedding. Its defaults are the only UMAP defaults
of the package: `RunConfig` (the `run` flags), `TrajectoryParams`, `PromptParams` and the
command line's flags (`analysis.cli`) take theirs from `UMAP_DEFAULTS`. This module
imports nothing heavy, so the CLI can read the defaults while ``--help`` stays light.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Methods of the joint embedding across sigma (`analysis.trajectory`), the first the default.
TRAJECTORY_METHODS = ("aligned", "joint")
DEFAULT_TRAJECTORY_METHOD = TRAJECTORY_METHODS[0]
NEIGHBOURHOOD_K = 10  # neighbours compared per sample by `analysis neighbourhood`


@dataclass(frozen=True)
class UMAPParams:
    """Everything that determines an embedding (and its name in the lake)."""

    n_components: int = 2
    n_neighbors: int = 15
    min_dist: float = 0.1
    metric: str = "euclidean"
    seed: int = 42
    pca_dim: int = 50
    fit_size: int = 20000
    full_fit: bool = False

    @property
    def name(self) -> str:
        """E.g. ``umap2d-n15-d0.1-euclidean-s42``; non-default PCA dim / fit settings are appended."""
        name = f"umap{self.n_components}d-n{self.n_neighbors}-d{self.min_dist:g}-{self.metric}-s{self.seed}"
        if self.pca_dim != UMAP_DEFAULTS.pca_dim:
            name += f"-pca{self.pca_dim}"
        if self.full_fit:
            name += "-full"
        elif self.fit_size != UMAP_DEFAULTS.fit_size:
            name += f"-fit{self.fit_size}"
        return name

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


UMAP_DEFAULTS = UMAPParams()
