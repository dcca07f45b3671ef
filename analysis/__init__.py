"""Analyses of the activation tables: Dask PCA, UMAP, k-NN graphs, real-vs-generated metrics.

Command line: ``python -m analysis {pca,umap,knn,compare,run,clusters,prompts,trajectory,place,cka,neighbourhood,query,list} --lake LAKE ...``.
The same as functions (each reads from and writes to the lake; see docs/analysis.md):

    from analysis import run_all, run_pca, run_umap, run_knn, run_compare, query, list_analyses
    from analysis import run_trajectory, TrajectoryParams, run_place
    from analysis import run_clusters, ClustersConfig, run_prompts, PromptParams, kmeans, resolve_key
    from analysis import NeighborIndex, project, load_pca_model, UMAPParams, KnnConfig, CompareConfig, RunConfig
    from analysis import run_cka, cka_table, run_neighbourhood, NeighbourhoodConfig

    run_all("demo_lake", layer="bottleneck", sigma=2, config=RunConfig(k=15, exact_below=5000))
    index = NeighborIndex.open("demo_lake", "enc.8x8_block2@sigma2")
    rows, distances = index.query(["in64/val_data/12"], k=10)
    run_all("t2i_lake", layer="dmd2-sdxl-4step.mid", timestep=999)   # text-to-image: site alias, step's timestep
    run_prompts("t2i_lake")                                           # clusters + map of every model's prompts
    run_cka("demo_lake", "dmd2", "teacher-stand-in", sigma=2)          # layer x layer CKA of two registered models

Results are plain xarray datasets: ``xr.open_zarr(lake, group="analysis/pca/enc.8x8_block2@sigma2")``.
Each analysis is a step (``analysis/steps/``: pca, umap, knn, compare, clusters, trajectory, place, cka, neighbourhood, sets) that one runner
(``analysis.runner``) resolves, reuses, writes and publishes; ``run_all`` is a list of steps.
Heavy libraries (dask, umap, pynndescent, sklearn) are imported only when used.
"""
from .commands import (
    ClustersConfig,
    CompareConfig,
    KnnConfig,
    Neighbour,
    NeighbourhoodConfig,
    Outcome,
    PromptParams,
    RunConfig,
    SetsConfig,
    cka_table,
    list_analyses,
    query,
    run_all,
    run_cka,
    run_clusters,
    run_compare,
    run_knn,
    run_neighbourhood,
    run_pca,
    run_place,
    run_prompts,
    run_sets,
    run_trajectory,
    run_umap,
    sets_table,
)
from .errors import AnalysisError
from .keys import LAYER_ALIASES, T2I_SITE_ALIASES, AnalysisKey, parse_key, resolve_key, resolve_layer
from .clustering import KMeansResult, RowSource, kmeans
from .neighbors import NeighborIndex, build_knn_graph, recall_at_k
from .params import UMAPParams
from .pca import PCAModel
from .prompts import normalise_rows, pca_map
from .store import load_pca_model, project
from .trajectory import TrajectoryParams

__all__ = [
    "LAYER_ALIASES",
    "T2I_SITE_ALIASES",
    "AnalysisError",
    "AnalysisKey",
    "ClustersConfig",
    "CompareConfig",
    "KMeansResult",
    "KnnConfig",
    "NeighborIndex",
    "Neighbour",
    "NeighbourhoodConfig",
    "Outcome",
    "PCAModel",
    "PromptParams",
    "RowSource",
    "RunConfig",
    "SetsConfig",
    "TrajectoryParams",
    "UMAPParams",
    "build_knn_graph",
    "cka_table",
    "kmeans",
    "list_analyses",
    "load_pca_model",
    "normalise_rows",
    "parse_key",
    "pca_map",
    "project",
    "query",
    "recall_at_k",
    "resolve_key",
    "resolve_layer",
    "run_all",
    "run_cka",
    "run_clusters",
    "run_compare",
    "run_knn",
    "run_neighbourhood",
    "run_pca",
    "run_place",
    "run_prompts",
    "run_sets",
    "run_trajectory",
    "run_umap",
    "sets_table",
]
