"""The explorer's command line: `streamlit run explorer/app.py -- --lake LAKE [...]`."""
from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

LAKE_ENV = "DMD2VIZ_LAKE"
THUMB_HOST_ENV = "DMD2VIZ_THUMB_HOST"
THUMB_PORT_ENV = "DMD2VIZ_THUMB_PORT"
DEBUG_ENV = "DMD2VIZ_DEBUG"
SCATTER_ENV = "DMD2VIZ_SCATTER"
SCATTERS = ("webgl", "vega")
DEFAULT_LAKE = "demo_lake"


@dataclass(frozen=True)
class ExplorerConfig:
    """Where the lake is and how thumbnails are served."""

    lake: Path
    thumb_host: str = "127.0.0.1"
    thumb_port: int = 0
    thumb_public_host: str | None = None
    debug: bool = False  # re-raise errors (Streamlit shows the traceback) instead of a one-line message
    read_only: bool = False  # no edit jobs: the explorer never starts a writer on the lake
    scatter: str = "webgl"  # the Explore page's scatter: "webgl" (every point, on the GPU) or "vega" (a sample)


def debug_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """Whether `DMD2VIZ_DEBUG` asks for debug mode ("1", "true", "yes" or "on", any case)."""
    value = (os.environ if environ is None else environ).get(DEBUG_ENV, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def _env_int(name: str) -> int:
    text = os.environ.get(name, "").strip()
    return int(text) if text.isdigit() else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamlit run explorer/app.py --",
        description="Interactive explorer of a DMD2 Visualizer lake. It only reads the lake, except for the edit jobs "
        "a researcher starts from it on this machine (--read-only turns those off).",
        exit_on_error=False,
    )
    parser.add_argument(
        "--lake",
        default=os.environ.get(LAKE_ENV, DEFAULT_LAKE),
        help=f"lake directory to explore (default: ${LAKE_ENV}, else ./{DEFAULT_LAKE})",
    )
    parser.add_argument(
        "--thumb-host",
        default=os.environ.get(THUMB_HOST_ENV, "127.0.0.1"),
        help=f"address the thumbnail server binds to (default: ${THUMB_HOST_ENV}, else 127.0.0.1: this machine only)",
    )
    parser.add_argument(
        "--thumb-port",
        type=int,
        default=_env_int(THUMB_PORT_ENV),
        help=f"port of the thumbnail server (default: ${THUMB_PORT_ENV}, else a free port)",
    )
    parser.add_argument(
        "--thumb-public-host",
        default=None,
        help="host name the browser uses to reach the thumbnail server (default: the bind address)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"show errors with their full traceback in the page instead of a one-line message (also: {DEBUG_ENV}=1); "
        "tracebacks always go to the server log",
    )
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="turn the edit jobs off: no job buttons, no jobs area, nothing is ever written to the lake "
        "(without it, only a browser on this machine, localhost, may start jobs)",
    )
    parser.add_argument(
        "--scatter",
        choices=SCATTERS,
        default=os.environ.get(SCATTER_ENV, "webgl") if os.environ.get(SCATTER_ENV, "webgl") in SCATTERS else "webgl",
        help=f"the Explore page's scatter (default: ${SCATTER_ENV}, else webgl): webgl draws every point on the GPU "
        "(a browser without WebGL gets vega); vega draws a stratified sample with Vega-Lite",
    )
    return parser


def parse_args(argv: list[str]) -> tuple[ExplorerConfig, list[str]]:
    """The config, plus one-line problems with the arguments (unknown or malformed ones are ignored)."""
    parser = build_parser()
    problems: list[str] = []
    try:
        args, unknown = parser.parse_known_args(argv)
    except (argparse.ArgumentError, ValueError) as exc:
        problems.append(f"ignoring the explorer arguments: {exc}")
        args, unknown = parser.parse_known_args([])[0], []
    if unknown:
        problems.append(f"ignoring unknown arguments: {' '.join(unknown)}")
    config = ExplorerConfig(
        lake=Path(args.lake).expanduser(),
        thumb_host=args.thumb_host,
        thumb_port=max(0, args.thumb_port),
        thumb_public_host=args.thumb_public_host,
        debug=bool(args.debug) or debug_from_env(),
        read_only=bool(args.read_only),
        scatter=args.scatter,
    )
    return config, problems
