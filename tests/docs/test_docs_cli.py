"""The docs and the README say only what the real command-line parsers accept, and name every command.

- every `python -m ingest|analysis ...` command line in README.md and docs/*.md names a real
  subcommand and only its flags; every explorer command line only the explorer's flags after
  `--`; every `python benchmarks/X.py ...` only that script's flags;
- every `--flag` mentioned anywhere belongs to one of our parsers (or, listed by tool, to pip,
  accelerate, dask or Streamlit);
- every runnable command has at least one example command line in the guides;
- the CLI reference (docs/cli.md) renders the parser of every command-line program we ship.

That a parser's flags all reach the built reference is checked on the built site
(test_docs_build.py).
"""
from __future__ import annotations

import re

import pytest
from cli_docs import (
    EXPLORER,
    CommandLine,
    benchmark_flags,
    command_lines,
    documents,
    flag_mentions,
    known_flag,
    leaves,
    parsers,
    resolve,
    undocumented,
)

from tests.conftest import REPO

PARSERS = parsers()
DOCS = documents()
LINES = [line for where, text in DOCS.items() for line in command_lines(text, where)]
EVERY_FLAG = set().union(*PARSERS.values(), *benchmark_flags().values())


def test_the_docs_have_command_lines_of_every_program():
    programs = {line.program for line in LINES}
    assert {"python -m ingest", "python -m analysis", EXPLORER} <= programs
    assert any(p.startswith("benchmarks/") for p in programs)


def _id(line: CommandLine) -> str:
    return f"{line.where}: {line.text[:60]}"


@pytest.mark.parametrize("line", [c for c in LINES if not c.program.startswith("benchmarks/")], ids=_id)
def test_documented_command_lines_match_the_parsers(line: CommandLine):
    named = resolve(line, PARSERS)
    assert named is not None, f"{line.where}: `{line.text}` names a subcommand that no parser has"
    label, flags = named
    unknown = [f for f in line.flags if f not in flags and f != "--help"]
    assert not unknown, f"{line.where}: `{line.text}` uses {unknown}, which `{label}` does not accept"


@pytest.mark.parametrize("line", [c for c in LINES if c.program.startswith("benchmarks/")], ids=_id)
def test_documented_benchmark_command_lines_match_their_scripts(line: CommandLine):
    name = line.program.removeprefix("benchmarks/").removesuffix(".py")
    scripts = benchmark_flags()
    assert name in scripts, f"{line.where}: {line.program} does not exist"
    unknown = [f for f in line.flags if f not in scripts[name] and f != "--help"]
    assert not unknown, f"{line.where}: `{line.text}` uses {unknown}, which {line.program} does not accept"


@pytest.mark.parametrize("where", sorted(DOCS))
def test_every_mentioned_flag_exists(where: str):
    unknown = sorted(f for f in flag_mentions(DOCS[where]) if not known_flag(f, EVERY_FLAG))
    assert not unknown, f"{where} mentions {unknown}, which no parser of ours (nor a listed tool) has"


def test_every_command_has_an_example_in_the_guides():
    guides = [line for line in LINES if line.where != "docs/cli.md"]
    shown = set()
    for line in guides:
        named = resolve(line, PARSERS)
        if named:
            shown.add(named[0])
    commands = {" ".join((program, *path)) for program, path in leaves(PARSERS)}
    assert not commands - shown, f"commands without an example command line in README.md or docs/: {sorted(commands - shown)}"


def test_every_flag_and_subcommand_has_a_help_text():
    # The reference is generated from the parsers: a flag without help would appear there unexplained.
    assert undocumented() == [], "add help= to these, the CLI reference shows it"


def test_the_cli_reference_renders_every_program():
    reference = (REPO / "docs" / "cli.md").read_text()
    functions = set(re.findall(r"^:func:\s*(\S+)", reference, flags=re.MULTILINE))
    assert set(re.findall(r"^:module:\s*(\S+)", reference, flags=re.MULTILINE)) == {"cli_parsers"}
    wrappers = (REPO / "docs" / "_ext" / "cli_parsers.py").read_text()
    # Every `python -m <package>` we ship (a package with a __main__.py) and the explorer: a
    # directive, through a wrapper that builds the package's own parser.
    for package, module in [(m.parent.name, f"{m.parent.name}.cli") for m in sorted(REPO.glob("*/__main__.py"))] + [("explorer", "explorer.config")]:
        assert f"{package}_parser" in functions, f"docs/cli.md has no argparse directive for {package}"
        assert re.search(rf"def {package}_parser\(\).*?from {re.escape(module)} import build_parser", wrappers, flags=re.DOTALL)


def test_the_checks_can_fail():
    # A made-up subcommand, a made-up flag and a made-up mention are each caught.
    made_up = command_lines("`python -m analysis frobnicate --lake L`\n"
                            "```\npython -m ingest generate --lake L --colour-depth 3\n```\n", "test")
    assert resolve(made_up[0], PARSERS) is None
    named = resolve(made_up[1], PARSERS)
    assert named is not None and "--colour-depth" not in named[1] and "--num-samples" in named[1]
    assert not known_flag("--colour-depth", EVERY_FLAG) and known_flag("--server.address", EVERY_FLAG)
    edit = command_lines("python -m ingest edit variations --lake L --n 8 \\\n    --seed 5", "test")[0]
    assert edit.path == ("edit", "variations") and edit.flags == ("--lake", "--n", "--seed")


def test_a_flag_without_help_is_caught(monkeypatch: pytest.MonkeyPatch):
    import ingest.cli

    real = ingest.cli.build_parser

    def with_a_bare_flag():  # what adding a flag without documenting it looks like
        parser = real()
        parser.add_argument("--colour-depth")
        return parser

    monkeypatch.setattr(ingest.cli, "build_parser", with_a_bare_flag)
    assert undocumented() == ["python -m ingest --colour-depth"]
