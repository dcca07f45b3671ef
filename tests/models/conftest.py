"""Shared fixtures for the models/ tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # the package is not necessarily installed
    sys.path.insert(0, str(REPO))


@pytest.fixture(scope="session")
def dmd2_fixture_dir() -> Path:
    """The read-only DMD2 compatibility fixtures (env DMD2_FIXTURES overrides the default)."""
    path = Path(os.environ.get("DMD2_FIXTURES", REPO.parent / "shared" / "fixtures" / "dmd2_imagenet64"))
    if not (path / "state_dict_manifest.tsv").is_file():
        message = f"DMD2 fixtures not found at {path} (set DMD2_FIXTURES)"
        if os.environ.get("CI"):  # CI always has shared/ beside the clone: a skip there would hide a failure
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def tiny_generator():
    """The tiny preset with random weights (seed 0); tests must not modify it."""
    from models import build_generator

    return build_generator("tiny", seed=0)
