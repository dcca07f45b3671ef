"""What the CLI docs check reads: our real parsers, and the command lines and flags the docs write.

- `parsers()`: every (program, subcommand path) of `python -m ingest`, `python -m analysis` and
  the explorer (`streamlit run explorer/app.py -- ...`) with the flags its argparse parser has;
- `benchmark_flags()`: the flags of each `benchmarks/*.py`, read from its `add_argument` calls;
- `command_lines(text)`: the documented command lines of those programs (continuation lines
  joined), each with its subcommand path and flags;
- `flag_mentions(text)`: every ``--flag`` a page mentions anywhere.
"""
from __future__ import annotations

import argparse
import ast
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from tests.conftest import REPO

INGEST, ANALYSIS, EXPLORER = "python -m ingest", "python -m analysis", "explorer"
SUBCOMMAND = re.compile(r"^[a-z][a-z0-9-]*$")  # anything else (JOB, OP, <operation>, ...) is a placeholder
FLAG = re.compile(r"(?<![\w-])--[a-zA-Z][\w-]*(?:\.[\w-]+)*")
# Flags of other tools the docs mention, by tool. Streamlit's own (--server.address, ...) are dotted.
EXTERNAL = {
    "--no-deps": "pip", "--no-build-isolation": "pip", "--multi_gpu": "accelerate launch",
    "--num_processes": "accelerate launch", "--cpu": "accelerate launch", "--nworkers": "dask worker",
    "--nthreads": "dask worker", "--keep-going": "sphinx-build", "--dist": "pytest-xdist", "--help": "every command",
}
STREAMLIT = re.compile(r"--(server|browser|client|global|logger|runner|theme)\.[\w.]+")


def _walk(parser: argparse.ArgumentParser, program: str, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, tuple[str, ...]], set[str]]]:
    flags: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, program, (*path, name))
        else:
            flags.update(o for o in action.option_strings if o.startswith("--"))
    yield (program, path), flags


def _programs() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Our three CLIs and their real parsers, as their command lines build them."""
    from analysis.cli import build_parser as analysis_parser
    from explorer.config import build_parser as explorer_parser
    from ingest.cli import build_parser as ingest_parser

    for program, build in ((INGEST, ingest_parser), (ANALYSIS, analysis_parser), (EXPLORER, explorer_parser)):
        yield program, build()


def parsers() -> dict[tuple[str, tuple[str, ...]], set[str]]:
    """(program, subcommand path) -> its flags, for every parser and subparser of our three CLIs."""
    found: dict[tuple[str, tuple[str, ...]], set[str]] = {}
    for program, parser in _programs():
        found.update(_walk(parser, program, ()))
    return found


def undocumented() -> list[str]:
    """Flags, positionals and subcommands of our parsers without a help text (the reference would list them bare)."""
    found: list[str] = []

    def walk(parser: argparse.ArgumentParser, where: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                found.extend(f"{where} {c.dest}" for c in action._choices_actions if not (c.help or "").strip())
                for name, sub in action.choices.items():
                    walk(sub, f"{where} {name}")
            elif not (action.help or "").strip():
                found.append(f"{where} {'/'.join(action.option_strings) or action.dest}")

    for program, parser in _programs():
        walk(parser, program)
    return found


def leaves(all_parsers: dict[tuple[str, tuple[str, ...]], set[str]]) -> set[tuple[str, tuple[str, ...]]]:
    """The runnable commands: subcommand paths that have no subcommands below them."""
    paths = set(all_parsers)
    return {p for p in paths if p[1] and not any(q[0] == p[0] and q[1][:len(p[1])] == p[1] and q != p for q in paths)}


@functools.cache
def benchmark_flags() -> dict[str, set[str]]:
    """benchmarks/<name>.py -> the flags of its `add_argument` calls (read, not imported)."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / "benchmarks").glob("*.py")):
        flags: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
                flags |= {a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value.startswith("--")}
        found[path.stem] = flags
    return found


@dataclass(frozen=True)
class CommandLine:
    where: str
    program: str
    path: tuple[str, ...]  # the first two words after the program, up to a flag or placeholder
    flags: tuple[str, ...]
    text: str


def _joined(text: str) -> str:
    return re.sub(r"\\\n\s*", " ", text)  # shell continuation lines


def _flags(words: list[str]) -> tuple[str, ...]:
    return tuple(w.split("=")[0].rstrip(")],.;:") for w in words if FLAG.fullmatch(w.split("=")[0].rstrip(")],.;:")))


def command_lines(text: str, where: str) -> list[CommandLine]:
    """The `python -m ingest|analysis ...`, `streamlit run explorer/app.py ... -- ...` and
    `python benchmarks/X.py ...` command lines of a Markdown text (code blocks and inline code)."""
    found = []
    text = _joined(text)
    for match in re.finditer(r"-m (ingest|analysis)(?![\w.])([^`\n#|]*)", text):
        words = match.group(2).split()
        path: list[str] = []
        for word in words[:2]:  # the subcommand and, for `ingest edit`, its operation
            word = word.split("\\")[0]
            if not SUBCOMMAND.match(word):
                break
            path.append(word)
        found.append(CommandLine(where, f"python -m {match.group(1)}", tuple(path), _flags(words), match.group(0)))
    for match in re.finditer(r"streamlit run explorer/app\.py([^`\n#]*)", text):
        ours = match.group(1).split(" -- ", 1)[1] if " -- " in match.group(1) else ""
        found.append(CommandLine(where, EXPLORER, (), _flags(ours.split()), match.group(0)))
    for match in re.finditer(r"benchmarks/(bench_\w+)\.py([^`\n#]*)", text):
        found.append(CommandLine(where, f"benchmarks/{match.group(1)}.py", (), _flags(match.group(2).split()), match.group(0)))
    return found


def flag_mentions(text: str) -> set[str]:
    text = re.sub(r"--[^\s-][^\n]*?-->", " ", text)  # the arrows of ASCII diagrams (`--ingest npz-->`)
    return set(FLAG.findall(text))


def documents() -> dict[str, str]:
    """README.md and every Markdown page of docs/ (not the build output), by path."""
    pages = [REPO / "README.md", *sorted(p for p in (REPO / "docs").rglob("*.md") if "_build" not in p.parts)]
    return {str(p.relative_to(REPO)): p.read_text() for p in pages}


def resolve(line: CommandLine, all_parsers: dict[tuple[str, tuple[str, ...]], set[str]]) -> tuple[str, set[str]] | None:
    """The parser a command line names and its flags, or None when it names a subcommand no parser has.

    A command line that stops before a subcommand (`python -m ingest edit OP ...`) gets the flags
    of every command below what it names; a second word counts only where the first has subcommands.
    """
    node: tuple[str, ...] = ()
    for word in line.path:
        children = {path[len(node)] for (program, path) in all_parsers if program == line.program
                    and len(path) == len(node) + 1 and path[:len(node)] == node}
        if not children:
            break
        if word not in children:
            return None
        node = (*node, word)
    if (line.program, node) not in all_parsers:
        return None
    below = [flags for (program, path), flags in all_parsers.items() if program == line.program and path[:len(node)] == node]
    return " ".join((line.program, *node)), set().union(*below)


def known_flag(flag: str, everything: set[str]) -> bool:
    return flag in everything or flag in EXTERNAL or bool(STREAMLIT.fullmatch(flag))
