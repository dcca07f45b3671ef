"""Shared fixtures for the models/ tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # the package is not necessarily installed
    sys.path.insert(0, str(REPO))


# The repository carries the fixture (a byte-identical copy of ../shared/fixtures/dmd2_imagenet64,
# checked by test_models_fixture_copy.py), so a contributor's clone runs these tests too.
FIXTURE_COPY = REPO / "tests" / "fixtures" / "dmd2_imagenet64"


@pytest.fixture(scope="session")
def dmd2_fixture_dir() -> Path:
    """The DMD2 compatibility fixtures: the repository's copy (env DMD2_FIXTURES overrides it)."""
    path = Path(os.environ.get("DMD2_FIXTURES", FIXTURE_COPY))
    if not (path / "state_dict_manifest.tsv").is_file():
        # Never a skip: the copy ships with the repository, so a missing one is a broken clone
        # or a wrong DMD2_FIXTURES, and skipping would hide every network-reference test.
        pytest.fail(f"DMD2 fixtures not found at {path} (tests/fixtures/dmd2_imagenet64 ships with the repository; check DMD2_FIXTURES)")
    return path


@pytest.fixture(scope="session")
def tiny_generator():
    """The tiny preset with random weights (seed 0); tests must not modify it."""
    from models import build_generator

    return build_generator("tiny", seed=0)
