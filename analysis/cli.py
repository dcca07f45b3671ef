"""`python -m analysis <command> --lake LAKE ...`: the command-line face of analysis.commands.

Errors a user can fix print one line (``error: ...``) and exit with status 2, leaving the
lake unchanged. Only argparse and the standard library are imported before a command runs,
so ``--help`` is instant.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from lake.cli import command, run_cli
from lake.cli import non_negative_float as _non_negative_float
from lake.cli import positive_int as _positive_int

from .cli_common import LAYER_HELP
from .cli_common import add_common as _add_common
from .cli_common import add_pca_dim as _add_pca_dim
from .cli_common import common_args as _common
from .cli_common import names as _names
from .cli_common import print_result as _print_result
from .cli_models import add_cka_command, add_neighbourhood_command, add_sets_command
from .cli_output import print_compare, print_outcomes, print_table
# The flags' defaults come from analysis.params (standard library only, so `--help` stays light).
from .params import DEFAULT_TRAJECTORY_METHOD, TRAJECTORY_METHODS, UMAP_DEFAULTS

EPILOG = """examples:
  python -m analysis run --lake demo_lake --layer bottleneck --sigma 2
  python -m analysis umap --lake demo_lake --layer enc.8x8_block2 --sigma 2 --components 3
  python -m analysis query --lake demo_lake --layer bottleneck --sigma 2 --sample-id in64/val_data/12
  python -m analysis trajectory --lake demo_lake --layer bottleneck
  python -m analysis place --lake demo_lake --key enc.8x8_block2@sigma2
  python -m analysis list --lake demo_lake
  python -m analysis run --lake demo_lake --layer dmd2-sdxl-4step.mid --timestep 999
  python -m analysis clusters --lake demo_lake --layer bottleneck --sigma 2 --clusters 12
  python -m analysis prompts --lake demo_lake
