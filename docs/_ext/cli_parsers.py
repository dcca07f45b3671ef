"""Our real argparse parsers, with their help texts made safe for reStructuredText (docs/cli.md).

sphinx-argparse renders every help string, description and epilog as reStructuredText, but
ours are written for the terminal: ``*.npz`` or ``sigma*eps`` would open emphasis,
``train_data_batch_*.npz`` a hyperlink reference, an indented epilog a definition list. Each
function here builds the very parser the command line uses (`ingest.cli.build_parser`, ...)
and rewrites only its texts: special characters escaped, `code` as literal text, epilogs and
preformatted descriptions as literal blocks. Flags, defaults, choices and subcommands are
untouched, and tests/docs/test_docs_build.py checks the built reference against the real
parsers.
"""
from __future__ import annotations

import argparse
import re


def rst_text(text: str | None) -> str | None:
    """Plain terminal text as reStructuredText that reads the same."""
    if not text:
        return text
    text = text.replace("\\", "\\\\")
    parts = re.split(r"(`[^`]+`)", text)  # code spans keep their characters; the rest is escaped
    out = []
    for part in parts:
        if len(part) > 1 and part.startswith("`") and part.endswith("`"):
            out.append(f"``{part[1:-1]}``")
        else:
            part = re.sub(r"([*|])", r"\\\1", part)
            part = re.sub(r"(?<=\w)_(?=\W|$)", r"\\_", part)  # `name_` is a hyperlink reference
            out.append(part)
    return "".join(out)


def literal(text: str | None) -> str | None:
    """Preformatted text (examples, aligned lists) as a literal block."""
    if not text:
        return text
    body = "\n".join("    " + line if line.strip() else "" for line in text.strip("\n").split("\n"))
    return "::\n\n" + body + "\n"


def _rewrite(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    formatter = parser.formatter_class
    raw = isinstance(formatter, type) and issubclass(formatter, argparse.RawDescriptionHelpFormatter)
    parser.description = literal(parser.description) if raw and parser.description and "\n" in parser.description else rst_text(parser.description)
    parser.epilog = literal(parser.epilog)
    for action in parser._actions:
        if action.help is not None and action.help != argparse.SUPPRESS:
            action.help = rst_text(action.help)
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                choice.help = rst_text(choice.help)
            for sub in dict.fromkeys(action.choices.values()):
                _rewrite(sub)
    return parser


def ingest_parser() -> argparse.ArgumentParser:
    """`python -m ingest`."""
    from ingest.cli import build_parser

    return _rewrite(build_parser())


def analysis_parser() -> argparse.ArgumentParser:
    """`python -m analysis`."""
    from analysis.cli import build_parser

    return _rewrite(build_parser())


def explorer_parser() -> argparse.ArgumentParser:
    """The explorer's own flags (after `--` in `streamlit run explorer/app.py -- ...`)."""
    from explorer.config import build_parser

    return _rewrite(build_parser())
