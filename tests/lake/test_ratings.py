"""A/B ratings in the lake: one committed row per rating, read back typed and by plain xarray, refused
whole when bad or while a job writes, and never half-written by a kill -9."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
import xarray as xr

from lake import LakeLockedError, LakeWriter, Provenance, Rating, append_rating, open_lake, read_ratings
from lake.ratings import latest_ratings
from tests.conftest import REPO, tree_digest

RATING = Rating("gen/a/s0/1", "gen/b~heun8/s0/1", "a", "b~heun8", "first", "second", "ada")


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    path = tmp_path / "lake"
    with LakeWriter.open(path, Provenance(job="make")):
        pass
    return path


def test_ratings_are_appended_in_order_and_read_back(lake: Path) -> None:
    first = append_rating(lake, RATING)
    second = append_rating(lake, replace(RATING, choice="tie", rater="  grace   hopper "))
    assert first.rated_at and first.rating_id.startswith(first.rated_at) and first.rating_id != second.rating_id
    assert second.rater == "grace hopper"  # spaces as typed are not a different rater
    assert read_ratings(open_lake(lake)) == [first, second]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = xr.open_zarr(lake, group="ratings")
    assert table.choice.values.tolist() == ["first", "tie"] and table.sizes["rating"] == 2
    assert read_ratings(open_lake(lake)) != [] and open_lake(lake).ratings().sizes["rating"] == 2


def test_a_lake_without_ratings_reads_as_none(lake: Path) -> None:
    assert read_ratings(open_lake(lake)) == []


@pytest.mark.parametrize(("change", "says"), [
    ({"choice": "both"}, "rating choice must be one of first, second, tie, got 'both'"),
    ({"left": "middle"}, "rating side must be first or second"),
    ({"rater": "   "}, "a rating needs the rater's name"),
    ({"second_sample_id": ""}, "a rating names both samples and both models"),
])
def test_a_bad_rating_is_a_one_line_error_and_writes_nothing(lake: Path, change: dict[str, str], says: str) -> None:
    before = tree_digest(lake)
    with pytest.raises(ValueError, match=says) as caught:
        append_rating(lake, replace(RATING, **change))
    assert "\n" not in str(caught.value)
    assert tree_digest(lake) == before


def test_while_a_job_writes_the_rating_is_refused_whole(lake: Path) -> None:
    with LakeWriter.open(lake, Provenance(job="a long job")):
        with pytest.raises(LakeLockedError, match="is being written"):
            append_rating(lake, RATING)
    assert read_ratings(open_lake(lake)) == []


def test_each_raters_latest_word_on_a_pair_counts() -> None:
    ada_first, grace, ada_again = RATING, replace(RATING, rater="grace"), replace(RATING, choice="tie")
    other_pair = replace(RATING, first_sample_id="gen/a/s0/2", second_sample_id="gen/b~heun8/s0/2")
    assert latest_ratings([ada_first, grace, other_pair, ada_again]) == [grace, other_pair, ada_again]


RATE_FOREVER = """
import sys
from lake import Rating, append_rating
path = sys.argv[1]
k = 0
while True:
    append_rating(path, Rating(f"gen/a/s0/{k}", f"gen/b~heun8/s0/{k}", "a", "b~heun8", "first", "first", "ada"))
    k += 1
"""


def test_kill_minus_9_mid_rating_loses_no_committed_rating_and_leaves_no_partial_row(lake: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", RATE_FOREVER, str(lake)], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while process.poll() is None and len(read_ratings(open_lake(lake))) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.poll() is None, "the rating process ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    kept = read_ratings(open_lake(lake))
    assert len(kept) >= 5
    # Every visible row is whole and they are the process's ratings 0..n-1, in order, none twice.
    assert [r.first_sample_id for r in kept] == [f"gen/a/s0/{k}" for k in range(len(kept))]
    assert all(r.rating_id and r.rated_at and r.rater == "ada" and r.choice == "first" for r in kept)
    # The next rating (the page after a restart) appends right after them; the killed write left no trace.
    after = append_rating(lake, replace(RATING, first_sample_id="gen/a/s0/next"))
    assert read_ratings(open_lake(lake)) == [*kept, after]
    runs = [open_lake(lake).attrs(group) for group in open_lake(lake).groups("provenance") if group != "provenance"]
    assert [run["job"] for run in runs].count("explorer rating") == len(kept) + 1
    assert {run["status"] for run in runs if run["job"] == "explorer rating"} == {"complete"}
