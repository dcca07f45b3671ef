"""`analysis neighbourhood`: per shared sample, how many of its nearest neighbours two tables disagree on."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from analysis import NeighbourhoodConfig, list_analyses, run_neighbourhood, run_pca
from analysis.cli import main
from analysis.steps.neighbourhood import neighbourhood_change
from tests.analysis.conftest import write_activations
from tests.conftest import tree_digest

SIGMAS = np.asarray([2.0], dtype=np.float32)
N, MOVED = 120, np.arange(0, 120, 6)  # every sixth sample sits elsewhere in the second table


def quiet(message: str) -> None:
    """Keeps the runner's lines out of the test output."""


def test_the_score_is_the_share_of_neighbours_not_shared() -> None:
    first = np.array([[1, 2, 3, 4], [0, 2, 3, 4], [5, 6, 7, 8]])
    second = np.array([[4, 3, 2, 1], [0, 2, 9, 10], [1, 2, 3, 4]])
    np.testing.assert_array_equal(neighbourhood_change(first, second), np.array([0.0, 0.5, 1.0], dtype=np.float32))
    np.testing.assert_array_equal(neighbourhood_change(first, second, block_rows=1), neighbourhood_change(first, second))


@pytest.fixture(scope="module")
def two_tables(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two layers over the same 120 samples (plus 10 the second lacks): clusters of 6 that the second table keeps,
    except that it moves every sixth sample into another cluster."""
    lake = tmp_path_factory.mktemp("neighbourhood") / "lake"
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 30, (N // 6 + 2, 8))
    cluster = np.arange(N + 10) // 6
    base = centres[cluster] + rng.normal(0, 0.5, (N + 10, 8))
    moved = base[:N].copy()
    moved[MOVED] = centres[(cluster[MOVED] + 7) % len(centres)] + rng.normal(0, 0.5, (len(MOVED), 8))
    ids = np.array([f"in64/val_data/{i}" for i in range(N + 10)], dtype=object)
    for layer, values, rows in (("enc.8x8_block2", base, slice(0, N + 10)), ("dec.8x8_in0", moved[::-1], slice(N - 1, None, -1))):
        write_activations(lake, layer, values[:, None, :], ids[rows], np.full(len(values), "real", object),
                          np.zeros(len(values), np.int16), SIGMAS, rows_per_chunk=32)
    for layer in ("enc.8x8_block2", "dec.8x8_in0"):
        run_pca(lake, layer, 2.0, pca_dim=8, log=quiet, progress=False)
    return lake


def test_moved_samples_change_their_neighbourhood_and_the_rest_keep_it(two_tables: Path, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(two_tables, lake)
    config = NeighbourhoodConfig(k=4, pca_dim=8)
    outcome = run_neighbourhood(lake, "enc.8x8_block2@sigma2", "mid@sigma2", config, log=quiet, progress=False)  # the alias resolves
    assert outcome.group == "analysis/neighbourhood/enc.8x8_block2@sigma2~dec.8x8_in0@sigma2"
    ds = xr.open_zarr(lake, group=outcome.group)
    ids = np.asarray(ds["sample_id"].values, dtype=object).astype(str)
    assert list(ids) == [f"in64/val_data/{i}" for i in range(N)]  # the shared samples, in the first key's PCA order
    change = dict(zip(ids, ds["neighbourhood_change"].values))
    assert all(change[f"in64/val_data/{i}"] == 1.0 for i in MOVED)  # in another cluster: no neighbour in common
    kept = [change[f"in64/val_data/{i}"] for i in range(N) if i not in set(MOVED)]
    assert np.mean(kept) < 0.3  # the rest lose at most the moved member of their cluster
    np.testing.assert_array_equal(ds["shared_neighbours"].values, np.round((1 - ds["neighbourhood_change"].values) * 4))
    assert ds.attrs["n_shared"] == N and ds.attrs["first_key"] == "enc.8x8_block2@sigma2"

    assert run_neighbourhood(lake, "enc.8x8_block2@sigma2", "dec.8x8_in0@sigma2", config, log=quiet, progress=False).reused
    [record] = [r for r in list_analyses(lake)["analyses"] if r["kind"] == "neighbourhood"]
    assert record["stale"] is False and record["n_rows"] == N
    run_pca(lake, "dec.8x8_in0", 2.0, pca_dim=6, force=True, log=quiet, progress=False)  # another PCA: the result is stale, then recomputed
    [record] = [r for r in list_analyses(lake)["analyses"] if r["kind"] == "neighbourhood"]
    assert record["stale"] is True
    assert not run_neighbourhood(lake, "enc.8x8_block2@sigma2", "dec.8x8_in0@sigma2", config, log=quiet, progress=False).reused


def test_a_table_against_itself_changes_nothing(two_tables: Path, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(two_tables, lake)
    outcome = run_neighbourhood(lake, "enc.8x8_block2@sigma2", "enc.8x8_block2@sigma2", NeighbourhoodConfig(k=5, pca_dim=8), log=quiet, progress=False)
    assert outcome.summary["mean_change"] == 0.0 and outcome.summary["n_shared"] == N + 10


def test_the_command_defaults_are_the_config_defaults_and_errors_are_one_line(two_tables: Path, capsys) -> None:
    from analysis.cli import build_parser

    args = build_parser().parse_args(["neighbourhood", "--lake", "L", "--keys", "a@sigma2,b@sigma2"])
    assert NeighbourhoodConfig(k=args.k, pca_dim=args.pca_dim, exact_below=args.exact_below, seed=args.seed) == NeighbourhoodConfig()
    before = tree_digest(two_tables)
    assert main(["neighbourhood", "--lake", str(two_tables), "--keys", "enc.8x8_block2@sigma2,nope@sigma2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: {two_tables}: no activations for layer 'nope'") and len([e for e in err if e.startswith("error")]) == 1
    assert main(["neighbourhood", "--lake", str(two_tables), "--keys", "enc.8x8_block2@sigma2,dec.8x8_in0@sigma5"]) == 2
    assert "has no sigma 5" in capsys.readouterr().err
    assert tree_digest(two_tables) == before
