"""requirements.lock: the pins `make setup` installs, and the checks that keep it honest.

The lock is written by pip-compile (`make lock`), then stamped here with a digest of the
requirement lists of pyproject.toml it was compiled from. `check` finds every way the lock
and pyproject.toml can disagree; tests/test_lock.py runs it, `make lock-check` prints it.

    python .ci/lockfile.py stamp      # after pip-compile: write the digest header
    python .ci/lockfile.py check      # one line per problem, exit 1 if any
    python .ci/lockfile.py constraints  # the pins pip-compile must honour (torch)

Standard library plus `packaging` (pinned in the lock itself), so it runs in the venv.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "requirements.lock"

# The local CPU wheel (pip's find-links) is torch 2.13.0+cpu; a plain `torch` with no
# torch installed would pull the multi-GB CUDA build and its nvidia-* packages.
TORCH_PIN = "torch==2.13.0"
# Packages that only a CUDA build of torch pulls in; none may appear in the lock.
CUDA_ONLY = re.compile(r"^(nvidia-.*|triton|cuda-.*)$")
DIGEST_PREFIX = "# pyproject-requirements-sha256: "
# How pip-compile names the project itself in `# via` annotations.
PROJECT_VIA = re.compile(r"^(?P<name>[A-Za-z0-9._-]+) \(pyproject\.toml\)$")
PIN_LINE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)\s*$")


@dataclass(frozen=True)
class Pin:
    """One `name==version` line of the lock with the `# via` entries under it."""

    name: str  # canonical (PEP 503) name
    version: str
    via: tuple[str, ...]


@dataclass
class Lock:
    """A parsed requirements.lock."""

    pins: dict[str, Pin] = field(default_factory=dict)
    digest: str | None = None
    problems: list[str] = field(default_factory=list)  # lines that are not pins


def requirement_lists(pyproject: dict) -> dict[str, list[str]]:
    """The lists the lock covers: `dependencies` and every optional-dependencies extra."""
    project = pyproject.get("project", {})
    lists = {"dependencies": list(project.get("dependencies", []))}
    for extra, reqs in sorted(project.get("optional-dependencies", {}).items()):
        lists[f"extra:{extra}"] = list(reqs)
    return lists


def requirements_digest(lists: dict[str, list[str]]) -> str:
    """sha256 of the requirement lists, insensitive to order, spacing and comments."""
    canonical = {key: sorted(str(Requirement(r)) for r in reqs) for key, reqs in lists.items()}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def parse_lock(text: str) -> Lock:
    """Parse pip-compile output: pins, their `# via` annotations and our digest header."""
    lock = Lock()
    name: str | None = None
    version = ""
    via: list[str] = []

    def flush() -> None:
        if name is not None:
            if name in lock.pins:
                lock.problems.append(f"{name} is pinned twice")
            lock.pins[name] = Pin(name, version, tuple(via))

    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith(DIGEST_PREFIX):
            lock.digest = line[len(DIGEST_PREFIX):].strip()
            continue
        if not line:
            continue
        if line.startswith("#"):
            entry = line.lstrip("#").strip()
            if name is None or not raw.startswith("    #"):
                continue  # header or section comment
            if entry.startswith("via "):
                entry = entry[len("via "):].strip()
            if entry and entry != "via":
                via.append(entry)
            continue
        match = PIN_LINE.match(line)
        if match is None:
            lock.problems.append(f"line {number}: not an exact `name==version` pin: {line}")
            continue
        flush()
        name, version, via = canonicalize_name(match["name"]), match["version"], []
    flush()
    return lock


def is_cpu_build_of(version: str, pin: str) -> bool:
    """Whether `version` is `pin`'s release as a CPU build (`2.13.0` or `2.13.0+cpu`)."""
    try:
        parsed = Version(version)
    except InvalidVersion:
        return False
    return Requirement(pin).specifier.contains(parsed.public) and parsed.local in (None, "cpu")


