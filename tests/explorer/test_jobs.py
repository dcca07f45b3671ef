"""Edit jobs from the explorer: the runner (real driver processes), the buttons (AppTest), and placed samples on the map.

The edit and place CLIs are not what these tests check: where a job must run, a small
stand-in command (a real process that sleeps or fails) takes their place, inside the test
only. The browser test (test_browser_jobs.py) runs the real ones on a CLI-built lake.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from apptest import chart_datasets, markdown_text, open_app
from conftest import KEY, NAME_2D, build_lake, make_images
from explorer import job_commands, jobs
from explorer.jobs_panel import is_local
from lake import SAMPLES, LakeWriter, Provenance
from lake.layout import lineage_spec, parse_key, placed_embedding_spec, placed_spec
from lake.store import writer_lock

SLEEP = (sys.executable, "-c", "import time; print('working', flush=True); time.sleep(60)")


@pytest.fixture(autouse=True)
def job_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own jobs folder (the explorer's runs in this process read the same env)."""
    folder = tmp_path / "jobs"
    monkeypatch.setenv(jobs.JOBS_DIR_ENV, str(folder))
    return folder


def _facts(lake: Path, ids: dict[str, str]) -> job_commands.LakeFacts:
    return job_commands.LakeFacts(
        lake=lake,
        sample_exists=lambda q: [i in ids for i in q],
        source_of=lambda q: [ids.get(i, "") for i in q],
        layers=("dec.8x8_in0", "enc.8x8_block2"),
        channels={"enc.8x8_block2": 128, "dec.8x8_in0": 128},
        keys=("enc.8x8_block2@sigma2",),
    )


IDS = {"gen/a/0": "generated", "gen/a/1": "generated", "in64/x/0": "real"}


def _stop(lake: Path, status: jobs.JobStatus) -> None:
    """End a stand-in job this test started (its driver's process group, by id), and wait until the lake is free."""
    assert status.pid is not None
    try:
        os.killpg(status.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for _ in range(200):
        if jobs.running_job(lake) is None:
            return
        time.sleep(0.05)
    raise AssertionError("the stand-in job did not stop")


# --------------------------------------------------------------------------- argument lists


def test_variations_is_an_edit_then_a_placement_as_argument_lists(tmp_path):
    request = job_commands.JobRequest("variations", ("gen/a/0",), "enc.8x8_block2@sigma2", n=4, seed=5)
    commands = job_commands.build_commands(request, _facts(tmp_path, IDS), python="PY")
    assert [c.argv for c in commands] == [
        ("PY", "-m", "ingest", "edit", "variations", "--lake", str(tmp_path), "--from", "gen/a/0", "--n", "4", "--seed", "5",
         "--probe", "enc.8x8_block2@sigma2"),
        ("PY", "-m", "analysis", "place", "--lake", str(tmp_path), "--key", "enc.8x8_block2@sigma2"),
    ]  # fmt: skip
    neighbours = job_commands.JobRequest("neighbours", ("gen/a/0", "in64/x/0"), "enc.8x8_block2@sigma2", layer="enc.8x8_block2",
                                 mask="1" * 8 + "0" * 56, channels=(9, 0, 5), sigma=2.0)  # fmt: skip
    argv = job_commands.build_commands(neighbours, _facts(tmp_path, IDS), python="PY")[0].argv
    assert argv[4:] == ("neighbours", "--lake", str(tmp_path), "--from", "gen/a/0,in64/x/0", "--layer", "enc.8x8_block2",
                        "--mask", "1" * 8 + "0" * 56, "--channels", "0,5,9", "--sigma", "2.0",  # a real sample is probed at sigma
                        "--probe", "enc.8x8_block2@sigma2")  # fmt: skip
    real = job_commands.build_commands(job_commands.JobRequest("from-real", ("in64/x/0",), "enc.8x8_block2@sigma2", seed=3, sigma=10.0), _facts(tmp_path, IDS), python="PY")
    assert real[0].argv[4:] == ("from-real", "--lake", str(tmp_path), "--from", "in64/x/0", "--sigma", "10.0", "--probe", "enc.8x8_block2@sigma2")
    regenerate = job_commands.build_commands(job_commands.JobRequest("regenerate", ("gen/a/0",), "x@sigma1"), _facts(tmp_path, IDS), python="PY")
    assert [c.name for c in regenerate] == ["regenerate"]  # writes no sample: nothing to place


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (job_commands.JobRequest("variations", ("gen/zzz",), "enc.8x8_block2@sigma2"), "no sample 'gen/zzz'"),
        (job_commands.JobRequest("variations", ("gen/a/0",), "enc.8x8_block2@sigma2", n=65), "N must be between 1 and 64"),
        (job_commands.JobRequest("variations", ("gen/a/0",), "enc.8x8_block2@sigma2", n=0), "N must be between 1 and 64"),
        (job_commands.JobRequest("class-swap", ("in64/x/0",), "enc.8x8_block2@sigma2", class_id=3), "needs generated samples"),
        (job_commands.JobRequest("neighbours", ("gen/a/0", "gen/a/1"), "enc.8x8_block2@sigma2", layer="enc.99"), "unknown layer 'enc.99'"),
        (job_commands.JobRequest("neighbours", ("gen/a/0", "gen/a/1"), "enc.8x8_block2@sigma2", layer="enc.8x8_block2", mask="01"), "the mask must be 64"),
        (job_commands.JobRequest("neighbours", ("gen/a/0", "gen/a/1"), "enc.8x8_block2@sigma2", layer="enc.8x8_block2", channels=(128,)), "channel 128"),
        (job_commands.JobRequest("interpolate", ("gen/a/0",), "enc.8x8_block2@sigma2"), "exactly two"),
        (job_commands.JobRequest("interpolate", ("gen/a/0", "gen/a/1"), "enc.8x8_block2@sigma2", n=1), "N must be between 2 and 64"),
        (job_commands.JobRequest("neighbours", ("in64/x/0", "gen/a/1"), "enc.8x8_block2@sigma2", layer="enc.8x8_block2"), "must be a generated one"),
        (job_commands.JobRequest("class-swap", ("gen/a/0",), "enc.8x8_block2@sigma2", class_id=1000), "class must be"),
        (job_commands.JobRequest("from-real", ("in64/x/0",), "enc.8x8_block2@sigma2", sigma=float("nan")), "sigma must be"),
        (job_commands.JobRequest("variations", ("gen/a/0",), "other@sigma1"), "no stored PCA"),
        (job_commands.JobRequest("rm -rf", ("gen/a/0",), "enc.8x8_block2@sigma2"), "unknown operation"),
    ],
)
def test_refused_requests_name_the_problem_in_one_line(tmp_path, request_, message):
    with pytest.raises(job_commands.JobRefused, match=message) as refused:
        job_commands.build_commands(request_, _facts(tmp_path, IDS))
    assert "\n" not in str(refused.value)


