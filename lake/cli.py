"""Command-line plumbing shared by ``python -m ingest`` and ``python -m analysis``.

- `command()` registers a subcommand and the function that runs it (`set_defaults(run=...)`);
- `run_cli()` parses, dispatches, and turns a user-facing error (a `LakeError`, or the
  package's own error type) into one line ``error: ...`` on stderr with exit status 2,
  and Ctrl-C into a one-line note with status 130;
- validators: argparse types (`int_at_least(n)`, `positive_int`, `non_negative_float`) and
  `require_positive()` for values checked after parsing (also from Python callers).

Only argparse and the standard library are imported here, so ``--help`` stays instant
(no numpy, zarr or torch).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

Handler = Callable[[argparse.Namespace], "int | None"]


def command(subparsers: Any, name: str, run: Handler, **kwargs: Any) -> argparse.ArgumentParser:
    """Add subcommand `name` (argparse `add_parser` keywords) whose parsed arguments go to `run`."""
    parser = subparsers.add_parser(name, **kwargs)
    parser.set_defaults(run=run)
    return parser


def run_cli(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    errors: tuple[type[BaseException], ...] = (),
    interrupted: str = "interrupted",
) -> int:
    """Parse `argv`, run the chosen subcommand's handler, and return the exit status.

    `errors` are the exception types whose message is for the user (besides LakeError):
    they print as one line and give status 2. Anything else is a bug and raises.
    """
    args = parser.parse_args(argv)
    from .errors import LakeError

    try:
        return int(args.run(args) or 0)
    except (LakeError, *errors) as exc:  # type: ignore[misc]  # mypy cannot type a starred tuple of exception types
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130


def int_at_least(minimum: int) -> Callable[[str], int]:
    """argparse type: an integer of at least `minimum` (0: "must not be negative")."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must not be negative" if minimum == 0 else f"{text!r} must be at least {minimum}")
        return value

    parse.__name__ = "positive_int" if minimum == 1 else f"int_at_least_{minimum}"
    return parse


# argparse type: an integer of at least 1.
positive_int = int_at_least(1)


def non_negative_float(text: str) -> float:
    """argparse type: a number of at least 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def require_positive(value: int | None, flag: str, error: type[Exception] = ValueError) -> None:
    """Raise `error` naming `flag` unless `value` is None or a positive integer."""
    if value is not None and value <= 0:
        raise error(f"{flag} must be a positive integer, got {value}")


def require_non_negative(value: float, flag: str, error: type[Exception] = ValueError) -> None:
    """Raise `error` naming `flag` when `value` is negative."""
    if value < 0:
        raise error(f"{flag} must be >= 0, got {value}")
