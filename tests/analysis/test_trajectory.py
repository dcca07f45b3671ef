"""`python -m analysis trajectory`: the joint embedding across sigma, its scores, placed trajectory steps, errors.

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
from analysis.trajectory import fit_cells, jump_scores
from lake import LakeWriter, Provenance, open_lake
from lake.layout import LayerShape, trajectory_layer_spec
from tests.analysis.conftest import SyntheticTable, build_lake, write_activations
from tests.conftest import run_cli, tree_digest

LAYER = "enc.8x8_block2"
SIGMAS = (0.5, 2.0, 10.0)
SCHEDULE = "sigmas10-2-0.5"


def drifting_table(n: int = 150, n_classes: int = 5, channels: int = 16, noise: float = 0.05, seed: int = 0) -> SyntheticTable:
    """The same clustered points at every sigma plus small per-sigma noise; a few cells not probed."""
    rng = np.random.default_rng(seed)
    class_id = (np.arange(n) % n_classes).astype(np.int16)
    centers = rng.normal(0.0, 3.0, (n_classes, channels))
    base = centers[class_id] + rng.normal(0.0, 1.0, (n, channels))
    values = np.stack([base + rng.normal(0.0, noise, base.shape) for _ in SIGMAS], axis=1).astype(np.float32)
    values[3, 1] = np.nan  # sample 3 not probed at sigma 2
    values[7:8, 0] = np.nan  # sample 7 (when there is one) not probed at sigma 0.5
    values[11:12] = np.nan  # sample 11 (when there is one) not probed at all
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


# Fit on 3 x 40 of the ~447 probed cells, so most cells (and every trajectory step) are placed by transform.
PARAMS = TrajectoryParams(fit_size=120, pca_dim=8, n_neighbors=10, score_samples=150)
TRAJECTORY_ROWS = np.arange(20, 40)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SyntheticTable, np.ndarray]:
    table = drifting_table()
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
    assert attrs["method"] == "joint" and attrs["sigmas"] == list(SIGMAS) and attrs["parameters"]["fit_size"] == 120
    assert set(attrs["timings"]) == {"read_and_pca", "fit", "transform", "scores", "independent", "trajectories"}
    for name in ("trustworthiness", "jump", "jump_local", "trustworthiness_independent", "jump_independent", "jump_local_independent"):
        assert ds[name].dims == ("sigma",) and "score sample" in ds[name].attrs["description"].replace("-", " ")


def test_scores_are_real_the_joint_embedding_keeps_samples_in_place(built) -> None:
    lake, _, _ = built
    ds = open_lake(lake).joint_embedding(LAYER)
    trust, trust_ind = ds["trustworthiness"].values, ds["trustworthiness_independent"].values
    assert ((trust > 0.5) & (trust <= 1.0)).all() and ((trust_ind > 0.5) & (trust_ind <= 1.0)).all()
    jump, jump_ind = ds["jump"].values, ds["jump_independent"].values
    # Entry i: pair (sigma_i, next larger sigma); the largest has none.
    assert np.isnan(jump[-1]) and np.isnan(jump_ind[-1]) and np.isfinite(jump[:-1]).all()
    # The clouds are the same points plus noise: jointly embedded, a sample moves about as far as its nearest
    # neighbour is; independently embedded, the same sample lands somewhere unrelated.
    assert (jump[:-1] < 5).all(), jump
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


def test_rerun_reuses_and_list_shows_the_result(built, capsys: pytest.CaptureFixture[str]) -> None:
    lake, _, _ = built
    before = tree_digest(lake)
    assert run_trajectory(lake, LAYER, PARAMS, log=lambda _: None, progress=False).reused
    assert tree_digest(lake) == before
    assert main(["list", "--lake", str(lake), "--json"]) == 0
    records = [r for r in json.loads(capsys.readouterr().out)["analyses"] if r["kind"] == "trajectory"]
    assert len(records) == 1 and records[0]["group"] == f"analysis/trajectory/{LAYER}" and records[0]["stale"] is False
    assert records[0]["method"] == "joint" and records[0]["n_rows"] == 150


def test_aligned_method_and_new_rows_make_it_stale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = drifting_table(n=40, n_classes=2, channels=6, seed=3)
    lake = build_lake(tmp_path / "lake", table)
    args = ["trajectory", "--lake", str(lake), "--layer", LAYER, "--sigmas", "2,0.5", "--pca-dim", "4", "--n-neighbors", "8",
            "--method", "aligned", "--no-progress", "--json"]
    assert main(args) == 0
    [outcome] = json.loads(capsys.readouterr().out)
    probed = ~np.isnan(table.values[:, :2]).any(axis=2)
    assert outcome["summary"]["method"] == "aligned" and outcome["summary"]["fit_rows"] == int(probed.sum())
    ds = open_lake(lake).joint_embedding(LAYER)
    np.testing.assert_array_equal(ds["sigma"].values, np.asarray((2.0, 0.5), dtype=np.float32))  # as --sigmas lists them
    np.testing.assert_array_equal(~np.isnan(ds["embedding"].values).any(axis=2), probed[:, ::-1])
    assert np.isnan(ds["jump"].values[0]) and np.isfinite(ds["jump"].values[1]) and (ds["trustworthiness"].values > 0.5).all()
    # More rows in the table: the stored result is stale (a rerun would recompute it).
    extra = drifting_table(n=5, n_classes=2, channels=6, seed=4)
    write_activations(tmp_path / "lake", LAYER, extra.values, np.array([f"in64/extra/{i}" for i in range(5)], dtype=object),
                      extra.source, extra.class_id, extra.sigmas)
    assert [r["stale"] for r in list_analyses(lake)["analyses"] if r["kind"] == "trajectory"] == [True]


def test_errors_are_one_line_and_leave_the_lake_unchanged(built, tmp_path: Path) -> None:
    lake, _, _ = built
    before = tree_digest(lake)
    cases = [  # a canonical --layer: no note before the error
        (["--layer", "no.such_layer"], f"error: {lake}: no activations for layer 'no.such_layer'; the lake has: {LAYER}"),
        (["--layer", LAYER, "--sigmas", "0.5"], f"error: {lake}: activations/{LAYER}: a joint embedding across sigma needs at least 2 sigmas; selected: 0.5"),
        (["--layer", LAYER, "--sigmas", "0.5,3"], f"error: --sigmas 3: {lake}: activations/{LAYER} has no such sigma; it has: 0.5, 2, 10"),
        (["--layer", LAYER, "--method", "aligned", "--fit-size", "100"], "AlignedUMAP has no transform"),
    ]
    for flags, expected in cases:
        result = run_cli("analysis", "trajectory", "--lake", str(lake), *flags)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
    assert tree_digest(lake) == before
    tiny = build_lake(tmp_path / "tiny", drifting_table(n=8, n_classes=2, channels=4), samples=False)
    before = tree_digest(tiny)
    result = run_cli("analysis", "trajectory", "--lake", str(tiny), "--layer", LAYER)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: {tiny}: activations/{LAYER}: only 7 probed rows at sigma 0.5; the joint embedding needs at least 10 per sigma"
    ]
    assert tree_digest(tiny) == before