def test_channels_parse_lists_and_ranges_and_refuse_anything_else():
    assert job_commands.parse_channels("0, 5,9") == (0, 5, 9)
    assert job_commands.parse_channels("0-3,7,2") == (0, 1, 2, 3, 7)
    assert job_commands.parse_channels("") == ()
    for bad in ("a", "3-1", "--lake", "1;rm"):
        with pytest.raises(job_commands.JobRefused):
            job_commands.parse_channels(bad)


def test_only_loopback_connections_are_local():
    assert is_local(None, "") and is_local(None, "localhost:8501") and is_local(None, "127.0.0.1:8501") and is_local(None, "[::1]:8501")
    assert not is_local("203.0.113.7", "localhost:8501")  # a remote IP, whatever it claims
    assert not is_local(None, "evil.example.org:8501")  # a page of another origin resolving to localhost
    assert not is_local("10.0.0.5", "")


# --------------------------------------------------------------------------- the runner (real processes)


def _request(lake: Path) -> job_commands.JobRequest:
    return job_commands.JobRequest("variations", ("gen/a/0",), "enc.8x8_block2@sigma2")


def test_a_job_runs_its_steps_in_a_background_process_and_a_second_is_refused(tmp_path):
    lake = tmp_path / "lake"
    lake.mkdir()
    status = jobs.start_job(lake, _request(lake), [job_commands.JobCommand("first", SLEEP)])
    try:
        assert status.state == jobs.RUNNING and status.pid is not None
        with pytest.raises(job_commands.JobRefused, match="a job is already running on this lake: variations of gen/a/0"):
            jobs.start_job(lake, _request(lake), [job_commands.JobCommand("second", SLEEP)])
        assert [j.job_id for j in jobs.list_jobs(lake)] == [status.job_id]  # the refused one left nothing behind
        for _ in range(100):
            if "working" in jobs.job_output(lake, status.job_id):
                break
            time.sleep(0.05)
        assert "working" in jobs.job_output(lake, status.job_id)  # progress is readable by anyone, any time
    finally:
        _stop(lake, status)
    # The driver is gone (killed): the job reads as failed, and the lake takes a new job.
    assert jobs.list_jobs(lake)[0].state == jobs.FAILED
    again = jobs.start_job(lake, _request(lake), [job_commands.JobCommand("quick", (sys.executable, "-c", "print('ok')"))])
    _wait(lake, again.job_id)


