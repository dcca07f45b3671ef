"""Fixtures shared by the whole suite: small real inputs and a way to run our CLIs."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.demo_build import DemoLakeBuild, shared_root

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, check: bool = False, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `python -m <args>` in a real subprocess from the repo root."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    result = subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, env=full_env, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def tree_digest(path: Path) -> str:
    """A hash of every file (name and bytes) under `path`, to prove a lake unchanged."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.name != ".dmd2viz.lock"):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def photo_like_images(n: int, seed: int) -> np.ndarray:
    """Smooth, structured 64x64 RGB images (gradients plus blobs), keyed by (seed, i)."""
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32) / 63.0
    images = np.empty((n, 64, 64, 3), dtype=np.uint8)
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        cx, cy, r = rng.uniform(0.2, 0.8, 3)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (0.05 + 0.1 * r))
        for c in range(3):
            a, b, d = rng.uniform(-1, 1, 3)
            images[i, :, :, c] = np.clip(127 + 60 * (a * xx + b * yy) + 80 * d * blob + rng.normal(0, 4, (64, 64)), 0, 255)
    return images


def write_imagenet64_npz(path: Path, images: np.ndarray, labels: np.ndarray, compressed: bool = True) -> None:
    """An NPZ in the ImageNet64 layout: channel-planar rows, 1-indexed labels."""
    data = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    save = np.savez_compressed if compressed else np.savez
    save(path, data=data, labels=np.asarray(labels, dtype=np.int64), mean=data.mean(axis=0))


@pytest.fixture
def npz_factory(tmp_path: Path):
    """make(name, n, seed) -> (path, images HWC, labels 1..1000)."""

    def make(name: str, n: int, seed: int = 0, labels: np.ndarray | None = None, compressed: bool = True):
        images = photo_like_images(n, seed)
        if labels is None:
            labels = np.random.default_rng([seed, 10**6]).integers(1, 1001, n)
        path = tmp_path / name
        write_imagenet64_npz(path, images, labels, compressed)
        return path, images, np.asarray(labels)

    return make


DEMO_LAKE_FIXTURE = "cli_demo_lake"


def _demo_lake_build(config: pytest.Config) -> DemoLakeBuild:
    """The run's one demo build (tests/demo_build.py), shared by pytest-xdist's workers."""
    factory: pytest.TempPathFactory = config._tmp_path_factory  # type: ignore[attr-defined]
    return DemoLakeBuild(shared_root(factory.getbasetemp(), hasattr(config, "workerinput")))


@pytest.hookimpl(trylast=True)  # after -k, -m and --deselect: no build for a session that deselected its users
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the modules that need the CLI-built demo lake last, and start building it now.

    Whole modules move (their order kept), so module-scoped servers and lakes are still set
    up once. The build then runs beside every other test instead of before the first that
    needs it: on 2 cores most tests leave a core idle (subprocess start-up, servers, browsers).
    """
    def module(item: pytest.Item) -> str:
        return item.nodeid.split("::")[0]

    modules = {module(item) for item in items if DEMO_LAKE_FIXTURE in getattr(item, "fixturenames", ())}
    if not modules:
        return
    items[:] = [item for item in items if module(item) not in modules] + [item for item in items if module(item) in modules]
    if not config.option.collectonly:
        _demo_lake_build(config).start_unless_started()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The run is over (under xdist: its controller's session, after every worker's): end a build still running."""
    if not hasattr(session.config, "workerinput"):
        _demo_lake_build(session.config).stop()


@pytest.fixture(scope="session")
def cli_demo_lake(pytestconfig: pytest.Config) -> Path:
    """The demo lake built by our own CLI exactly as `make demo` builds it (once per session).

    Runs the Makefile's `demo-lake-steps` target (ingest npz and jpeg, generate,
    activations, `analysis run`, `analysis trajectory`) with this interpreter, so what a
    user sees after `make demo` is what the tests click on. The build started at collection
    (`pytest_collection_modifyitems`); this waits for it.
    """
    return _demo_lake_build(pytestconfig).wait()


LEGACY_LAKE = REPO / "tests" / "fixtures" / "legacy_lake_8dd3ecd.tar.gz"


@pytest.fixture(scope="session")
def legacy_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the small lake made by main at 8dd3ecd (tests/fixtures/README.md), to prove old lakes still work.

    Session-scoped: its users only read it, reuse its analyses or resume its jobs (which add no row).
    """
    import tarfile

    root = tmp_path_factory.mktemp("legacy")
    with tarfile.open(LEGACY_LAKE) as archive:
        archive.extractall(root, filter="data")
    return root / "legacy_lake"
