"""lake.cli: the dispatch, one-line errors and validators `python -m ingest` and `python -m analysis` share."""
from __future__ import annotations

import argparse

import pytest

from lake.cli import command, non_negative_float, positive_int, require_positive, run_cli
from lake.errors import NotALakeError


class ToolError(Exception):
    pass


def parser_with(handler) -> argparse.ArgumentParser:  # noqa: ANN001
    parser = argparse.ArgumentParser(prog="tool")
    sub = parser.add_subparsers(dest="command", required=True)
    p = command(sub, "go", handler, help="run it")
    p.add_argument("--n", type=positive_int, default=1)
    p.add_argument("--x", type=non_negative_float, default=0.0)
    return parser


def test_the_handler_of_the_chosen_command_runs_with_the_parsed_flags() -> None:
    seen = []
    assert run_cli(parser_with(lambda args: seen.append((args.n, args.x))), ["go", "--n", "3", "--x", "0.5"]) == 0
    assert seen == [(3, 0.5)]
    assert run_cli(parser_with(lambda args: 7), ["go"]) == 7


@pytest.mark.parametrize("error", [NotALakeError("/x: not a lake"), ToolError("--n: bad")])
def test_user_errors_print_one_line_and_exit_2(error, capsys) -> None:
    def handler(args):  # noqa: ANN001, ANN202
        raise error

    assert run_cli(parser_with(handler), ["go"], (ToolError,)) == 2
    err = capsys.readouterr().err
    assert err == f"error: {error}\n"


def test_other_errors_are_bugs_and_raise() -> None:
    def handler(args):  # noqa: ANN001, ANN202
        raise ZeroDivisionError("bug")

    with pytest.raises(ZeroDivisionError):
        run_cli(parser_with(handler), ["go"], (ToolError,))


def test_ctrl_c_is_one_line_and_status_130(capsys) -> None:
    def handler(args):  # noqa: ANN001, ANN202
        raise KeyboardInterrupt

    assert run_cli(parser_with(handler), ["go"], interrupted="stopped; resume later") == 130
    assert capsys.readouterr().err == "stopped; resume later\n"


@pytest.mark.parametrize("argv, message", [(["go", "--n", "0"], "'0' must be at least 1"), (["go", "--n", "x"], "'x' is not an integer"),
                                           (["go", "--x", "-1"], "'-1' must not be negative")])
def test_validators_reject_bad_flags_naming_them(argv, message, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        run_cli(parser_with(lambda args: 0), argv)
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_require_positive_names_the_flag() -> None:
    require_positive(None, "--k")
    require_positive(3, "--k")
    with pytest.raises(ToolError, match="^--k must be a positive integer, got 0$"):
        require_positive(0, "--k", ToolError)