def _wait(lake: Path, job_id: str) -> jobs.JobStatus:
    for _ in range(400):
        job = next(j for j in jobs.list_jobs(lake) if j.job_id == job_id)
        if job.state != jobs.RUNNING:
            return job
        time.sleep(0.05)
    raise AssertionError("the job did not finish in 20 s")


def test_steps_run_in_order_and_a_failure_stops_the_job_with_its_one_line_error(tmp_path):
    lake = tmp_path / "lake"
    lake.mkdir()
    marker = tmp_path / "third-ran"
    commands = [
        job_commands.JobCommand("edit", (sys.executable, "-c", "print('ingest edit variations: 4 new sample(s)'); print('edit/variations/x/0')")),
        job_commands.JobCommand("place", (sys.executable, "-c", "import sys; print('placing'); sys.exit('lake: --key x@sigma3: no PCA stored')")),
        job_commands.JobCommand("never", (sys.executable, "-c", f"open({str(marker)!r}, 'w')")),
    ]
    job = _wait(lake, jobs.start_job(lake, _request(lake), commands).job_id)
    assert job.state == jobs.FAILED and job.step == 1
    assert job.message == "place failed (exit 1): lake: --key x@sigma3: no PCA stored"
    assert not marker.exists()
    ok = _wait(lake, jobs.start_job(lake, _request(lake), [commands[0], job_commands.JobCommand("place", (sys.executable, "-c", "print('wrote 4'); print('a | table')"))]).job_id)
    # Each step's summary line (not its trailing ids or table) says what the job did.
    assert ok.state == jobs.DONE and ok.message == "ingest edit variations: 4 new sample(s) · wrote 4" and ok.finished is not None


def test_a_lake_held_by_another_writer_refuses_the_job_and_says_who(tmp_path):
    lake = build_lake(tmp_path / "lake", per_group=2, with_analysis=False).path
    with writer_lock(lake):
        with pytest.raises(job_commands.JobRefused, match=rf"the lake is being written by pid {os.getpid()}"):
            jobs.start_job(lake, _request(lake), [job_commands.JobCommand("x", SLEEP)])
    assert jobs.list_jobs(lake) == []
    assert jobs.lake_writer(lake) is None


def test_job_state_lives_outside_the_lake_keyed_by_its_path(tmp_path, job_folder):
    a, b = tmp_path / "a", tmp_path / "b"
    assert jobs.jobs_dir(a) != jobs.jobs_dir(b) and jobs.jobs_dir(a).parent == job_folder
    assert jobs.jobs_dir(tmp_path / "x" / ".." / "a") == jobs.jobs_dir(a)


# --------------------------------------------------------------------------- the buttons (AppTest)


def _select(at, selected: str, manual: tuple[str, ...] = ()):
    at.session_state["view"] = replace(at.session_state["view"], selected=selected, manual=manual)
    return at.run()


def _first(built, source: str, skip: int = 0) -> str:
    return str(built.sample_ids[np.flatnonzero(built.sources == source)[skip]])


def _buttons(at) -> dict[str, object]:
    return {b.key: b for b in at.button if b.key and b.key.startswith("job_")}


def test_buttons_for_each_operation_follow_the_selection(small_lake, monkeypatch):
    at = open_app(small_lake.path, monkeypatch)
    assert "Edit jobs" in [h.value for h in at.subheader] and not _buttons(at)  # nothing selected: no buttons yet
    _select(at, _first(small_lake, "generated"))
    buttons = _buttons(at)
    assert set(buttons) == {f"job_{op}" for op in job_commands.OPERATIONS}
    enabled = {k for k, b in buttons.items() if not b.disabled}
    assert enabled == {"job_regenerate", "job_variations", "job_class-swap"}
    _select(at, _first(small_lake, "generated"), (_first(small_lake, "generated", 1),))
    enabled = {k for k, b in _buttons(at).items() if not b.disabled}
    assert {"job_interpolate", "job_neighbours"} <= enabled
    _select(at, _first(small_lake, "real"))
    assert {k for k, b in _buttons(at).items() if not b.disabled} == {"job_variations", "job_from-real"}
    assert at.number_input(key="job_n").max == job_commands.MAX_N