def check(pyproject: dict, lock: Lock) -> list[str]:
    """Every disagreement between pyproject.toml and the lock, one line each ([] if none)."""
    problems = list(lock.problems)
    lists = requirement_lists(pyproject)
    project = canonicalize_name(pyproject.get("project", {}).get("name", ""))

    expected = requirements_digest(lists)
    if lock.digest is None:
        problems.append("requirements.lock has no pyproject digest header: run `make lock`")
    elif lock.digest != expected:
        problems.append("requirements.lock was compiled from other pyproject.toml requirement "
                        "lists: run `make lock`")

    direct: set[str] = set()
    for key, reqs in lists.items():
        for text in reqs:
            try:
                req = Requirement(text)
            except InvalidRequirement as err:
                problems.append(f"pyproject.toml {key}: bad requirement {text!r}: {err}")
                continue
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue  # not for this platform: pip-compile leaves it out
            name = canonicalize_name(req.name)
            direct.add(name)
            pin = lock.pins.get(name)
            if pin is None:
                problems.append(f"{req.name} ({key}) is not pinned in requirements.lock")
                continue
            try:
                ok = req.specifier.contains(Version(pin.version), prereleases=True)
            except InvalidVersion:
                ok = False
            if not ok:
                problems.append(f"{req.name}=={pin.version} in requirements.lock does not "
                                f"satisfy {text!r} ({key})")

    torch = lock.pins.get("torch")
    if torch is None:
        problems.append("torch is not pinned in requirements.lock")
    elif not is_cpu_build_of(torch.version, TORCH_PIN):
        problems.append(f"torch=={torch.version} in requirements.lock: want the CPU build of {TORCH_PIN}")

    for name in sorted(lock.pins):
        if CUDA_ONLY.match(name):
            problems.append(f"{name} in requirements.lock is a CUDA package: lock the CPU torch")

    # Leftovers: every pin must be required by the project or by another pin, and the
    # project may only require what pyproject.toml lists.
    required_by: dict[str, set[str]] = {}
    for pin in lock.pins.values():
        parents = set()
        for entry in pin.via:
            if entry.startswith("-c ") or entry.startswith("-r "):
                continue  # a constraints file (the torch pin) requires nothing by itself
            match = PROJECT_VIA.match(entry)
            if match and canonicalize_name(match["name"]) == project:
                parents.add(project)
                if pin.name not in direct:
                    problems.append(f"{pin.name} is pinned as a requirement of {project} but "
                                    "pyproject.toml no longer lists it")
            else:
                parents.add(canonicalize_name(entry))
        required_by[pin.name] = parents
    reached = {project}
    frontier = True
    while frontier:
        frontier = False
        for name, parents in required_by.items():
            if name not in reached and parents & reached:
                reached.add(name)
                frontier = True
    for name in sorted(set(lock.pins) - reached):
        problems.append(f"{name} in requirements.lock is required by nothing the project "
                        "needs (leftover): run `make lock`")
    return problems


def stamp(lock_text: str, digest: str) -> str:
    """The lock text with its digest header line set (replaced, or added after the header)."""
    lines = [line for line in lock_text.splitlines() if not line.startswith(DIGEST_PREFIX)]
    header = 0
    while header < len(lines) and lines[header].startswith("#"):
        header += 1
    lines.insert(header, DIGEST_PREFIX + digest)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Stamp and check requirements.lock "
                                     "against pyproject.toml.")
    parser.add_argument("command", choices=["stamp", "check", "constraints"],
                        help="stamp: write the pyproject digest into the lock (after "
                             "pip-compile); check: list disagreements, exit 1 if any; "
                             "constraints: print the pins pip-compile must honour")
    parser.add_argument("--pyproject", type=Path, default=PYPROJECT,
                        help="pyproject.toml to read (default: the repository's)")
    parser.add_argument("--lock", type=Path, default=LOCK,
                        help="lock file (default: requirements.lock at the repository root)")
    args = parser.parse_args(argv)
    if args.command == "constraints":
        print(TORCH_PIN)
        return 0
    for path in (args.pyproject, args.lock):
        if not path.is_file():
            print(f"{path}: no such file", file=sys.stderr)
            return 2
    try:
        pyproject = tomllib.loads(args.pyproject.read_text())
    except tomllib.TOMLDecodeError as err:
        print(f"{args.pyproject}: not valid TOML: {err}", file=sys.stderr)
        return 2
    text = args.lock.read_text()
    if args.command == "stamp":
        args.lock.write_text(stamp(text, requirements_digest(requirement_lists(pyproject))))
        return 0
    problems = check(pyproject, parse_lock(text))
    for problem in problems:
        print(f"{args.lock}: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
