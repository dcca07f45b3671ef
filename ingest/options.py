"""Flags shared by ingest jobs, so every job spells and explains them the same way."""
from __future__ import annotations

import argparse
import os

DEFAULT_LAKE_ENV = "DMD2VIZ_LAKE"


def add_lake_flag(parser: argparse.ArgumentParser) -> None:
    default = os.environ.get(DEFAULT_LAKE_ENV)
    parser.add_argument(
        "--lake",
        required=default is None,
        default=default,
        help=f"lake directory to write (created if missing or empty; default: ${DEFAULT_LAKE_ENV})",
    )


def add_selection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="ingest at most the first N selected images (in input order); rerunning with a larger N adds only the difference")
    parser.add_argument("--classes", default=None, metavar="LIST",
                        help="comma-separated classes to keep: standard class ids (0..999), wnids (n01443537) or names (goldfish)")
    parser.add_argument("--per-class", type=int, default=None, metavar="K",
                        help="keep at most the first K images of each class (balanced subsets)")


def add_run_flags(parser: argparse.ArgumentParser, default_batch: int) -> None:
    parser.add_argument("--batch-size", type=int, default=default_batch, metavar="B",
                        help=f"images per write and commit (default {default_batch}); changes speed and memory, never the result")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def positive(value: int | None, flag: str) -> None:
    """InputError naming `flag` unless `value` is None or a positive integer (lake.cli's validator)."""
    from lake.cli import require_positive

    from .errors import InputError

    require_positive(value, flag, InputError)


def non_negative(value: float, flag: str) -> None:
    """InputError naming `flag` when `value` is negative."""
    from lake.cli import require_non_negative

    from .errors import InputError

    require_non_negative(value, flag, InputError)


def add_commit_flag(parser: argparse.ArgumentParser, default: float = 1.0) -> None:
    parser.add_argument("--commit-interval", type=float, default=default, metavar="SECONDS",
                        help=f"make written batches visible (and safe from kill -9) at most every SECONDS (default {default:g}; "
                        "0 commits every batch); a killed job redoes at most this much work when rerun")
