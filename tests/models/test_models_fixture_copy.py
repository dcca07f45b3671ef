"""The repository's copy of the DMD2 fixture is the one in ../shared/, byte for byte."""
from __future__ import annotations

from tests.fixtures.shared_copies import assert_copy_of_shared, digests
from tests.models.conftest import FIXTURE_COPY


def test_fixture_copy_is_byte_identical_to_shared():
    assert_copy_of_shared(FIXTURE_COPY, "fixtures/dmd2_imagenet64")


def test_fixture_copy_is_complete_without_shared():
    # What the network-reference tests read, present in the clone itself (README included).
    assert {"README.md", "state_dict_manifest.tsv", "reference_case_a.npz", "block_stats_case_a.tsv"} <= set(digests(FIXTURE_COPY))
