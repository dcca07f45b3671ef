"""How the explorer reports errors: one line for users, the traceback in the server log,
and a re-raise in debug mode (`--debug` or DMD2VIZ_DEBUG=1) so tests and developers see it.

The failure is real: a lake whose 2D embedding chunk holds garbage bytes, so reading it fails
inside the page (the lake itself opens and lists its embeddings).
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from apptest import CheckedAppTest, open_app, problems
from conftest import KEY, NAME_2D
from explorer.config import build_parser, parse_args


@pytest.fixture
def broken_lake(small_lake, tmp_path) -> Path:
    """A copy of the small lake whose 2D embedding's only chunk is corrupt."""
    lake = tmp_path / "broken"
    shutil.copytree(small_lake.path, lake)
    chunk = lake / "analysis" / "embeddings" / KEY / NAME_2D / "embedding" / "c" / "0" / "0"
    assert chunk.is_file()
    chunk.write_bytes(b"not a zstd frame" * 8)
    return lake


def test_without_debug_the_user_gets_one_line_and_the_log_gets_the_traceback(broken_lake, monkeypatch, caplog):
    monkeypatch.delenv("DMD2VIZ_DEBUG", raising=False)
    with caplog.at_level(logging.ERROR, logger="explorer"):
        at = open_app(broken_lake, monkeypatch, checked=False)
    assert not at.exception
    assert len(at.error) == 1
    message = at.error[0].value
    assert message.startswith("The explorer could not show this view: ") and "\n" not in message
    records = [r for r in caplog.records if r.name == "explorer" and r.levelno == logging.ERROR]
    assert len(records) == 1 and records[0].exc_info is not None
    assert str(broken_lake) in records[0].getMessage()
    assert "Traceback" in caplog.text and "load_frame" in caplog.text  # where it failed, not just what


@pytest.mark.parametrize("switch", ["env", "flag"])
def test_debug_mode_raises_so_streamlit_shows_the_exception(broken_lake, monkeypatch, caplog, switch):
    argv: tuple[str, ...] = ()
    if switch == "flag":
        monkeypatch.delenv("DMD2VIZ_DEBUG", raising=False)
        argv = ("--debug",)
    else:
        monkeypatch.setenv("DMD2VIZ_DEBUG", "1")
    with caplog.at_level(logging.ERROR, logger="explorer"):
        at = open_app(broken_lake, monkeypatch, checked=False, argv=argv)
    assert not at.error  # no one-line box: the exception itself is shown
    assert len(at.exception) == 1
    assert any("load_frame" in line for line in at.exception[0].stack_trace)
    assert any(r.name == "explorer" and r.exc_info for r in caplog.records)  # and still logged


def test_checked_apptest_fails_on_an_error_box(broken_lake, monkeypatch):
    """The helper every AppTest test uses must fail on an error box, not only on exceptions."""
    monkeypatch.delenv("DMD2VIZ_DEBUG", raising=False)
    with pytest.raises(pytest.fail.Exception, match="could not show this view"):
        open_app(broken_lake, monkeypatch)
    at = open_app(broken_lake, monkeypatch, checked=False)
    assert problems(at) and not isinstance(at, CheckedAppTest)


def test_checked_apptest_fails_on_an_error_after_a_widget_run(small_lake, broken_lake, monkeypatch):
    """Runs started by a widget (`.set_value(...).run()`) are checked too."""
    at = open_app(small_lake.path, monkeypatch)
    monkeypatch.setenv("DMD2VIZ_LAKE", str(broken_lake))  # the next run opens the broken lake
    with pytest.raises(pytest.fail.Exception, match="explorer showed an error"):
        at.radio(key="w_page").set_value("compare").run()


@pytest.mark.parametrize(
    "argv, env, expected",
    [([], {}, False), (["--debug"], {}, True), ([], {"DMD2VIZ_DEBUG": "1"}, True), ([], {"DMD2VIZ_DEBUG": "true"}, True), ([], {"DMD2VIZ_DEBUG": "0"}, False)],
)
def test_debug_switch(argv, env, expected, monkeypatch):
    monkeypatch.delenv("DMD2VIZ_DEBUG", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config, problems_found = parse_args(["--lake", "x", *argv])
    assert config.debug is expected and problems_found == []


def test_debug_flag_has_help():
    text = build_parser().format_help()
    assert "--debug" in text and "DMD2VIZ_DEBUG=1" in text and "server log" in text
