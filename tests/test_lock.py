"""requirements.lock agrees with pyproject.toml (fast, no network).

The first tests check the repository's own files; the others feed .ci/lockfile.py
edited copies to show that each kind of disagreement is caught.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / ".ci" / "lockfile.py"
PYPROJECT_TEXT = (ROOT / "pyproject.toml").read_text()
LOCK_TEXT = (ROOT / "requirements.lock").read_text()

_spec = importlib.util.spec_from_file_location("lockfile", SCRIPT)
lockfile = importlib.util.module_from_spec(_spec)
sys.modules["lockfile"] = lockfile  # dataclasses look their module up while decorating
_spec.loader.exec_module(lockfile)


def problems(pyproject_text: str = PYPROJECT_TEXT, lock_text: str = LOCK_TEXT) -> list[str]:
    return lockfile.check(tomllib.loads(pyproject_text), lockfile.parse_lock(lock_text))


def test_repository_lock_agrees_with_pyproject():
    assert problems() == []


def test_every_requirement_is_pinned_within_its_specifier():
    # Independent of lockfile.check: read both files directly.
    pins = {}
    for line in LOCK_TEXT.splitlines():
        if line and not line.startswith((" ", "#")):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = Version(version)
    project = tomllib.loads(PYPROJECT_TEXT)["project"]
    lists = [project["dependencies"], *project["optional-dependencies"].values()]
    assert {"test", "examples"} <= set(project["optional-dependencies"])
    for reqs in lists:
        for text in reqs:
            req = Requirement(text)
            assert req.specifier.contains(pins[canonicalize_name(req.name)], prereleases=True), text


def test_torch_is_the_cpu_build_of_2_13_0_and_nothing_cuda_is_locked():
    lock = lockfile.parse_lock(LOCK_TEXT)
    torch = Version(lock.pins["torch"].version)
    assert torch.public == "2.13.0"
    assert torch.local in (None, "cpu")
    assert not [name for name in lock.pins if name.startswith("nvidia-") or name == "triton"]


def test_notebook_packages_are_locked():
    lock = lockfile.parse_lock(LOCK_TEXT)
    for name in ("matplotlib", "nbclient", "nbformat", "ipykernel", "xarray", "zarr"):
        assert name in lock.pins


def test_digest_ignores_order_and_spacing_but_not_content():
    a = {"dependencies": ["numpy>=2.0", "zarr >=3.1, <3.2"], "extra:test": ["pytest>=8"]}
    b = {"extra:test": ["pytest >= 8"], "dependencies": ["zarr<3.2,>=3.1", "numpy>=2.0"]}
    c = {"dependencies": ["numpy>=2.1", "zarr>=3.1,<3.2"], "extra:test": ["pytest>=8"]}
    assert lockfile.requirements_digest(a) == lockfile.requirements_digest(b)
    assert lockfile.requirements_digest(a) != lockfile.requirements_digest(c)


def test_an_edited_requirement_list_makes_the_lock_stale():
    edited = PYPROJECT_TEXT.replace('"tqdm>=4.66",', '"tqdm>=4.66",\n    "h5py>=3",')
    assert edited != PYPROJECT_TEXT
    found = problems(pyproject_text=edited)
    assert any("compiled from other pyproject.toml" in p for p in found)
    assert any(p.startswith("h5py (dependencies) is not pinned") for p in found)


def test_a_pin_outside_the_specifier_is_reported():
    edited = PYPROJECT_TEXT.replace('"pandas>=2.2",', '"pandas>=2.2,<3",')
    found = problems(pyproject_text=edited)
    assert any("pandas==" in p and "does not satisfy 'pandas>=2.2,<3'" in p for p in found)


def test_a_dropped_direct_dependency_leaves_leftovers():
    # Drop psutil from pyproject and re-stamp: the digest matches, yet psutil is still pinned
    # as a requirement of the project.
    edited = PYPROJECT_TEXT.replace('    "psutil>=6.0",\n', "")
    assert edited != PYPROJECT_TEXT
    restamped = lockfile.stamp(LOCK_TEXT, lockfile.requirements_digest(
        lockfile.requirement_lists(tomllib.loads(edited))))
    found = problems(pyproject_text=edited, lock_text=restamped)
    assert found == ["psutil is pinned as a requirement of dmd2-visualizer but pyproject.toml "
                     "no longer lists it"]


def test_an_orphan_pin_is_a_leftover():
    orphan = LOCK_TEXT + "leftpad==1.0\n    # via some-removed-package\n"
    assert problems(lock_text=orphan) == [
        "leftpad in requirements.lock is required by nothing the project needs (leftover): "
        "run `make lock`"]


def test_cuda_packages_and_a_cuda_torch_are_reported():
    cuda = LOCK_TEXT.replace("torch==2.13.0+cpu", "torch==2.13.0+cu128") + (
        "nvidia-cublas-cu12==12.8.4.1\n    # via torch\n")
    found = problems(lock_text=cuda)
    assert any(p.startswith("torch==2.13.0+cu128 in requirements.lock: want the CPU build") for p in found)
    assert any(p.startswith("nvidia-cublas-cu12 in requirements.lock is a CUDA package") for p in found)
    other = problems(lock_text=LOCK_TEXT.replace("torch==2.13.0+cpu", "torch==2.14.0+cpu"))
    assert any("torch==2.14.0+cpu" in p for p in other)


def test_a_loose_or_missing_pin_and_a_missing_header_are_reported():
    loose = LOCK_TEXT.replace("zarr==3.1.6", "zarr>=3.1")
    assert any("not an exact `name==version` pin: zarr>=3.1" in p for p in problems(lock_text=loose))
    no_header = "\n".join(line for line in LOCK_TEXT.splitlines()
                          if not line.startswith(lockfile.DIGEST_PREFIX))
    assert problems(lock_text=no_header) == [
        "requirements.lock has no pyproject digest header: run `make lock`"]


def test_stamp_replaces_the_digest_and_keeps_the_pins():
    restamped = lockfile.stamp(LOCK_TEXT, "0" * 64)
    assert restamped.count(lockfile.DIGEST_PREFIX) == 1
    assert lockfile.parse_lock(restamped).digest == "0" * 64
    assert lockfile.parse_lock(restamped).pins == lockfile.parse_lock(LOCK_TEXT).pins


@pytest.mark.parametrize("tamper", [False, True])
def test_check_command_exit_status_and_one_line_errors(tmp_path, tamper):
    lock = tmp_path / "requirements.lock"
    lock.write_text(LOCK_TEXT.replace("zarr==3.1.6", "zarr==3.2.0") if tamper else LOCK_TEXT)
    done = subprocess.run([sys.executable, str(SCRIPT), "check", "--lock", str(lock)],
                          capture_output=True, text=True)
    if tamper:
        assert done.returncode == 1
        assert done.stderr.strip().splitlines() == [
            f"{lock}: zarr==3.2.0 in requirements.lock does not satisfy 'zarr>=3.1,<3.2' "
            "(dependencies)"]
    else:
        assert (done.returncode, done.stderr) == (0, "")


def test_check_command_names_a_missing_file(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "check", "--lock",
                           str(tmp_path / "nope.lock")], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == f"{tmp_path / 'nope.lock'}: no such file"


@pytest.mark.parametrize(("version", "ok"), [("2.13.0+cpu", True), ("2.13.0", True),
                                             ("2.13.0+cu128", False), ("2.13.1+cpu", False),
                                             ("not-a-version", False)])
def test_torch_pin_accepts_only_the_cpu_build_of_2_13_0(version, ok):
    assert lockfile.is_cpu_build_of(version, "torch==2.13.0") is ok