def test_a_button_validates_its_values_before_anything_starts(small_lake, monkeypatch, job_folder):
    at = open_app(small_lake.path, monkeypatch)
    _select(at, _first(small_lake, "generated"), (_first(small_lake, "generated", 1),))
    at.text_input(key="job_channels").input("0,--lake")
    at.button(key="job_neighbours").click().run()
    warnings = " ".join(w.value for w in at.warning)
    assert "Not started: channels: '--lake' is not a channel number" in warnings
    at.text_input(key="job_channels").input("")
    at.button(key="job_neighbours").click().run()  # this test lake has no generation or probe layers
    assert "Not started: neighbours: unknown layer" in " ".join(w.value for w in at.warning)
    assert not job_folder.exists() or not any(job_folder.rglob("status.json"))


def test_a_second_job_while_one_runs_is_refused_on_the_page(small_lake, monkeypatch):
    running = jobs.start_job(small_lake.path, _request(small_lake.path), [job_commands.JobCommand("stand-in edit", SLEEP)])
    try:
        at = open_app(small_lake.path, monkeypatch)
        _select(at, _first(small_lake, "generated"))
        # The jobs area shows the running job to every session, with its step.
        assert any("stand-in edit" in p.proto.text for p in at.get("progress"))
        at.button(key="job_variations").click().run()
        warnings = " ".join(w.value for w in at.warning)
        assert "Not started: a job is already running on this lake" in warnings
        assert [j.job_id for j in jobs.list_jobs(small_lake.path)] == [running.job_id]
    finally:
        _stop(small_lake.path, running)


def test_read_only_removes_the_whole_feature(small_lake, monkeypatch):
    at = open_app(small_lake.path, monkeypatch, argv=("--read-only",))
    _select(at, _first(small_lake, "generated"))
    assert "Edit jobs" not in [h.value for h in at.subheader]
    assert not _buttons(at) and not at.get("form")
    assert "Selected sample" in [h.value for h in at.subheader]  # the rest of the page is there


def test_a_session_from_another_machine_cannot_start_jobs(small_lake, monkeypatch, job_folder):
    import explorer.jobs_panel as panel

    monkeypatch.setattr(panel, "request_origin", lambda: ("203.0.113.7", "lab.example.org:8501"))
    at = open_app(small_lake.path, monkeypatch)
    _select(at, _first(small_lake, "generated"))
    assert not _buttons(at)
    assert any("only be started from a browser on the explorer's own machine" in i.value for i in at.info)
    # The start itself checks again, whatever the page drew.
    request = job_commands.JobRequest("variations", (_first(small_lake, "generated"),), KEY)
    with pytest.raises(job_commands.JobRefused, match="explorer's own machine"):
        panel.start(None, request)  # type: ignore[arg-type]  # refused before the session is used
    assert not job_folder.exists() or not any(job_folder.rglob("status.json"))


# --------------------------------------------------------------------------- placed samples on the map


