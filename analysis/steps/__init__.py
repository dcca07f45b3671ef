"""The analyses, one module each: what it reads, computes and writes (see analysis.runner).

`base` holds the contract every step implements (`Step`, `Context`, `Computed`, `Outcome`).
A new analysis is a new module here with a `Step` dataclass (`group`, `parameters`,
`compute`), a line in `analysis.commands` for its function and, when `run` should do it,
an entry in `RunConfig.steps`.
"""
from .clusters import ClustersConfig, ClustersStep
from .compare import CompareConfig, CompareStep
from .knn import KnnConfig, KnnStep
from .pca import PcaStep
from .umap import UmapStep

__all__ = ["ClustersConfig", "ClustersStep", "CompareConfig", "CompareStep", "KnnConfig", "KnnStep", "PcaStep", "UmapStep"]