layer aliases: bottleneck = enc.8x8_block2, mid = dec.8x8_in0; any activations/<layer> group works.
text-to-image layers are <model name>.<module> (e.g. dmd2-sdxl-4step.mid_block.attentions.0, +update for the
residual update); the module may be given by its site alias: down2.attn1, mid, up0.attn0, up0.attn1 (sdxl),
down2.attn1, mid, up1.attn0, up1.attn1 (sd15). Their noise levels are the steps' sigmas; --timestep T names one
by its timestep instead. `list` shows every table with its sigmas (and timesteps).
"""

def _sigma_list(text: str) -> tuple[float, ...]:
    """`--sigmas 0.5,2,10`: non-negative noise levels, comma-separated."""
    parts = _names(text)
    if not parts:
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated noise levels, e.g. 0.5,2,10,80")
    return tuple(_non_negative_float(part) for part in parts)


def _add_umap(parser: argparse.ArgumentParser, components: bool = True) -> None:
    d = UMAP_DEFAULTS
    parser.add_argument("--n-neighbors", type=_positive_int, default=d.n_neighbors, help=f"UMAP neighbourhood size (default {d.n_neighbors})")
    parser.add_argument("--min-dist", type=_non_negative_float, default=d.min_dist,
                        help=f"UMAP minimum distance in the embedding (default {d.min_dist})")
    parser.add_argument("--metric", default=d.metric, help=f"UMAP input metric on the PCA scores (default {d.metric})")
    if components:
        parser.add_argument("--components", type=int, choices=(2, 3), default=d.n_components,
                            help=f"embedding dimensions, 2 or 3 (default {d.n_components})")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"seed for UMAP, the fit sample, NN-descent and subsamples (default {d.seed})")
    parser.add_argument(
        "--fit-size",
        type=_positive_int,
        default=d.fit_size,
        help=f"above this many rows, fit UMAP on a balanced (source x class) sample of this size and transform the rest (default {d.fit_size})",
    )
    parser.add_argument("--full-fit", action="store_true", help="fit UMAP on every row, however many")


def _add_knn(parser: argparse.ArgumentParser, flag: str = "--k", exact_below_help: str = "tables with fewer rows get the exact graph (default 20000)") -> None:
    parser.add_argument(flag, type=_positive_int, default=10, dest="k", help="neighbours per sample in the k-NN graph (default 10)")
    parser.add_argument("--exact", action="store_true", help="exact (brute-force) k-NN graph even for large tables")
    parser.add_argument("--exact-below", type=_positive_int, default=20000, help=exact_below_help)


def _add_compare(parser: argparse.ArgumentParser, flag: str = "--k", max_classes_help: str = "classes to print, largest Frechet distance first (default 20; all with --json)") -> None:
    parser.add_argument(flag, type=_positive_int, default=5, dest="compare_k", help="k of the k-NN balls for precision/recall/density/coverage and real_fraction (default 5)")
    parser.add_argument("--max-per-set", type=_positive_int, default=10000, help="precision/recall/density/coverage use at most this many rows per source (default 10000)")
    parser.add_argument("--max-classes", type=int, default=20, help=max_classes_help)


def build_parser() -> argparse.ArgumentParser:
    """The `python -m analysis` parser: one subcommand per analysis, each added by its `_add_<name>_command`."""
    parser = argparse.ArgumentParser(
        prog="python -m analysis",
        description="PCA, UMAP, k-NN graphs, k-means clusters and real-vs-generated metrics of activation tables in a "
        "DMD2 Visualizer lake (ImageNet generator and text-to-image models), and clusters of text-to-image prompts.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_pca_command(sub)
    _add_umap_command(sub)
    _add_knn_command(sub)
    _add_compare_command(sub)
    _add_run_command(sub)
    _add_clusters_command(sub)
    _add_prompts_command(sub)
    _add_trajectory_command(sub)
    _add_query_command(sub)
    _add_place_command(sub)
    add_cka_command(sub)
    add_neighbourhood_command(sub)
    add_sets_command(sub)
    _add_list_command(sub)
    return parser


def _add_pca_command(sub: Any) -> None:
    """The `pca` subcommand and its flags."""
    p = command(sub, "pca", _pca_command, help="standardise + PCA one (layer, sigma) table out of core (Dask)", description="Standardise and PCA one (layer, sigma) activation table out of core; store scores and the transform in analysis/pca/<key>.")
    _add_common(p)
    _add_pca_dim(p)
    p.add_argument("--block-rows", type=_positive_int, help="rows per Dask block (default: whole storage chunks, about 64 MB)")


def _add_umap_command(sub: Any) -> None:
    """The `umap` subcommand and its flags."""
    p = command(sub, "umap", _umap_command, help="UMAP embedding (2D or 3D) of the PCA scores", description="UMAP of one key's PCA scores into analysis/embeddings/<key>/<name>.")
    _add_common(p)
    _add_umap(p)
    _add_pca_dim(p)


def _add_knn_command(sub: Any) -> None:
    """The `knn` subcommand and its flags."""
    p = command(sub, "knn", _knn_command, help="k-nearest-neighbour graph in PCA space", description="k-NN graph of one key's PCA scores (exact below --exact-below rows, NN-descent above) into analysis/knn/<key>.")
    _add_common(p)
    _add_knn(p)
    p.add_argument("--seed", type=int, default=42, help="NN-descent seed (default 42)")
    _add_pca_dim(p)


def _add_compare_command(sub: Any) -> None:
    """The `compare` subcommand and its flags."""
    p = command(sub, "compare", _compare_command, help="real vs generated: Frechet distance, precision/recall/density/coverage, memorisation", description="Real vs generated in PCA space, overall and per class, into analysis/compare/<key>; prints a table.")
    _add_common(p)
    _add_compare(p)
    p.add_argument("--seed", type=int, default=42, help="seed of the per-set subsample (default 42)")
    p.add_argument("--exact-below", type=_positive_int, default=20000, help="exact neighbour search below this many rows (default 20000)")
    _add_pca_dim(p)


def _add_run_command(sub: Any) -> None:
    """The `run` subcommand and its flags."""
    p = command(sub, "run", _run_command, help="pca + umap 2D + umap 3D + knn [+ clusters] + compare for one (layer, sigma)",
                description="Everything for one (layer, sigma): pca, umap 2D and 3D, knn, [clusters,] compare. On a text-to-image layer "
                "also k-means clusters and the model's prompts (clustered and mapped); compare is skipped there (every sample is "
                "generated). Stored results with the same parameters are reused unless --force.")
    _add_common(p)
    _add_umap(p, components=False)
    _add_pca_dim(p)
    _add_knn(p, "--k", "tables with fewer rows get the exact k-NN graph (else NN-descent), and compare's own neighbour searches are exact below it too (default 20000)")
    _add_compare(p, "--compare-k", "classes in the compare table printed after the run, largest Frechet distance first (default 20)")
    p.add_argument("--clusters", type=_positive_int,
                   help="k-means clusters of the PCA scores (and, on a text-to-image layer, of the model's prompts; capped at "
                   "the rows/prompts). Default: 8 on text-to-image layers, where run always clusters; ImageNet layers are "
                   "clustered only when this is given")


def _add_clusters_command(sub: Any) -> None:
    """The `clusters` subcommand and its flags."""
    p = command(sub, "clusters", _clusters_command, help="k-means clusters of one key's PCA scores (out of core)",
                description="k-means of one (layer, sigma) key's PCA scores into analysis/clusters/<key> (a cluster per row, rows as "
                "analysis/pca/<key>): k-means++ on a seeded hash subset for the initial centres, then Lloyd passes over every "
                "row read in blocks. Deterministic given the seed, whatever the block size.")
    _add_common(p, scheduler=False)
    p.add_argument("--clusters", type=_positive_int, default=8, help="number of clusters (default 8; capped at the number of rows)")
    p.add_argument("--seed", type=int, default=42, help="seed of the initial subset and k-means++ (default 42)")
    _add_pca_dim(p)
    p.add_argument("--block-rows", type=_positive_int, help="PCA score rows read at once (default 65536; the clusters do not depend on it)")


def _add_prompts_command(sub: Any) -> None:
    """The `prompts` subcommand and its flags."""
    p = command(sub, "prompts", _prompts_command, help="cluster and map the prompts of text-to-image models",
                description="k-means of the L2-normalised pooled text embeddings of t2i/<name>/prompts, plus a 2-D map of the "
                "prompts (UMAP with the cosine metric from 32 prompts, PCA below), into analysis/prompts/<name>, one row per "
                "prompt in the prompts table's order.")
    p.add_argument("--lake", required=True, help="lake directory (created by `python -m ingest`)")
    p.add_argument("--name", help="text-to-image model name (t2i/<name>, as `list` shows); default: every model with prompts")
    p.add_argument("--clusters", type=_positive_int, default=8, help="number of clusters (default 8; capped at the number of prompts)")
    d = UMAP_DEFAULTS
    p.add_argument("--seed", type=int, default=d.seed, help=f"seed of k-means and UMAP (default {d.seed})")
    p.add_argument("--n-neighbors", type=_positive_int, default=d.n_neighbors, help=f"UMAP neighbourhood size of the map (default {d.n_neighbors})")
    p.add_argument("--min-dist", type=_non_negative_float, default=d.min_dist, help=f"UMAP minimum distance in the map (default {d.min_dist})")
    p.add_argument("--fit-size", type=_positive_int, default=d.fit_size,
                   help=f"above this many prompts, fit the map's UMAP on a seeded subset of this size and transform the rest (default {d.fit_size})")
    p.add_argument("--force", action="store_true", help="recompute even if a result with the same parameters and prompts is stored")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout (for scripts)")


def _add_trajectory_command(sub: Any) -> None:
    """The `trajectory` subcommand and its flags."""
    p = command(sub, "trajectory", _trajectory_command, help="one embedding of every sigma of a layer (and multi-step samples' steps)",
                description="One 2-D embedding of all sigmas of activations/<layer>, comparable across noise levels, into "
                "analysis/trajectory/<layer>, with per-sigma trustworthiness and jump scores (and those of independent "
                "per-sigma UMAPs, for comparison); the steps of every multi-step schedule with trajectories/<schedule>/<layer> "
                "are placed in it as analysis/trajectory/<layer>/<schedule>.")
    _add_common(p, table=False)
    p.add_argument("--layer", help=LAYER_HELP)
    p.add_argument("--sigmas", type=_sigma_list, help="comma-separated noise levels to embed together, e.g. 0.5,2,10,80 (at least 2; default: all of the table's)")
    p.add_argument("--method", choices=TRAJECTORY_METHODS, default=DEFAULT_TRAJECTORY_METHOD,
                   help="aligned (default): umap.AlignedUMAP across the sigma slices of a balanced fit sample (the same "
                   "samples at every sigma), every other cell placed within its sigma slice from its nearest fitted cells, "
                   "multi-step steps within the slice of the nearest probe sigma: short, readable paths; joint: one UMAP "
                   "fitted on cells of all sigmas, the rest placed by transform (keeps samples still where sigma clouds "
                   "overlap, but separates the sigmas into regions). See docs/analysis.md, 'The joint embedding across sigma', for the measurements")
    _add_umap(p, components=False)
    _add_pca_dim(p)


def _add_query_command(sub: Any) -> None:
    """The `query` subcommand and its flags."""
    p = command(sub, "query", _query_command, help="print the nearest neighbours of sample ids", description="Nearest neighbours of sample ids in one key's PCA space (stored graph when deep enough, else exact).")
    _add_common(p, compute=False)
    p.add_argument("--sample-id", nargs="+", required=True, help="one or more sample ids")
    p.add_argument("--k", type=_positive_int, default=10, help="neighbours to print (default 10)")


def _add_place_command(sub: Any) -> None:
    """The `place` subcommand and its flags."""
    p = command(sub, "place", _place_command, help="place new samples on a key's stored PCA and embeddings (no refit)",
                description="Project every sample probed at --key that is not a fitted row of analysis/pca/<key> (or only --ids) "
                "through the stored PCA and place it in every stored embedding of the key by UMAP's own neighbour weighting "
                "(no refit, no pickled model), into analysis/placed/<key>[/<name>]. Only samples not placed yet are appended; "
                "everything is placed again when the PCA or an embedding was recomputed since.")
    p.add_argument("--lake", required=True, help="lake directory (created by `python -m ingest`)")
    p.add_argument("--key", required=True, help="the map to place on: <layer>@sigma<sigma>, e.g. enc.8x8_block2@sigma2 (as `list` shows)")
    p.add_argument("--ids", metavar="ID[,ID...]", help="only these sample ids (comma-separated; each probed at the key and not a fitted row); "
                   "default: every probed sample that is not a fitted row")
    p.add_argument("--force", action="store_true", help="place every sample again even if the stored placement is current")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout (for scripts)")


def _add_list_command(sub: Any) -> None:
    """The `list` subcommand and its flags."""
    p = command(sub, "list", _list_command, help="what activation tables and analyses the lake holds", description="List activation tables (layers, sigmas, rows) and stored analyses (stale ones flagged).")
    _add_common(p, table=False, compute=False)


def _from_args(step_type: type, args: argparse.Namespace, **given: Any) -> Any:
    """Dataclass `step_type` filled from the parsed flags of the same names (`given` overrides).

    A field without a flag of that name raises here, in every test that runs the
    command, instead of silently keeping its default.
    """
    from dataclasses import fields

    return step_type(**{f.name: given[f.name] if f.name in given else getattr(args, f.name) for f in fields(step_type)})


def _exact(args: argparse.Namespace) -> bool | None:
    # --exact forces the exact graph; without it the table size decides (--exact-below).
    return True if args.exact else None


def _umap_params(args: argparse.Namespace, components: int) -> Any:
    from .params import UMAPParams

    return _from_args(UMAPParams, args, n_components=components)


def _compare_config(args: argparse.Namespace) -> Any:
    from .steps import CompareConfig

    return _from_args(CompareConfig, args, k=args.compare_k)


def _level(args: argparse.Namespace) -> dict[str, Any]:
    """`--timestep` as the step functions take it (a text-to-image table's noise level by its step)."""
    return {"timestep": getattr(args, "timestep", None)}


def _pca_command(args: argparse.Namespace) -> int:
    from .commands import run_pca

    return _print_result(args, [run_pca(args.lake, args.layer, args.sigma, pca_dim=args.pca_dim, block_rows=args.block_rows, **_common(args), **_level(args))])


def _umap_command(args: argparse.Namespace) -> int:
    from .commands import run_umap

    return _print_result(args, [run_umap(args.lake, args.layer, args.sigma, _umap_params(args, args.components), **_common(args), **_level(args))])


def _knn_command(args: argparse.Namespace) -> int:
    from .commands import KnnConfig, run_knn

    config = _from_args(KnnConfig, args, exact=_exact(args))
    return _print_result(args, [run_knn(args.lake, args.layer, args.sigma, **asdict(config), **_common(args), **_level(args))])


def _compare_command(args: argparse.Namespace) -> int:
    from .commands import run_compare
    from .report import compare_report

    outcome = run_compare(args.lake, args.layer, args.sigma, _compare_config(args), **_common(args), **_level(args))
    report = compare_report(args.lake, outcome.key)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_compare(report, args.max_classes)
    return 0


def _run_command(args: argparse.Namespace) -> int:
    from .commands import RunConfig, run_all
    from .report import compare_report

    outcomes = run_all(args.lake, args.layer, args.sigma, _from_args(RunConfig, args, exact=_exact(args)), **_common(args), **_level(args))
    compared = [o for o in outcomes if o.analysis == "compare"]
    if not compared or args.json:
        return _print_result(args, outcomes)
    print_outcomes(outcomes)
    print()
    print_compare(compare_report(args.lake, compared[0].key), args.max_classes, "`python -m analysis compare --json`")
    return 0


def _clusters_command(args: argparse.Namespace) -> int:
    from .commands import ClustersConfig, run_clusters

    common = _common(args)
    del common["scheduler"]  # k-means reads and computes in this process (no Dask graph)
    return _print_result(args, [run_clusters(args.lake, args.layer, args.sigma, _from_args(ClustersConfig, args),
                                             block_rows=args.block_rows, **common, **_level(args))])


def _prompts_command(args: argparse.Namespace) -> int:
    from .commands import PromptParams, run_prompts

    common = _common(args)
    del common["scheduler"]
    return _print_result(args, run_prompts(args.lake, args.name, _from_args(PromptParams, args), **common))


def _trajectory_command(args: argparse.Namespace) -> int:
    from .commands import TrajectoryParams, run_trajectory

    params = _from_args(TrajectoryParams, args, sigmas=args.sigmas, score_samples=TrajectoryParams().score_samples)
    return _print_result(args, [run_trajectory(args.lake, args.layer, params, **_common(args))])


def _place_command(args: argparse.Namespace) -> int:
    from .commands import run_place
    from .runner import stderr_log

    return _print_result(args, [run_place(args.lake, args.key, args.ids, force=args.force, log=stderr_log)])


def _query_command(args: argparse.Namespace) -> int:
    from .commands import query

    records = [vars(n) for n in query(args.lake, args.sample_id, args.layer, args.sigma, k=args.k, log=_common(args)["log"], **_level(args))]
    if args.json:
        print(json.dumps(records, indent=2))
    else:
        print_table(records, ["query", "rank", "sample_id", "source", "class_id", "distance"])
    return 0


def _list_command(args: argparse.Namespace) -> int:
    from .commands import list_analyses

    listing = list_analyses(args.lake)
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    print(f"{listing['lake']}: activation tables")
    tables = [{**t, "sigmas": ", ".join(t["sigmas"]), "timesteps": ", ".join(str(x) for x in t["timesteps"]) if "timesteps" in t else None}
              for t in listing["activations"]]
    t2i = any("model" in t for t in listing["activations"])
    # Text-to-image tables add the name --layer accepts for their site, and the timestep of each sigma.
    print_table(tables, ["layer", "sigmas", "rows", *(["site", "timesteps"] if t2i else [])])
    if listing.get("t2i_models"):
        print("text-to-image models")
        print_table([{**m, "layers": len(m["layers"]), "timesteps": ", ".join(str(x) for x in m["timesteps"] or [])}
                     for m in listing["t2i_models"]], ["name", "family", "timesteps", "samples", "prompts", "layers"])
    print("analyses")
    if listing["analyses"]:
        print_table(listing["analyses"], ["kind", "group", "n_rows", "stale", "created"])
    else:
        print("  (none; try `python -m analysis run --lake LAKE`)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from .errors import AnalysisError

    return run_cli(build_parser(), argv, (AnalysisError,), interrupted="interrupted; the lake is unchanged")
