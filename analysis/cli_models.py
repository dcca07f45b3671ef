"""`python -m analysis cka`, `neighbourhood` and `sets`: two models (two tables, two generated sets) compared, as
command-line commands."""
from __future__ import annotations

import argparse
from typing import Any

from lake.cli import command
from lake.cli import non_negative_float as _non_negative_float
from lake.cli import positive_int as _positive_int

from .cli_common import add_common as _add_common
from .cli_common import add_pca_dim as _add_pca_dim
from .cli_common import common_args as _common
from .cli_common import model_pair as _model_pair
from .cli_common import names as _names
from .cli_common import print_result as _print_result
from .cli_output import print_cka, print_sets
from .params import NEIGHBOURHOOD_K


def add_cka_command(sub: Any) -> None:
    p = command(sub, "cka", _cka_command, help="layer x layer CKA of two registered models on their shared samples",
                description="Debiased linear CKA (Kornblith et al. 2019) of every layer of the first model against every layer of the "
                "second, on the samples both probed at one sigma, into analysis/cka/<first>~<second>@sigma<s>; read a block of rows "
                "at a time (no n x n Gram matrix). Prints the table.")
    _add_common(p, table=False)
    p.add_argument("--models", required=True, type=_model_pair, metavar="FIRST,SECOND",
                   help="two registered model names (the lake's models table; the first model's tables are unprefixed)")
    p.add_argument("--sigma", type=_non_negative_float, help="noise level both were probed at (default: the only one they share)")
    p.add_argument("--first-layers", type=_names, default=(), help="comma-separated tables of the first model (default: all)")
    p.add_argument("--second-layers", type=_names, default=(), help="comma-separated tables of the second model (default: all)")
    p.add_argument("--block-rows", type=_positive_int, default=10_000, help="rows read at a time (default 10000); the result does not depend on it")


def _cka_command(args: argparse.Namespace) -> int:
    from .commands import cka_table, run_cka

    first, second = args.models
    outcome = run_cka(args.lake, first, second, args.sigma, args.first_layers, args.second_layers, block_rows=args.block_rows, **_common(args))
    if not args.json:
        print_cka(*cka_table(args.lake, outcome.group))
    return _print_result(args, [outcome])


def add_neighbourhood_command(sub: Any) -> None:
    p = command(sub, "neighbourhood", _neighbourhood_command, help="which samples two tables give different nearest neighbours",
                description="For the samples both tables hold: the share of each one's k nearest shared samples in the first "
                "key's PCA space that are not among its k nearest in the second's (0: the same neighbourhood, 1: none shared), "
                "into analysis/neighbourhood/<first>~<second>; colour and sort by it in the explorer. Each key's PCA is computed "
                "first when missing.")
    _add_common(p, table=False)
    p.add_argument("--keys", required=True, type=_key_pair, metavar="FIRST,SECOND",
                   help="two analysis keys <layer>@sigma<s> as `list` prints them, e.g. the same block of two models: "
                   "enc.8x8_block2@sigma2,teacher-stand-in.enc.8x8_block2@sigma2 (layer aliases work)")
    p.add_argument("--k", type=_positive_int, default=NEIGHBOURHOOD_K, help=f"neighbours compared per sample (default {NEIGHBOURHOOD_K})")
    _add_pca_dim(p)
    p.add_argument("--exact-below", type=_positive_int, default=20000,
                   help="below this many shared samples the graphs are exact, above NN-descent (default 20000)")
    p.add_argument("--seed", type=int, default=42, help="NN-descent seed (default 42)")


def _key_pair(text: str) -> tuple[str, ...]:
    """`--keys FIRST,SECOND`: exactly two analysis keys."""
    if len(keys := _names(text)) != 2:
        raise argparse.ArgumentTypeError(f"{text!r}: give two analysis keys, e.g. enc.8x8_block2@sigma2,teacher-stand-in.enc.8x8_block2@sigma2")
    return keys


def _neighbourhood_command(args: argparse.Namespace) -> int:
    from .commands import NeighbourhoodConfig, run_neighbourhood

    config = NeighbourhoodConfig(k=args.k, pca_dim=args.pca_dim, exact_below=args.exact_below, seed=args.seed)
    first, second = args.keys
    return _print_result(args, [run_neighbourhood(args.lake, first, second, config, **_common(args))])


def add_sets_command(sub: Any) -> None:
    p = command(sub, "sets", _sets_command, help="two models' generated samples compared in one key's feature space",
                description="Frechet distance and precision/recall/density/coverage of the second generated set against the first "
                "(the reference, as real is in `compare`), overall and per class, in one key's PCA space (the key picks whose "
                "features: e.g. the student's or the teacher's layer), into analysis/sets/<key>/<first>__vs__<second>. "
                "Both sets must be probed in the key's table (`ingest activations --source generated`).")
    _add_common(p)
    p.add_argument("--models", required=True, type=_set_pair, metavar="FIRST,SECOND",
                   help="two generated sets: a registered model name for its one-step samples, with ~<schedule> for its "
                   "multi-step or Heun samples (micro,micro~sigmas80-21.3641-4.19162-0.5 or student,teacher~heun32)")
    p.add_argument("--k", type=_positive_int, default=5, help="k of the k-NN balls for precision/recall/density/coverage (default 5)")
    p.add_argument("--max-per-set", type=_positive_int, default=10000,
                   help="precision/recall/density/coverage use at most this many rows per set, class balanced (default 10000)")
    p.add_argument("--seed", type=int, default=42, help="seed of that subsample (default 42)")
    _add_pca_dim(p)
    p.add_argument("--max-classes", type=int, default=20, help="classes to print, largest Frechet distance first (default 20)")


def _set_pair(text: str) -> tuple[str, ...]:
    """`--models FIRST,SECOND` of `sets`: exactly two generated sets."""
    if len(given := _names(text)) != 2:
        raise argparse.ArgumentTypeError(f"{text!r}: give two generated sets, e.g. micro,micro~sigmas80-21.3641-4.19162-0.5")
    return given


def _sets_command(args: argparse.Namespace) -> int:
    from .commands import SetsConfig, run_sets, sets_table

    config = SetsConfig(k=args.k, max_per_set=args.max_per_set, seed=args.seed, pca_dim=args.pca_dim)
    first, second = args.models
    outcome = run_sets(args.lake, first, second, args.layer, args.sigma, config, timestep=args.timestep, **_common(args))
    if not args.json:
        print_sets(sets_table(args.lake, outcome.group), args.max_classes)
    return _print_result(args, [outcome])
