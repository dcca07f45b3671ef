"""`analysis cka`: two registered models' activation tables compared on their shared samples, stored, reused, refused."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from analysis import cka_table, list_analyses, run_cka
from analysis.cli import main
from lake import LakeWriter, Provenance, open_lake
from lake.model_registry import register_model
from tests.analysis.conftest import write_activations
from tests.analysis.test_cka import cka_from_grams
from tests.conftest import tree_digest
from tests.lake.test_models_registry import STUDENT, TEACHER

SIGMAS = np.asarray([0.5, 2.0], dtype=np.float32)
STUDENT_LAYERS = ("dec.8x8_in0", "enc.8x8_block2")
TEACHER_LAYER = "teacher.enc.8x8_block2"
N_STUDENT, N_TEACHER_OWN = 90, 12


def quiet(message: str) -> None:
    """Keeps the runner's lines out of the test output."""


def representations(seed: int = 0) -> dict[str, np.ndarray]:
    """Per sample id, a shared 5-d signal that every layer sees through its own map, plus its own noise."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(N_STUDENT + N_TEACHER_OWN, 5))
    tables = {}
    for i, layer in enumerate((*STUDENT_LAYERS, TEACHER_LAYER)):
        mixing = np.random.default_rng([seed, i]).normal(size=(5, 12 + 4 * i))
        values = signal @ mixing + (0.5 + i) * np.random.default_rng([seed, i, 1]).normal(size=(len(signal), 12 + 4 * i))
        # sigma 0.5 and 2 hold different values, so reading the wrong sigma changes the answer
        # float32, as the lake stores them; the known answers are computed from these values in float64
        tables[layer] = np.stack([values * 3.0 + 7.0, values], axis=1).astype(np.float32).astype(np.float64)
    return tables


@pytest.fixture(scope="module")
def two_model_lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray], np.ndarray]:
    """The student probed samples 0..89 at two sigmas; the teacher samples 12..101 at sigma 2 only, in reverse order,
    with sample 20 not finite. Shared and finite: 12..89 but 20 (77 samples)."""
    lake = tmp_path_factory.mktemp("cka") / "lake"
    with LakeWriter.open(lake, Provenance(job="register")) as writer:
        register_model(writer, STUDENT)
        register_model(writer, TEACHER)
        writer.commit()
    ids = np.array([f"in64/val_data/{i}" for i in range(N_STUDENT + N_TEACHER_OWN)], dtype=object)
    tables = representations()
    for layer in STUDENT_LAYERS:
        write_activations(lake, layer, tables[layer][:N_STUDENT], ids[:N_STUDENT], np.full(N_STUDENT, "real", object),
                          np.zeros(N_STUDENT, np.int16), SIGMAS, rows_per_chunk=16, batch=40)
    teacher_rows = np.arange(N_TEACHER_OWN, N_STUDENT + N_TEACHER_OWN)[::-1]
    teacher = tables[TEACHER_LAYER][teacher_rows, 1:2].copy()
    teacher[teacher_rows == 20] = np.nan
    write_activations(lake, TEACHER_LAYER, teacher, ids[teacher_rows], np.full(len(teacher_rows), "real", object),
                      np.zeros(len(teacher_rows), np.int16), SIGMAS[1:], rows_per_chunk=16, batch=40)
    shared = np.array([i for i in range(N_TEACHER_OWN, N_STUDENT) if i != 20])
    return lake, tables, shared


def test_the_table_is_cka_on_the_shared_finite_samples_at_the_sigma(two_model_lake, tmp_path: Path) -> None:
    source, tables, shared = two_model_lake
    lake = tmp_path / "lake"
    shutil.copytree(source, lake)
    outcome = run_cka(lake, "student", "teacher", log=quiet)  # sigma 2: the only one both hold
    assert outcome.group == "analysis/cka/student~teacher@sigma2" and not outcome.reused
    assert outcome.summary["n_shared"] == len(shared) == 77

    ds = xr.open_zarr(lake, group=outcome.group)
    assert ds["cka"].dims == ("first_layer", "second_layer")
    assert list(ds["first_layer"].values) == list(STUDENT_LAYERS) and list(ds["second_layer"].values) == [TEACHER_LAYER]
    expected = [[cka_from_grams(tables[a][shared, 1], tables[TEACHER_LAYER][shared, 1])] for a in STUDENT_LAYERS]
    np.testing.assert_allclose(ds["cka"].values, expected, rtol=1e-9)
    assert 0.2 < float(ds["cka"].values.min()) < 0.99  # related, not identical: the answer is not a constant

    # A block of 7 rows at a time gives the same table.
    again = run_cka(lake, "student", "teacher", 2.0, block_rows=7, force=True, log=quiet)
    np.testing.assert_allclose(cka_table(lake, again.group)[2], ds["cka"].values, rtol=1e-12)


def test_a_model_against_itself_is_one_on_the_diagonal(two_model_lake, tmp_path: Path) -> None:
    source, tables, _ = two_model_lake
    lake = tmp_path / "lake"
    shutil.copytree(source, lake)
    outcome = run_cka(lake, "student", "student", 0.5, log=quiet)
    first, second, matrix = cka_table(lake, outcome.group)
    assert first == second == list(STUDENT_LAYERS) and outcome.summary["n_shared"] == N_STUDENT
    np.testing.assert_allclose(np.diag(matrix), 1.0, rtol=1e-12)
    np.testing.assert_allclose(matrix[0, 1], cka_from_grams(tables[STUDENT_LAYERS[0]][:N_STUDENT, 0], tables[STUDENT_LAYERS[1]][:N_STUDENT, 0]), rtol=1e-9)


def test_reused_until_a_table_gains_rows(two_model_lake, tmp_path: Path) -> None:
    source, tables, _ = two_model_lake
    lake = tmp_path / "lake"
    shutil.copytree(source, lake)
    group = run_cka(lake, "student", "teacher", 2.0, log=quiet).group
    assert run_cka(lake, "student", "teacher", 2.0, log=quiet).reused
    [record] = [r for r in list_analyses(lake)["analyses"] if r["kind"] == "cka"]
    assert record["group"] == group and record["stale"] is False and record["n_rows"] == 77

    # The teacher probes samples 0..11 too: the table is stale, and the next run computes it on 89 samples.
    extra = tables[TEACHER_LAYER][:N_TEACHER_OWN, 1:2]
    write_activations(lake, TEACHER_LAYER, extra, np.array([f"in64/val_data/{i}" for i in range(N_TEACHER_OWN)], dtype=object),
                      np.full(N_TEACHER_OWN, "real", object), np.zeros(N_TEACHER_OWN, np.int16), SIGMAS[1:], rows_per_chunk=16)
    [record] = [r for r in list_analyses(lake)["analyses"] if r["kind"] == "cka"]
    assert record["stale"] is True
    outcome = run_cka(lake, "student", "teacher", 2.0, log=quiet)
    assert not outcome.reused and outcome.summary["n_shared"] == 89


@pytest.mark.parametrize(("argv", "message"), [
    (["--models", "student,nobody"], "no model 'nobody' in the lake's models table; registered: student, teacher"),
    (["--models", "student,teacher", "--sigma", "0.5"], "model 'teacher' has no activation table at sigma 0.5; probe it with"),
    (["--models", "student,teacher", "--second-layers", "teacher.dec.8x8_in0"], "model 'teacher' has no activation table 'teacher.dec.8x8_in0'"),
    (["--models", "student,student"], "give --sigma; the sigmas both student and student were probed at: 0.5, 2"),
])
def test_errors_are_one_line_and_leave_the_lake_unchanged(two_model_lake, capsys, argv: list[str], message: str) -> None:
    lake = two_model_lake[0]
    before = tree_digest(lake)
    assert main(["cka", "--lake", str(lake), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {lake}: ") and message in err[0], err
    assert tree_digest(lake) == before


def test_models_takes_exactly_two_names(two_model_lake, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["cka", "--lake", str(two_model_lake[0]), "--models", "student"])
    assert exit_.value.code == 2 and "give two registered model names" in capsys.readouterr().err


def test_the_command_prints_the_matrix(two_model_lake, tmp_path: Path, capsys) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(two_model_lake[0], lake)
    assert main(["cka", "--lake", str(lake), "--models", "student,teacher", "--first-layers", "enc.8x8_block2"]) == 0
    out = capsys.readouterr().out.splitlines()
    value = cka_table(lake, "analysis/cka/student~teacher@sigma2")[2][0, 0]
    assert out[0].split() == ["layer", TEACHER_LAYER] and out[1].split() == ["enc.8x8_block2", f"{value:.4g}"]
    assert open_lake(lake).attrs("analysis/cka/student~teacher@sigma2")["parameters"]["first_layers"] == ["enc.8x8_block2"]
