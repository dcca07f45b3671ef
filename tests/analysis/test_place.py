"""`python -m analysis place`: new samples on the stored map, without refitting (analysis/placement.py, steps/place.py).

One small lake is built per module (a synthetic table, PCA and a 2-D UMAP on its first
rows, then more rows probed after the fit); each test works on its own copy.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from analysis import neighbors
from analysis.cli import main
from analysis.commands import list_analyses, run_pca, run_place, run_umap
from analysis.embedding import UMAPParams, fit_umap
from analysis.errors import AnalysisError
from analysis.placement import (
    METHOD,
    membership_weights,
    nearest_fitted,
    nearest_neighbour_placement,
    place,
    relative_displacement,
    map_spacing,
)
from lake import open_lake
from lake.layout import parse_key
from tests.analysis.conftest import synthetic_table, write_activations, write_samples
from tests.conftest import run_cli, tree_digest

KEY = "enc.8x8_block2@sigma2"
PARAMS = UMAPParams(n_neighbors=10, pca_dim=8)
PARAMS_3D = UMAPParams(n_components=3, n_neighbors=12, pca_dim=8)
FITTED = 200  # rows in the table when the PCA and UMAP were fitted
NEW = 30  # rows probed afterwards


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake with PCA + UMAP fitted on FITTED rows, then NEW more rows probed (not fitted)."""
    table = synthetic_table(n_real=130, n_generated=100, n_channel=16, sigmas=(2.0,), nan_rows=0)
    path = tmp_path_factory.mktemp("place") / "lake"
    first, last = slice(0, FITTED), slice(FITTED, FITTED + NEW)
    write_activations(path, "enc.8x8_block2", table.values[first], table.sample_ids[first], table.source[first],
                      table.class_id[first], table.sigmas)
    write_samples(path, table.sample_ids, table.source, table.class_id, table.split)
    run_pca(path, "enc.8x8_block2", 2.0, pca_dim=8, log=quiet, progress=False)
    run_umap(path, "enc.8x8_block2", 2.0, PARAMS, log=quiet, progress=False)
    run_umap(path, "enc.8x8_block2", 2.0, PARAMS_3D, log=quiet, progress=False)
    write_activations(path, "enc.8x8_block2", table.values[last], table.sample_ids[last], table.source[last],
                      table.class_id[last], table.sigmas)
    return path


@pytest.fixture
def lake(base: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(base, tmp_path / "lake"))


