"""The `python -m ingest` command line: one subcommand per ingest job.

Each job module exposes `add_parser(subparsers)`, which registers its flags and the
adapter `run(args)` that calls the job's plain function (`ingest_npz`, `ingest_jpeg`,
`generate`, `probe_activations`, the edit operations) with typed arguments; dispatch and one-line errors are
`lake.cli.run_cli`, shared with `python -m analysis`. Job modules import heavy libraries
(torch, zarr) inside their functions, so `--help` stays fast.
"""
from __future__ import annotations

import argparse
import importlib

JOB_MODULES = ("ingest.npz", "ingest.jpeg", "ingest.demo_data", "ingest.generate", "ingest.activations", "ingest.edit",
               "ingest.t2i")


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
    from lake.cli import run_cli

    from .errors import InputError

    return run_cli(build_parser(), argv, (InputError,),
                   interrupted="interrupted: committed batches are kept; rerun the same command to resume")
