"""Analyses of the activation tables: Dask PCA, UMAP, k-NN graphs, real-vs-generated metrics.

Command line: ``python -m analysis {pca,umap,knn,compare,run,trajectory,place,query,list} --lake LAKE ...``.
The same as functions (each reads from and writes to the lake; see README "Analysis commands"):

    from analysis import run_all, run_pca, run_umap, run_knn, run_compare, query, list_analyses
    from analysis import run_trajectory, TrajectoryParams, run_place
    from analysis import NeighborIndex, project, load_pca_model, UMAPParams, KnnConfig, CompareConfig, RunConfig

    run_all("demo_lake", layer="bottleneck", sigma=2, config=RunConfig(k=15, exact_below=5000))
    index = NeighborIndex.open("demo_lake", "enc.8x8_block2@sigma2")
    rows, distances = index.query(["in64/val_data/12"], k=10)

Results are plain xarray datasets: ``xr.open_zarr(lake, group="analysis/pca/enc.8x8_block2@sigma2")``.
Each analysis is a step (``analysis/steps/``: pca, umap, knn, compare, trajectory, place) that one runner
(``analysis.runner``) resolves, reuses, writes and publishes; ``run_all`` is a list of steps.
Heavy libraries (dask, umap, pynndescent, sklearn) are imported only when used.
"""
from .commands import (
    CompareConfig,
    KnnConfig,
    Neighbour,
    Outcome,
    RunConfig,
    list_analyses,
    query,
    run_all,
    run_compare,
    run_knn,
    run_pca,
    run_place,
    run_trajectory,
    run_umap,
)
from .embedding import UMAPParams
from .errors import AnalysisError
from .keys import LAYER_ALIASES, AnalysisKey, parse_key
from .neighbors import NeighborIndex, build_knn_graph, recall_at_k
from .pca import PCAModel
from .store import load_pca_model, project
from .trajectory import TrajectoryParams

__all__ = [
    "LAYER_ALIASES",
    "AnalysisError",
    "AnalysisKey",
    "CompareConfig",
    "KnnConfig",
    "NeighborIndex",
    "Neighbour",
    "Outcome",
    "PCAModel",
    "RunConfig",
    "TrajectoryParams",
    "UMAPParams",
    "build_knn_graph",
    "list_analyses",
    "load_pca_model",
    "parse_key",
    "project",
    "query",
    "recall_at_k",
    "run_all",
    "run_compare",
    "run_knn",
    "run_pca",
    "run_place",
    "run_trajectory",
    "run_umap",
]