def placed(lake: Path, name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(sample ids, coordinates or scores) of the placed group."""
    ds = open_lake(lake).result("placed", KEY, name)
    values = ds["embedding" if name else "scores"].values
    return np.asarray(ds["sample_id"].values, dtype=object), values


def outcome_run_id(view, job: str) -> str:
    """The run id of the latest provenance record of `job`."""
    return [r for r in view.provenance() if r.get("job") == job][-1]["run_id"]


def test_fitted_rows_placed_land_near_their_stored_coordinates(base: Path) -> None:
    lake, key = open_lake(base), parse_key(KEY)
    scores = np.asarray(lake.column(key.pca_group, "scores"), dtype=np.float32)
    name = PARAMS.name
    coords = np.asarray(lake.column(key.embedding_group(name), "embedding"), dtype=np.float32)
    rows = np.arange(len(scores))
    # With itself among its neighbours (distance 0, weight 1) a fitted row lands exactly on itself.
    np.testing.assert_array_equal(place(scores, coords, scores, 10), coords)
    # Without itself it lands among its neighbours: far closer than a random fitted row would be.
    loo = place(scores, coords, scores, 10, exclude=rows)
    spacing = map_spacing(coords)
    moved = relative_displacement(loo, coords, spacing)
    random = relative_displacement(coords[np.random.default_rng(0).permutation(len(coords))], coords, spacing)
    assert np.isfinite(loo).all()
    assert moved < 0.2 * random
    # the measured choice: fit-time weights (rho = nearest distance) beat transform's flat ones (rho = 0)
    # and keep up with the trivial nearest-neighbour baseline
    transform_weights = place(scores, coords, scores, 10, exclude=rows, local_connectivity=0.0)
    assert moved < relative_displacement(transform_weights, coords, spacing)
    baseline = nearest_neighbour_placement(nearest_fitted(scores, scores, 1, exclude=rows), coords)
    assert moved <= 1.1 * relative_displacement(baseline, coords, spacing)


def test_weighted_mean_is_umaps_own_transform_initialisation(base: Path) -> None:
    from umap.umap_ import init_graph_transform

    lake, key = open_lake(base), parse_key(KEY)
    scores = np.asarray(lake.column(key.pca_group, "scores"), dtype=np.float32)
    model = fit_umap(scores[:150], PARAMS)
    model.transform_mode = "graph"
    graph = model.transform(scores[150:]).tocsr()
    graph.eliminate_zeros()
    ours = place(scores[:150], model.embedding_, scores[150:], int(model.n_neighbors), local_connectivity=0.0)
    np.testing.assert_allclose(ours, init_graph_transform(graph, model.embedding_), atol=1e-4)
    weights = membership_weights(nearest_fitted(scores[:150], scores[150:], 10).distances, local_connectivity=0.0)
    # umap's calibration (rho = 0 in transform): each query's sigma makes the weights of all but the
    # nearest neighbour sum to log2(k) (smooth_knn_dist skips column 0, the point itself in a fit)
    assert ((weights > 0) & (weights < 1)).all()
    np.testing.assert_allclose(weights[:, 1:].sum(axis=1), np.log2(10), rtol=1e-3)


def test_place_writes_placed_groups_and_never_touches_fitted_tables(lake: Path) -> None:
    key = parse_key(KEY)
    before = {group: tree_digest(lake / group) for group in (key.pca_group, key.embeddings_group, "activations", "samples")}
    outcome = run_place(lake, KEY, log=quiet)
    assert not outcome.reused and outcome.summary["placed"] == NEW and outcome.summary["new"] == NEW
    assert {group: tree_digest(lake / group) for group in before} == before
    view = open_lake(lake)
    fitted_ids = set(view.column(key.pca_group, "sample_id"))
    ids, scores = placed(lake)
    assert len(ids) == NEW and not fitted_ids & set(ids)  # placed, never fitted
    assert scores.shape == (NEW, 8) and np.isfinite(scores).all()
    ids_2d, coords = placed(lake, PARAMS.name)
    assert list(ids_2d) == list(ids) and coords.shape == (NEW, 2) and np.isfinite(coords).all()
    ids_3d, coords_3d = placed(lake, PARAMS_3D.name)  # every stored embedding, with its own n_neighbors
    assert list(ids_3d) == list(ids) and coords_3d.shape == (NEW, 3) and np.isfinite(coords_3d).all()
    assert view.result_attrs("placed", KEY, PARAMS_3D.name)["parameters"]["n_neighbors"] == 12
    fitted_3d = np.asarray(view.column(key.embedding_group(PARAMS_3D.name), "embedding"), dtype=np.float32)
    assert np.allclose(coords_3d, place(None, fitted_3d, None, 12, neighbourhood=nearest_fitted(
        np.asarray(view.column(key.pca_group, "scores"), dtype=np.float32), scores, 12)))
    # pca_run_id and the embedding's run_id, the method and its leave-one-out figure are recorded
    attrs = view.result_attrs("placed", KEY)
    e_attrs = view.result_attrs("placed", KEY, PARAMS.name)
    assert attrs["pca_run_id"] == view.attrs(key.pca_group)["run_id"] == e_attrs["pca_run_id"]
    assert e_attrs["embedding_run_id"] == view.attrs(key.embedding_group(PARAMS.name))["run_id"]
    assert attrs["method"] == e_attrs["method"] == METHOD and 0 < e_attrs["leave_one_out_displacement"] < 10
    assert attrs["leave_one_out_displacement"][PARAMS.name] == e_attrs["leave_one_out_displacement"]
    assert set(attrs["leave_one_out_displacement"]) == {PARAMS.name, PARAMS_3D.name}
    assert attrs["neighbours_k"] == 15  # at least PLACED_NEIGHBOURS, more when an embedding uses more
    assert e_attrs["run_id"] == attrs["run_id"] == outcome_run_id(view, "analysis place")
    # the scores are the stored PCA transform of the new rows' activations
    from analysis.store import project

    act = view.activations("enc.8x8_block2", 2.0)
    rows = np.flatnonzero(np.isin(np.asarray(act["sample_id"].values, dtype=object), ids))
    np.testing.assert_allclose(scores, project(lake, KEY, act["mean"].values[rows]), rtol=1e-5, atol=1e-5)
    # the stored neighbours are the nearest fitted rows, nearest first, ids and rows agreeing
    ds = view.result("placed", KEY)
    rows_k, dist_k = ds["neighbor_row"].values, ds["distance"].values
    fitted_scores = np.asarray(view.column(key.pca_group, "scores"), dtype=np.float32)
    exact = nearest_fitted(fitted_scores, scores, rows_k.shape[1])
    np.testing.assert_array_equal(rows_k, exact.rows)
    assert (np.diff(dist_k, axis=1) >= 0).all()
    assert (np.asarray(view.column(key.pca_group, "sample_id"))[rows_k] == ds["neighbor_id"].values).all()


def test_appending_is_idempotent_and_keeps_earlier_rows_bit_identical(lake: Path, tmp_path: Path) -> None:
    all_at_once = Path(shutil.copytree(lake, tmp_path / "once"))
    run_place(all_at_once, KEY, log=quiet)
    view = open_lake(lake)
    new_ids = [i for i in view.column("activations/enc.8x8_block2", "sample_id")[FITTED:]]
    run_place(lake, KEY, ids=new_ids[:7], log=quiet)
    first_ids, first_coords = placed(lake, PARAMS.name)
    assert list(first_ids) == new_ids[:7]
    digest = tree_digest(lake)
    again = run_place(lake, KEY, ids=new_ids[:7], log=quiet)
    assert again.reused and tree_digest(lake) == digest  # nothing new: nothing written
    outcome = run_place(lake, KEY, log=quiet)
    assert outcome.summary == {**outcome.summary, "placed": NEW, "new": NEW - 7}
    ids, coords = placed(lake, PARAMS.name)
    assert list(ids[:7]) == list(first_ids) and np.array_equal(coords[:7], first_coords)
    assert sorted(ids) == sorted(new_ids) and len(set(ids)) == NEW  # no duplicates
    # a sample's placement depends only on it and the stored map: in batches = all at once
    once_ids, once_coords = placed(all_at_once, PARAMS.name)
    order = {s: i for i, s in enumerate(once_ids)}
    np.testing.assert_array_equal(coords, once_coords[[order[s] for s in ids]])
    assert run_place(lake, KEY, log=quiet).reused


def test_placed_rows_of_an_older_embedding_are_stale_and_all_placed_again(lake: Path) -> None:
    run_place(lake, KEY, ids=[open_lake(lake).column("activations/enc.8x8_block2", "sample_id")[FITTED]], log=quiet)
    old_run = open_lake(lake).result_attrs("placed", KEY, PARAMS.name)["embedding_run_id"]
    def listed_stale() -> bool:
        return next(r["stale"] for r in list_analyses(lake)["analyses"] if r["kind"] == "placed")

    assert listed_stale() is False
    run_umap(lake, "enc.8x8_block2", 2.0, PARAMS, force=True, log=quiet, progress=False)  # a new embedding run
    assert listed_stale() is True
    messages: list[str] = []
    outcome = run_place(lake, KEY, log=messages.append)
    assert listed_stale() is False
    assert any("stale" in m for m in messages) and not outcome.reused
    view = open_lake(lake)
    attrs = view.result_attrs("placed", KEY, PARAMS.name)
    assert attrs["embedding_run_id"] == view.attrs(parse_key(KEY).embedding_group(PARAMS.name))["run_id"] != old_run
    assert view.result_attrs("placed", KEY)["runs"] == [attrs["run_id"]]  # rebuilt by this run alone
    ids, coords = placed(lake, PARAMS.name)
    assert len(ids) == NEW and np.isfinite(coords).all()
    # a new PCA makes every placed row stale too; its embedding is then stale, so only scores are placed
    run_pca(lake, "enc.8x8_block2", 2.0, pca_dim=8, force=True, log=quiet, progress=False)
    messages.clear()
    run_place(lake, KEY, log=messages.append)
    view = open_lake(lake)
    assert view.result_attrs("placed", KEY)["pca_run_id"] == view.attrs(parse_key(KEY).pca_group)["run_id"]
    assert any("older PCA" in m for m in messages)
    # the refit PCA covers every probed row, so nothing is left to place and the stale rows are gone
    assert len(placed(lake)[0]) == 0 and view.children(parse_key(KEY).placed_group) == []


def test_refused_inputs_are_one_line_errors_and_leave_the_lake_unchanged(lake: Path, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    before = tree_digest(lake)
    fitted = open_lake(lake).column("activations/enc.8x8_block2", "sample_id")[0]
    cases = [
        (["--key", "no.such_layer@sigma2"], "no activations for layer 'no.such_layer'"),
        (["--key", "enc.8x8_block2@sigma7"], "has no sigma 7"),
        (["--key", "enc.8x8_block2"], "--key 'enc.8x8_block2': not an analysis key"),
        (["--key", KEY, "--ids", "gen/nope/1"], "--ids gen/nope/1: unknown sample id"),
        (["--key", KEY, "--ids", fitted], f"--ids {fitted}: a fitted row of analysis/pca/{KEY}"),
    ]
    for args, message in cases:
        assert main(["place", "--lake", str(lake), *args]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    result = run_cli("analysis", "place", "--lake", str(lake), "--key", KEY, "--ids", "gen/nope/1")  # a real process too
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: --ids gen/nope/1: unknown sample id (not in activations/enc.8x8_block2)"]
    assert tree_digest(lake) == before
    # a key with activations but no PCA
    bare = tmp_path / "bare"
    table = synthetic_table(n_real=20, n_generated=10, n_channel=4, sigmas=(2.0,), nan_rows=0)
    write_activations(bare, "enc.8x8_block2", table.values, table.sample_ids, table.source, table.class_id, table.sigmas)
    with pytest.raises(AnalysisError, match="no PCA for enc.8x8_block2@sigma2; run `python -m analysis pca"):
        run_place(bare, KEY, log=quiet)


def test_cli_json_and_the_neighbour_reader(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["place", "--lake", str(lake), "--key", KEY, "--json"]) == 0
    outcome = json.loads(capsys.readouterr().out)[0]
    assert outcome["analysis"] == "placed" and outcome["summary"]["placed"] == NEW
    view = open_lake(lake)
    ids, _ = placed(lake)
    row = neighbors.placed_row(view, KEY, ids[3])
    assert row == 3 and neighbors.placed_row(view, KEY, "gen/nope/1") is None
    k = neighbors.stored_k(view, KEY, placed=True)
    found = neighbors.graph_row(view, KEY, row, placed=True)
    assert k >= PARAMS.n_neighbors and len(found.ids) == k
    fitted_ids = np.asarray(view.column(parse_key(KEY).pca_group, "sample_id"))
    assert (fitted_ids[found.rows] == found.ids).all() and (np.diff(found.distances) >= 0).all()
    # the k-NN graph API is unchanged (no graph stored here)
    assert neighbors.stored_k(view, KEY) == 0


def test_other_metrics_search_exactly_and_leave_out_the_row_itself() -> None:
    rng = np.random.default_rng(3)
    fitted = rng.normal(size=(60, 5)).astype(np.float32)
    rows = np.array([4, 17, 33])
    near = nearest_fitted(fitted, fitted[rows], 6, metric="cosine", exclude=rows)
    unit = fitted / np.linalg.norm(fitted, axis=1, keepdims=True)
    cosine = 1.0 - unit[rows] @ unit.T
    cosine[np.arange(3), rows] = np.inf  # itself left out
    np.testing.assert_array_equal(near.rows, np.argsort(cosine, axis=1, kind="stable")[:, :6])
    np.testing.assert_allclose(near.distances, np.sort(cosine, axis=1)[:, :6], atol=1e-5)
    with pytest.raises(AnalysisError, match="metric 'nope'"):
        nearest_fitted(fitted, fitted[rows], 6, metric="nope")


@pytest.mark.parametrize("earlier", [False, True], ids=["first placement", "append"])
def test_a_run_that_fails_midway_leaves_the_lake_as_it_was(lake: Path, earlier: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    import analysis.steps.place as step

    new_ids = list(open_lake(lake).column("activations/enc.8x8_block2", "sample_id")[FITTED:])
    if earlier:  # some samples placed by an earlier run: this one appends
        run_place(lake, KEY, ids=new_ids[:5], log=quiet)
    before = tree_digest(lake)

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("disk full")  # after the placed/<key> rows are written, before the embeddings'

    monkeypatch.setattr(step, "placed_embedding_spec", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        run_place(lake, KEY, log=quiet)
    assert tree_digest(lake) == before
    monkeypatch.undo()
    assert run_place(lake, KEY, log=quiet).summary["placed"] == NEW  # and the rerun completes


def test_a_writer_that_commits_while_placement_computes_makes_it_refuse(lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import analysis.steps.place as step

    compute = step.compute_placement
    new_ids = list(open_lake(lake).column("activations/enc.8x8_block2", "sample_id")[FITTED:])

    def meanwhile(*args: object, **kwargs: object) -> object:
        result = compute(*args, **kwargs)  # type: ignore[arg-type]
        monkeypatch.setattr(step, "compute_placement", compute)
        run_place(lake, KEY, ids=new_ids[:3], log=quiet)  # another job places some of the same samples
        return result

    monkeypatch.setattr(step, "compute_placement", meanwhile)
    with pytest.raises(AnalysisError, match="changed while placing; run `python -m analysis place"):
        run_place(lake, KEY, log=quiet)
    assert list(placed(lake)[0]) == new_ids[:3]  # only the other job's rows: nothing duplicated
    assert run_place(lake, KEY, log=quiet).summary["placed"] == NEW
