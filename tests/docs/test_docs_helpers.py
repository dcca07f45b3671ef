"""The docs' two small helpers (docs/_ext): plain-text docstrings and help texts as reStructuredText.

Each rewritten text must parse without a single docutils warning and keep what it says.
"""
from __future__ import annotations

import io
import sys

import pytest
from docutils.core import publish_doctree

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "docs" / "_ext"))
from cli_parsers import analysis_parser, ingest_parser, literal, rst_text  # noqa: E402
from plain_docstrings import plain_to_rst  # noqa: E402


def warnings_of(rst: str) -> str:
    stream = io.StringIO()
    publish_doctree(rst, settings_overrides={"warning_stream": stream, "report_level": 2, "halt_level": 5})
    return stream.getvalue()


def text_of(rst: str) -> str:
    return publish_doctree(rst, settings_overrides={"report_level": 5}).astext()


PLAIN = [
    # a module docstring whose body is example code
    ["Our generator.", "", "    from models import capture", "    with capture(G, ['mid']) as acts:", "        G(x)"],
    # single-backtick code, a star that opens nothing, a word-final underscore, a pipe
    ["Noise (N, *shape) for `indices`; sigma*eps; train_data_batch_*.npz; a|b."],
    # a list whose items continue on indented lines, then a literal block after a colon
    ["Steps:", "", "- one thing that goes on", "  over two lines", "- another", "", "Example:", "",
     "  x = run(1)"],
    # reStructuredText already: kept as it is
    ["See :literal:`open_lake` and *placed* points, **never** fitted::", "", "    lake = open_lake(p)"],
]


@pytest.mark.parametrize("lines", PLAIN)
def test_plain_docstrings_parse_cleanly(lines: list[str]):
    rendered = "\n".join(plain_to_rst(lines))
    assert warnings_of(rendered) == "", rendered


def test_plain_docstrings_keep_their_text():
    code = text_of("\n".join(plain_to_rst(PLAIN[0])))
    assert "with capture(G, ['mid']) as acts:\n    G(x)" in code  # a literal block, indentation kept
    prose = text_of("\n".join(plain_to_rst(PLAIN[1])))
    assert prose == "Noise (N, *shape) for indices; sigma*eps; train_data_batch_*.npz; a|b."
    rst = plain_to_rst(PLAIN[3])
    assert rst == PLAIN[3]  # roles, emphasis, strong and `::` untouched
    listed = plain_to_rst(PLAIN[2])
    assert "  over two lines" in listed and listed.count("::") == 1  # the list stays a list


def test_the_unrewritten_texts_do_warn():
    # The helpers are needed: the same texts as plain reStructuredText are broken.
    assert "Unexpected indentation" in warnings_of("\n".join(PLAIN[0]))
    assert "Inline emphasis start-string" in warnings_of("Noise (N, *shape) per sample.")
    assert "Unknown target name" in warnings_of("the name_ of it")


def test_help_texts_become_clean_restructuredtext():
    for parser in (ingest_parser(), analysis_parser()):
        texts = [parser.epilog or ""]
        for action in parser._actions:
            for sub in getattr(action, "choices", None) or {}:
                sub_parser = action.choices[sub]
                texts += [sub_parser.description or ""] + [a.help or "" for a in sub_parser._actions]
        for text in texts:
            assert warnings_of(text) == "", text
    assert rst_text("folders whose *.npz files") == "folders whose \\*.npz files"
    assert rst_text("in `reconstructions`") == "in ``reconstructions``"
    assert literal("examples:\n  python -m analysis list") == "::\n\n    examples:\n      python -m analysis list\n"
