"""Provenance records: what command wrote what, from which inputs, with which software."""
from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import sys
import uuid
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

_TRACKED_PACKAGES = ("dmd2-visualizer", "numpy", "zarr", "xarray", "torch", "dask", "umap-learn", "pynndescent")


@dataclass
class InputFile:
    """An input file: its path, size and a content hash."""

    path: str
    size: int
    sha256: str


@dataclass
class Provenance:
    """One job's record. Stored as attributes of its own group, so appends never clobber it."""

    job: str
    argv: list[str] = field(default_factory=lambda: list(sys.argv))
    inputs: list[InputFile] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    # Microseconds in both, so records of jobs started within one second still sort in order.
    run_id: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + uuid.uuid4().hex[:8])
    started: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds"))
    versions: dict[str, str] = field(default_factory=lambda: package_versions())
    host: str = field(default_factory=platform.node)

    def to_attrs(self) -> dict[str, Any]:
        return asdict(self)


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def describe_file(path: str | os.PathLike[str], *, hash_bytes: int | None = None) -> InputFile:
    """Size and sha256 of a file, streamed in 1 MiB blocks.

    `hash_bytes` limits hashing to the first N bytes plus the size (for multi-GB
    inputs where a full hash would cost as much as the ingest); the record says so.
    """
    p = Path(path)
    size = p.stat().st_size
    digest = hashlib.sha256()
    remaining = size if hash_bytes is None else min(size, hash_bytes)
    with p.open("rb") as fh:
        while remaining > 0:
            block = fh.read(min(1 << 20, remaining))
            if not block:
                break
            digest.update(block)
            remaining -= len(block)
    label = digest.hexdigest() if hash_bytes is None or hash_bytes >= size else f"first{hash_bytes}:{digest.hexdigest()}"
    return InputFile(path=str(p), size=size, sha256=label)
