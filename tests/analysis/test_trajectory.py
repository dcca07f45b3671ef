"""`python -m analysis trajectory`: the joint embedding across sigma, its scores, placed trajectory steps, errors.

The module's lake is embedded with the default method (aligned: AlignedUMAP on a fit
sample, the other cells and the trajectory steps placed from their nearest fitted cells);
method joint (one UMAP + transform) has its own smaller lake.

Every lake here is small and written through the lake API (tests/analysis/conftest.py);
the embeddings are real umap-learn fits.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analysis.cli import main
from analysis.commands import TrajectoryParams, list_analyses, run_trajectory
from analysis.sampling import group_labels
from analysis.steps.trajectory import read_inputs
from analysis.pca import PCAModel
from analysis.trajectory import SlicePlacer, fit_cells, jump_scores, nearest_slices
from lake import LakeWriter, Provenance, open_lake
from lake.layout import LayerShape, trajectory_layer_spec
from tests.analysis.conftest import SyntheticTable, build_lake, write_activations
from tests.conftest import run_cli, tree_digest

LAYER = "enc.8x8_block2"
SIGMAS = (0.5, 2.0, 10.0)
SCHEDULE = "sigmas10-2-0.5"


def drifting_table(n: int = 150, n_classes: int = 5, channels: int = 16, noise: float = 0.05, seed: int = 0,
                   duplicates: int = 0) -> SyntheticTable:
    """The same clustered points at every sigma plus small per-sigma noise; a few cells not probed.

    The last `duplicates` rows are other samples (own ids) with exactly the activations of rows 40, 41, ...
    """
    rng = np.random.default_rng(seed)
    class_id = (np.arange(n) % n_classes).astype(np.int16)
    centers = rng.normal(0.0, 3.0, (n_classes, channels))
    base = centers[class_id] + rng.normal(0.0, 1.0, (n, channels))
    values = np.stack([base + rng.normal(0.0, noise, base.shape) for _ in SIGMAS], axis=1).astype(np.float32)
    values[3, 1] = np.nan  # sample 3 not probed at sigma 2
    values[7:8, 0] = np.nan  # sample 7 (when there is one) not probed at sigma 0.5
    values[11:12] = np.nan  # sample 11 (when there is one) not probed at all
    if duplicates:
        values[n - duplicates :] = values[40 : 40 + duplicates]
        class_id[n - duplicates :] = class_id[40 : 40 + duplicates]
    source = np.array(["real" if i % 3 else "generated" for i in range(n)], dtype=object)
    ids = np.array([f"in64/val_data/{i}" if s == "real" else f"gen/test/s0/{i}" for i, s in enumerate(source)], dtype=object)
    split = np.where(source == "real", "val", "generated").astype(object)
    return SyntheticTable(values, ids, source, class_id, split, np.asarray(SIGMAS, dtype=np.float32))


def write_schedule(lake: Path, table: SyntheticTable, rows: np.ndarray, step_sigmas: tuple[float, ...]) -> np.ndarray:
    """trajectories/<schedule>/<layer> whose step means are the probes of `rows` at `step_sigmas` (as multi-step
    generation writes them); returns the step values."""
    positions = [SIGMAS.index(s) for s in step_sigmas]
    steps = table.values[rows][:, positions]
    spec = trajectory_layer_spec(SCHEDULE, LAYER, LayerShape(steps.shape[2], 8, 8), step_sigmas, {"model_id": "test"})
    with LakeWriter.open(lake, Provenance(job="test trajectories")) as writer:
        writer.table(spec).append({"mean": steps, "sample_id": np.array([f"gen/test~{SCHEDULE}/s0/{i}" for i in range(len(rows))], dtype=object),
                                   "class_id": table.class_id[rows]})
    return steps


# Fit on 3 x 40 of the ~447 probed cells, so most cells (and every trajectory step) are placed, not fitted.
PARAMS = TrajectoryParams(fit_size=120, pca_dim=8, n_neighbors=10, score_samples=150)  # the default method
TRAJECTORY_ROWS = np.arange(20, 40)
DUPLICATES = 6  # rows 144..149 repeat the activations of rows 40..45


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SyntheticTable, np.ndarray]:
    table = drifting_table(duplicates=DUPLICATES)
    lake = build_lake(tmp_path_factory.mktemp("trajectory") / "lake", table, rows_per_chunk=32)
    steps = write_schedule(lake, table, TRAJECTORY_ROWS, (10.0, 2.0, 0.5))
    outcome = run_trajectory(lake, "bottleneck", PARAMS, log=lambda _: None, progress=False)
    assert not outcome.reused and outcome.group == f"analysis/trajectory/{LAYER}" and outcome.key == LAYER
    return lake, table, steps


def test_sigma_coordinate_shapes_and_nan_exactly_where_not_probed(built) -> None:
    lake, table, _ = built
    ds = open_lake(lake).joint_embedding(LAYER)
    assert ds["embedding"].dims == ("sample", "sigma", "axis")
    assert ds["embedding"].shape == (len(table.sample_ids), len(SIGMAS), 2)
    np.testing.assert_array_equal(ds["sigma"].values, np.asarray(SIGMAS, dtype=np.float32))
    assert list(ds["sample_id"].values) == list(table.sample_ids)
    embedding = ds["embedding"].values
    probed = ~np.isnan(table.values).any(axis=2)
    np.testing.assert_array_equal(~np.isnan(embedding).any(axis=2), probed)
    assert np.isnan(embedding[~probed]).all()
    # The fit sample: equal cells per sigma (40 = 120 // 3), only probed cells, the rest placed by transform.
    fit = ds["fit_cell"].values
    assert (fit.sum(axis=0) == 40).all() and not (fit & ~probed).any()
    attrs = ds.attrs
    assert attrs["fit_mode"] == "balanced sample + transform" and attrs["fit_rows"] == 120 and attrs["probed_cells"] == int(probed.sum())
    assert attrs["method"] == "aligned" == TrajectoryParams().method and attrs["sigmas"] == list(SIGMAS)
    assert attrs["parameters"]["fit_size"] == 120 and attrs["parameters"]["method"] == "aligned"
    # More probed cells than --fit-size: no refusal, the rest are placed (and the attributes say how).
    assert attrs["fitted_cells"] == 120 and attrs["placed_cells"] == int(probed.sum()) - 120
    assert "AlignedUMAP" in attrs["method_detail"] and "nearest fitted cells" in attrs["placement"]
    assert set(attrs["timings"]) == {"read_and_pca", "fit", "transform", "scores", "independent", "trajectories"}
    for name in ("trustworthiness", "jump", "jump_local", "trustworthiness_independent", "jump_independent", "jump_local_independent"):
        assert ds[name].dims == ("sigma",) and "score sample" in ds[name].attrs["description"].replace("-", " ")


def test_scores_are_real_the_default_embedding_keeps_samples_in_place(built) -> None:
    lake, _, _ = built
    ds = open_lake(lake).joint_embedding(LAYER)
    trust, trust_ind = ds["trustworthiness"].values, ds["trustworthiness_independent"].values
    assert ((trust > 0.5) & (trust <= 1.0)).all() and ((trust_ind > 0.5) & (trust_ind <= 1.0)).all()
    jump, jump_ind = ds["jump"].values, ds["jump_independent"].values
    # Entry i: pair (sigma_i, next larger sigma); the largest has none.
    assert np.isnan(jump[-1]) and np.isnan(jump_ind[-1]) and np.isfinite(jump[:-1]).all()
    # The clouds are the same points plus noise (smooth paths): in the default embedding a sample stays near
    # its place across sigma; independently embedded, the same sample lands somewhere unrelated.
    assert (jump[:-1] * 3 < jump_ind[:-1]).all(), (jump, jump_ind)
    assert (ds["jump_local"].values[:-1] < ds["jump_local_independent"].values[:-1]).all()
    assert ds.attrs["jump_median"] == pytest.approx(float(np.median(jump[:-1])), rel=1e-5)


def test_jump_score_definition_on_known_points() -> None:
    # Two sigmas (order 2, 0.5 in the table), 4 points on a unit grid moved by (3, 0) between them.
    grid = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=np.float32)
    embedding = np.stack([grid + [3, 0], grid], axis=1)  # (sample, sigma, axis): sigma 2 then sigma 0.5
    jump = jump_scores(embedding, [2.0, 0.5])
    assert np.isnan(jump[0]) and jump[1] == pytest.approx(3.0)  # 0.5 -> 2: displacement 3 / NN distance 1
    embedding[0, 0] = np.nan  # a sample absent at one sigma drops out of that pair only
    assert jump_scores(embedding, [2.0, 0.5])[1] == pytest.approx(3.0)


def test_fit_sample_is_a_function_of_seed_id_and_sigma_not_of_order_or_chunking(built, tmp_path: Path) -> None:
    lake, table, _ = built
    stored = open_lake(lake).joint_embedding(LAYER)
    cells = {(str(i), float(s)) for i, s in zip(*_cells(stored["sample_id"].values, stored["fit_cell"].values))}
    permutation = np.random.default_rng(1).permutation(len(table.sample_ids))
    shuffled = SyntheticTable(table.values[permutation], table.sample_ids[permutation], table.source[permutation],
                              table.class_id[permutation], table.split[permutation], table.sigmas)
    other = build_lake(tmp_path / "shuffled", shuffled, rows_per_chunk=7)
    inputs = read_inputs(open_lake(other), LAYER, None)
    fit = fit_cells(inputs.sample_id, group_labels(inputs.source, inputs.class_id), inputs.valid, PARAMS.fit_size, PARAMS.seed)
    assert {(str(i), float(s)) for i, s in zip(*_cells(inputs.sample_id, fit.mask(len(inputs.sample_id))))} == cells
    # Another seed picks other cells.
    reseeded = fit_cells(inputs.sample_id, group_labels(inputs.source, inputs.class_id), inputs.valid, PARAMS.fit_size, 7)
    assert {(str(i), float(s)) for i, s in zip(*_cells(inputs.sample_id, reseeded.mask(len(inputs.sample_id))))} != cells


def _cells(sample_ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.nonzero(mask)
    return np.asarray(sample_ids)[rows], np.asarray(SIGMAS)[cols]


def test_trajectory_steps_land_on_their_probe_counterparts(built) -> None:
    lake, table, steps = built
    reader = open_lake(lake)
    placed = reader.joint_embedding(LAYER, SCHEDULE)
    np.testing.assert_array_equal(placed["sigma"].values, np.asarray((10.0, 2.0, 0.5), dtype=np.float32))
    assert placed["embedding"].shape == (len(TRAJECTORY_ROWS), 3, 2) and placed.attrs["schedule"] == SCHEDULE
    np.testing.assert_array_equal(placed["class_id"].values, table.class_id[TRAJECTORY_ROWS])
    coords = placed["embedding"].values
    probes = reader.joint_embedding(LAYER)["embedding"].values
    for step, sigma in enumerate((10.0, 2.0, 0.5)):
        j = SIGMAS.index(sigma)
        here = ~np.isnan(steps[:, step]).any(axis=1)
        counterpart = probes[TRAJECTORY_ROWS, j]
        near = np.linalg.norm(coords[here, step] - counterpart[here], axis=1)
        # A step holds exactly its probe's activations: it lands by its counterpart, far closer than to other samples'.
        others = np.linalg.norm(coords[here, step][:, None] - probes[:, j][None], axis=2)
        assert np.median(near) < 0.25 * np.nanmedian(others), (sigma, np.median(near), np.nanmedian(others))
    assert open_lake(lake).attrs(f"analysis/trajectory/{LAYER}")["schedules"] == [SCHEDULE]
    # Method aligned placed each step among the fitted cells of the nearest probe sigma (here: its own sigma).
    assert placed.attrs["placed_among_sigma"] == [10.0, 2.0, 0.5] and placed.attrs["method"] == "aligned"


def test_rerun_reuses_and_list_shows_the_result(built, capsys: pytest.CaptureFixture[str]) -> None:
    lake, _, _ = built
    before = tree_digest(lake)
    assert run_trajectory(lake, LAYER, PARAMS, log=lambda _: None, progress=False).reused
    assert tree_digest(lake) == before
    assert main(["list", "--lake", str(lake), "--json"]) == 0
    records = [r for r in json.loads(capsys.readouterr().out)["analyses"] if r["kind"] == "trajectory"]
    assert len(records) == 1 and records[0]["group"] == f"analysis/trajectory/{LAYER}" and records[0]["stale"] is False
    assert records[0]["method"] == "aligned" and records[0]["n_rows"] == 150


def test_placed_cells_land_on_identical_fitted_cells_of_their_own_sigma(built) -> None:
    lake, table, _ = built
    ds = open_lake(lake).joint_embedding(LAYER)
    embedding, fit = ds["embedding"].values, ds["fit_cell"].values
    originals = np.arange(40, 40 + DUPLICATES)
    copies = np.arange(len(table.sample_ids) - DUPLICATES, len(table.sample_ids))
    checked = 0
    for j in range(len(SIGMAS)):
        for fitted, placed in ((originals, copies), (copies, originals)):
            # A placed cell whose twin (same activations, same sigma) is a fitted cell lands exactly on it ...
            pairs = fit[fitted, j] & ~fit[placed, j]
            np.testing.assert_allclose(embedding[placed[pairs], j], embedding[fitted[pairs], j], atol=1e-5)
            checked += int(pairs.sum())
    assert checked >= 3, checked


def test_slice_placer_places_each_column_among_its_target_slice() -> None:
    rng = np.random.default_rng(0)
    pca = PCAModel(mean=np.zeros(3), scale=np.ones(3), components=np.eye(3), explained_variance=np.ones(3),
                   explained_variance_ratio=np.full(3, 1 / 3), n_samples=30)
    fitted = tuple(rng.normal(0, 1, (30, 3)).astype(np.float32) for _ in range(2))
    coords = (rng.normal(0, 1, (30, 2)).astype(np.float32), rng.normal(50, 1, (30, 2)).astype(np.float32))
    block = np.stack([fitted[0][:5], fitted[0][:5]], axis=1)  # (rows, column, channel): slice 0's cells in both columns
    keep = np.ones((5, 2), dtype=bool)
    keep[4, 1] = False
    out = SlicePlacer(pca, fitted, coords, (0, 1), n_neighbors=5)(block, keep)
    np.testing.assert_array_equal(out[:, 0], coords[0][:5])  # identical to a fitted cell of its slice: on it
    assert (out[:4, 1] > 40).all() and np.isnan(out[4, 1]).all()  # column 1 is placed among slice 1's coordinates only
    again = SlicePlacer(pca, fitted, coords, (0, 1), n_neighbors=5)(block[1:3], keep[1:3])
    np.testing.assert_array_equal(again, out[1:3])  # a cell's position does not depend on its block


def test_step_sigmas_map_to_the_nearest_probe_sigma_in_log_sigma() -> None:
    # The demo's 4-step Karras schedule against its probe sigmas (stored in table order).
    assert nearest_slices([80.0, 21.3641, 4.19162, 0.5], [0.5, 2.0, 10.0, 80.0]) == (3, 2, 1, 0)
    assert nearest_slices([1.0], [0.5, 2.0]) == (0,)  # a tie in log sigma goes to the smaller sigma
    assert nearest_slices([1.0], [2.0, 0.5]) == (1,)


def test_joint_method_places_by_transform_and_new_rows_make_it_stale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = drifting_table(n=40, n_classes=2, channels=6, seed=3)
    lake = build_lake(tmp_path / "lake", table)
    steps = write_schedule(lake, table, np.arange(10, 20), (2.0, 0.5))
    args = ["trajectory", "--lake", str(lake), "--layer", LAYER, "--sigmas", "2,0.5", "--pca-dim", "4", "--n-neighbors", "8",
            "--method", "joint", "--fit-size", "60", "--no-progress", "--json"]
    assert main(args) == 0
    [outcome] = json.loads(capsys.readouterr().out)
    probed = ~np.isnan(table.values[:, :2]).any(axis=2)
    assert outcome["summary"]["method"] == "joint" and outcome["summary"]["fit_rows"] == 60 < int(probed.sum())
    ds = open_lake(lake).joint_embedding(LAYER)
    assert ds.attrs["placement"] == "UMAP.transform of the joint model" and ds.attrs["placed_cells"] == int(probed.sum()) - 60
    np.testing.assert_array_equal(ds["sigma"].values, np.asarray((2.0, 0.5), dtype=np.float32))  # as --sigmas lists them
    np.testing.assert_array_equal(~np.isnan(ds["embedding"].values).any(axis=2), probed[:, ::-1])
    assert np.isnan(ds["jump"].values[0]) and np.isfinite(ds["jump"].values[1]) and (ds["trustworthiness"].values > 0.5).all()
    placed = open_lake(lake).joint_embedding(LAYER, SCHEDULE)
    assert placed.attrs["placed_among_sigma"] is None and np.isfinite(placed["embedding"].values[~np.isnan(steps).any(axis=2)]).all()
    # More rows in the table: the stored result is stale (a rerun would recompute it).
    extra = drifting_table(n=5, n_classes=2, channels=6, seed=4)
    write_activations(tmp_path / "lake", LAYER, extra.values, np.array([f"in64/extra/{i}" for i in range(5)], dtype=object),
                      extra.source, extra.class_id, extra.sigmas)
    assert [r["stale"] for r in list_analyses(lake)["analyses"] if r["kind"] == "trajectory"] == [True]


def test_errors_are_one_line_and_leave_the_lake_unchanged(built, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lake, _, _ = built
    before = tree_digest(lake)
    # The first case in a real `python -m analysis` process (the entry point, nothing else on stderr);
    # the others through the same main() in this process (one interpreter start each saved).
    result = run_cli("analysis", "trajectory", "--lake", str(lake), "--layer", "no.such_layer")  # canonical: no note first
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [f"error: {lake}: no activations for layer 'no.such_layer'; the lake has: {LAYER}"]
    cases = [
        (["--layer", LAYER, "--sigmas", "0.5"], f"error: {lake}: activations/{LAYER}: a joint embedding across sigma needs at least 2 sigmas; selected: 0.5"),
        (["--layer", LAYER, "--sigmas", "0.5,3"], f"error: --sigmas 3: {lake}: activations/{LAYER} has no such sigma; it has: 0.5, 2, 10"),
    ]
    capsys.readouterr()
    for flags, expected in cases:
        assert main(["trajectory", "--lake", str(lake), *flags]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
    assert tree_digest(lake) == before
    tiny = build_lake(tmp_path / "tiny", drifting_table(n=8, n_classes=2, channels=4), samples=False)
    before = tree_digest(tiny)
    assert main(["trajectory", "--lake", str(tiny), "--layer", LAYER]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {tiny}: activations/{LAYER}: only 7 probed rows at sigma 0.5; the joint embedding needs at least 10 per sigma"
    ]
    assert tree_digest(tiny) == before


def test_the_cli_default_method_is_the_library_default() -> None:
    from analysis.cli import DEFAULT_TRAJECTORY_METHOD
    from analysis.trajectory import DEFAULT_METHOD

    assert DEFAULT_TRAJECTORY_METHOD == DEFAULT_METHOD
