"""The `python -m ingest` command line: one subcommand per ingest job.

Each job module exposes `add_parser(subparsers)`, which registers its flags and sets
`run` to a function taking the parsed arguments. Job modules import heavy libraries
(torch, zarr) inside `run`, so `--help` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

JOB_MODULES = ("ingest.npz", "ingest.jpeg", "ingest.demo_data", "ingest.generate", "ingest.activations")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ingest",
        description="Stream real images, generated samples and their activations into a DMD2 Visualizer lake.",
    )
    subparsers = parser.add_subparsers(dest="job", required=True, metavar="JOB")
    for name in JOB_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_reporting_errors(args.run, args)


def run_reporting_errors(run, args) -> int:  # noqa: ANN001 - argparse callables
    """Run a job; user-facing errors become one line on stderr and exit status 2."""
    from lake.errors import LakeError

    from .errors import InputError

    try:
        run(args)
    except (InputError, LakeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: committed batches are kept; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0
