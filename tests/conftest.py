"""Fixtures shared by the whole suite: small real inputs and a way to run our CLIs."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

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


@pytest.fixture(scope="session")
def cli_demo_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo lake built by our own CLI exactly as `make demo` builds it (once per session).

    Runs the Makefile's `demo-lake-steps` target (ingest npz and jpeg, generate,
    activations, `analysis run`) with this interpreter, so what a user sees after
    `make demo` is what the tests click on.
    """
    root = tmp_path_factory.mktemp("cli_demo")
    lake, data = root / "demo_lake", root / "demo_data"
    command = ["make", "--no-print-directory", "-C", str(REPO), "demo-lake-steps", f"PY={sys.executable}", f"LAKE={lake}", f"DEMO_DATA={data}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Its own process group, so a timeout ends the job make started, not only make.
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=2400)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        raise AssertionError(f"building the demo lake took over 2400 s:\n{output[-4000:]}") from None
    if proc.returncode != 0:
        raise AssertionError(f"building the demo lake failed ({proc.returncode}):\n{output[-6000:]}")
    return lake
