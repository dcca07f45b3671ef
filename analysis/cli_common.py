"""What every `python -m analysis` command shares: the common flags, list-valued flag types, and how a result prints.

Only argparse, the standard library and lake.cli, so `--help` stays instant.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from lake.cli import int_at_least
from lake.cli import non_negative_float as _non_negative_float
from lake.cli import positive_int as _positive_int

from .cli_output import print_outcomes
from .params import UMAP_DEFAULTS

LAYER_HELP = ("activation table: a layer with an activations/<layer> group, an alias (bottleneck, mid), or a "
              "text-to-image layer <name>.<module> whose module may be a site alias (dmd2-sdxl-4step.mid); "
              "default: the only/first layer in the lake")

# argparse type of --timestep: an integer of at least 0.
non_negative_int = int_at_least(0)


def names(text: str) -> tuple[str, ...]:
    """A comma-separated flag's items (tables, models, noise levels), stripped, empty ones dropped."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def model_pair(text: str) -> tuple[str, ...]:
    """`--models FIRST,SECOND`: exactly two model names."""
    if len(given := names(text)) != 2:
        raise argparse.ArgumentTypeError(f"{text!r}: give two registered model names, e.g. micro,teacher-stand-in")
    return given


def add_common(parser: argparse.ArgumentParser, table: bool = True, compute: bool = True, scheduler: bool = True) -> None:
    parser.add_argument("--lake", required=True, help="lake directory (created by `python -m ingest`)")
    if table:
        parser.add_argument("--layer", help=LAYER_HELP)
        level = parser.add_mutually_exclusive_group()
        level.add_argument("--sigma", type=_non_negative_float, help="noise level of the table (as stored, e.g. 2); default: the first one")
        level.add_argument("--timestep", type=non_negative_int,
                           help="text-to-image tables only: the noise level of this step's timestep (e.g. 999), instead of --sigma")
    if compute and scheduler:
        parser.add_argument(
            "--scheduler",
            metavar="ADDRESS",
            help="where Dask work runs: threads (default), processes, synchronous, or a dask.distributed "
            "scheduler address such as tcp://head:8786 (workers must see the lake at the same path)",
        )
    if compute:
        parser.add_argument("--force", action="store_true", help="recompute even if a result with the same parameters is stored")
        parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout (for scripts)")


def add_pca_dim(parser: argparse.ArgumentParser) -> None:
    """`--pca-dim`: the PCA components a step computes or reads."""
    parser.add_argument("--pca-dim", type=_positive_int, default=UMAP_DEFAULTS.pca_dim,
                        help=f"PCA components to compute/use (default {UMAP_DEFAULTS.pca_dim}, fewer if there are fewer channels)")


def common_args(args: argparse.Namespace) -> dict[str, Any]:
    """scheduler, force, log and progress as every step function takes them."""
    from .runner import stderr_log

    progress = not getattr(args, "no_progress", False) and sys.stderr.isatty()
    return {"scheduler": getattr(args, "scheduler", None), "force": getattr(args, "force", False), "log": stderr_log, "progress": progress}


def print_result(args: argparse.Namespace, outcomes: list[Any]) -> int:
    if args.json:
        print(json.dumps([o.as_dict() for o in outcomes], indent=2))
    else:
        print_outcomes(outcomes)
    return 0