@pytest.fixture(scope="module")
def placed_lake(tmp_path_factory):
    """A small lake plus what an edit and its placement would add: 3 edited samples, their lineage, their placement."""
    built = build_lake(tmp_path_factory.mktemp("placed") / "lake", per_group=6)
    parent = _first(built, "generated")
    parent_row = int(np.flatnonzero(built.sample_ids == parent)[0])
    ids = np.array([f"edit/variations/abc123/{k}" for k in range(3)], dtype=object)
    n_before = len(built.sample_ids)
    key = parse_key(KEY)
    with LakeWriter.open(built.path, Provenance(job="test edit")) as writer:
        writer.table(SAMPLES).append({
            "image": make_images(np.full(3, 1, np.int16), np.arange(3) + 99), "sample_id": ids, "source": np.array(["generated"] * 3, dtype=object),
            "split": np.array(["edited"] * 3, dtype=object), "class_id": np.full(3, 1, np.int16), "wnid": np.array(["n01443537"] * 3, dtype=object),
            "class_name": np.array(["goldfish"] * 3, dtype=object), "origin": np.array(["edit:variations"] * 3, dtype=object),
            "seed": np.full(3, 5, np.int64), "model_id": np.array(["dmd2-test"] * 3, dtype=object),
        })  # fmt: skip
        writer.table(lineage_spec({})).append({
            "sample_id": ids, "operation": np.array(["variations"] * 3, dtype=object), "parent_ids": np.array([parent] * 3, dtype=object),
            "layer": np.array([""] * 3, dtype=object), "mask": np.array([""] * 3, dtype=object), "channels": np.array([""] * 3, dtype=object),
            "sigma": np.full(3, np.nan, np.float32), "weight": np.full(3, np.nan, np.float32), "edit_seed": np.full(3, 5, np.int64),
            "class_id": np.full(3, 1, np.int16), "run_id": np.array(["r1"] * 3, dtype=object),
        })  # fmt: skip
        labels = {"sample_id": ids, "source": np.array(["generated"] * 3, dtype=object), "class_id": np.full(3, 1, np.int16),
                  "split": np.array(["edited"] * 3, dtype=object), "sample_row": np.arange(n_before, n_before + 3, dtype=np.int64)}  # fmt: skip
        pca_scores = writer_scores(built)
        parent_scores = pca_scores[parent_row]
        near = np.argsort(((pca_scores - parent_scores) ** 2).sum(axis=1))[:15]
        writer.table(placed_spec(key, 8, {}, k=15)).append({
            "scores": np.repeat(parent_scores[None], 3, axis=0), "neighbor_id": np.repeat(built.sample_ids[near][None], 3, axis=0).astype(object),
            "neighbor_row": np.repeat(near[None], 3, axis=0).astype(np.int64),
            "distance": np.repeat(np.sqrt(((pca_scores[near] - parent_scores) ** 2).sum(axis=1))[None], 3, axis=0).astype(np.float32), **labels,
        })  # fmt: skip
        coords = np.asarray(pca_scores[parent_row, :2] * 0.5 + np.array([[0.3, 0], [0, 0.3], [-0.3, 0]]), dtype=np.float32)
        writer.table(placed_embedding_spec(key, NAME_2D, 2, {})).append({"embedding": coords, **labels})
    return built, parent, ids


def writer_scores(built) -> np.ndarray:
    from lake import open_lake

    return np.asarray(open_lake(built.path).column(f"analysis/pca/{KEY}", "scores"), dtype=np.float32)


def test_placed_samples_are_diamonds_with_lines_to_their_parents(placed_lake, monkeypatch):
    built, parent, ids = placed_lake
    at = open_app(built.path, monkeypatch)
    spec, data = chart_datasets(at)
    layers = [layer["data"]["name"] for layer in spec["layer"]]
    assert layers == ["points", "lineage", "placed", "marks"]
    placed_layer = spec["layer"][2]
    assert placed_layer["mark"]["shape"] == "diamond"
    assert sorted(data["placed"]["sample_id"]) == sorted(ids)
    assert not set(ids) & set(data["points"]["sample_id"])  # fitted points and placed ones are drawn apart
    assert set(data["placed"]["placement"]) == {f"placed, not fitted · variations of {parent}"}
    lines = data["lineage"]
    assert len(lines) == 3
    parent_xy = data["points"].set_index("sample_id").loc[parent, ["x", "y"]].to_numpy(dtype=np.float32)
    assert np.allclose(lines[["x2", "y2"]].to_numpy(), parent_xy)  # every line ends at the parent
    assert np.allclose(np.sort(lines["x"].to_numpy()), np.sort(data["placed"]["x"].to_numpy()))


def test_a_placed_sample_selects_like_any_point_and_says_it_is_placed(placed_lake, monkeypatch):
    built, parent, ids = placed_lake
    at = open_app(built.path, monkeypatch)
    _select(at, str(ids[1]))
    text = markdown_text(at)
    assert str(ids[1]) in text and "placed, not fitted" in text and "variations of" in text and parent in text
    assert "nearest neighbours** · activation (the fitted samples it was placed by)" in text
    assert len(at.get("image")) >= 2  # its own image and its neighbours' thumbnails
    _, data = chart_datasets(at)
    assert dict(zip(data["marks"]["sample_id"], data["marks"]["role"]))[str(ids[1])] == "selected"


def test_the_jobs_area_shows_a_finished_job_and_a_failed_one_with_its_one_line_error(small_lake, monkeypatch):
    lake = small_lake.path
    say = (sys.executable, "-c", "print('ingest edit variations: 4 new sample(s) (run r1)')")
    _wait(lake, jobs.start_job(lake, _request(lake), [job_commands.JobCommand("variations", say)]).job_id)
    at = open_app(lake, monkeypatch)
    assert any("done in" in s.value and "4 new sample(s)" in s.value for s in at.success)
    fail = (sys.executable, "-c", "import sys; sys.exit('lake: is being written by pid 42; wait for it to finish, then run again')")
    _wait(lake, jobs.start_job(lake, _request(lake), [job_commands.JobCommand("variations", fail)]).job_id)
    at = open_app(lake, monkeypatch, checked=False)  # the failed job's error box is the point here
    (error,) = at.error
    assert "failed: variations failed (exit 1): lake: is being written by pid 42" in error.value
    assert "\n" not in error.value


