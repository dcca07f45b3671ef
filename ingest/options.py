"""Flags shared by ingest jobs, so every job spells and explains them the same way."""
from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence
from typing import Any

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


def comma_list(text: str | Sequence[Any]) -> list[str]:
    """The tokens of a comma-separated flag (or the items of a list, as text), stripped, empty ones dropped.

    Every list-valued flag goes through here, so each spells its items the same way;
    order and repeats are kept (each parser decides what a repeat means).
    """
    tokens = text.split(",") if isinstance(text, str) else [str(t) for t in text]
    return [token.strip() for token in tokens if token.strip()]


def parse_class_list(text: str | Sequence[int | str] | None) -> tuple[int, ...] | None:
    """--classes (comma-separated, or a list of ids, wnids or names) as standard class ids, in order, without duplicates."""
    from lake.classes import imagenet_classes

    from .errors import InputError

    if text is None or len(text) == 0:
        return None
    table = imagenet_classes()
    chosen: list[int] = []
    for token in comma_list(text):
        try:
            class_id = table.resolve(token)
        except ValueError as exc:
            raise InputError(f"--classes: {exc}") from None
        if class_id not in chosen:
            chosen.append(class_id)
    if not chosen:
        raise InputError("--classes: no class given")
    return tuple(chosen)


def parse_sigmas(text: str | Sequence[float]) -> list[float]:
    """--sigmas (comma-separated, or numbers) as float32-exact values in the order given (duplicates dropped)."""
    import numpy as np

    from .errors import InputError

    values: list[float] = []
    for token in comma_list(text):
        try:
            value = float(token)
        except ValueError:
            raise InputError(f"--sigmas: {token!r} is not a number") from None
        if not math.isfinite(value) or value <= 0:
            raise InputError(f"--sigmas: noise levels must be positive and finite, got {token}")
        value = float(np.float32(value))
        if value not in values:
            values.append(value)
    if not values:
        raise InputError("--sigmas: give at least one noise level, e.g. 0.5,2,10,80")
    return values