def test_placed_labels_are_coded_as_if_appended_to_the_fitted_ones():
    from explorer.rows import factorize, factorize_both

    fitted = np.array(["real", "generated", "real", "generated"], dtype=np.dtypes.StringDType())
    placed = np.array(["generated", "zzz", "a b"], dtype=np.dtypes.StringDType())
    codes, categories = factorize_both(fitted, placed)
    expected_codes, expected = factorize(np.concatenate([fitted, placed]))
    assert categories == expected == ("a b", "generated", "real", "zzz")
    assert codes.tolist() == expected_codes.tolist()


def test_a_running_job_can_be_stopped_and_the_lake_takes_the_next(tmp_path):
    lake = tmp_path / "lake"
    lake.mkdir()
    child_pid = tmp_path / "child.pid"
    record = (sys.executable, "-c", f"import os, time; open({str(child_pid)!r}, 'w').write(str(os.getpid())); time.sleep(60)")
    status = jobs.start_job(lake, _request(lake), [job_commands.JobCommand("edit", record), job_commands.JobCommand("place", SLEEP)])
    for _ in range(400):
        if child_pid.exists() and child_pid.read_text():
            break
        time.sleep(0.05)
    assert not jobs.cancel_job(lake, "not-this-job")
    assert jobs.cancel_job(lake, status.job_id)
    job = _wait(lake, status.job_id)
    assert job.state == jobs.FAILED and job.message == "stopped from the explorer" and job.step == 0
    pid = int(child_pid.read_text())
    for _ in range(200):  # the running command went with its driver
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the job's command is still running")
    assert not jobs.cancel_job(lake, status.job_id)
    _wait(lake, jobs.start_job(lake, _request(lake), [job_commands.JobCommand("quick", (sys.executable, "-c", "print(1)"))]).job_id)


def test_a_click_after_the_map_was_rebuilt_counts_whether_the_view_kept_the_old_selection_or_not():
    from explorer import charts

    _, seen = charts.PickSeen().update(("parent",))
    seen = seen.rebuilt()  # placed samples arrived: a new spec
    clicked, _ = seen.update(("parent", "edit/variations/x/0"))  # the rebuilt view kept the selection
    assert clicked == "edit/variations/x/0"
    clicked, _ = seen.update(("edit/variations/x/0",))  # the rebuilt view started empty
    assert clicked == "edit/variations/x/0"
    clicked, _ = seen.update(("parent", "a", "b"))  # never one click
    assert clicked is None


def test_real_vs_generated_compares_the_fitted_samples_only(placed_lake, monkeypatch):
    built, _, ids = placed_lake
    at = open_app(built.path, monkeypatch)
    at.radio(key="w_page").set_value("compare").run()
    _, data = chart_datasets(at)
    drawn = set(data["points"]["sample_id"])
    assert drawn and not drawn & set(ids)


def test_placed_samples_on_the_webgl_scatter_are_listed_with_their_parent_lines_and_hover(placed_lake, monkeypatch):
    import json
    import urllib.request

    from apptest import gl_message

    built, parent, ids = placed_lake
    at = open_app(built.path, monkeypatch, scatter="webgl")
    message = gl_message(at)
    placed = message["placed"]
    n = message["points"]["n"]
    assert sorted(placed["rows"]) == list(range(n - len(ids), n))  # the placed rows come after the fitted ones
    assert len(placed["lines"]) == 3 and {child for child, _ in placed["lines"]} == set(placed["rows"])
    (parent_row,) = {p for _, p in placed["lines"]}

    def facts(row: int) -> dict:
        with urllib.request.urlopen(f"{message['meta']}{row}.json", timeout=10) as response:
            return dict(json.loads(response.read()))

    assert facts(parent_row)["sample id"] == parent and "placement" not in facts(parent_row)  # every line ends at the parent
    hovered = facts(placed["rows"][0])
    assert hovered["sample id"] in ids and hovered["placement"] == f"placed, not fitted · variations of {parent}"
