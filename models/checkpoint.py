"""Reading generator checkpoints safely and checking that they fit the network.

Supported: ``.bin``/``.pt``/``.pth`` (torch.save of a plain state dict, read with
``weights_only=True`` so that no arbitrary object is ever unpickled),
``.safetensors``, a directory holding ``model.safetensors`` or
``pytorch_model.bin`` (the layout of the public DMD2 release), and EDM's network
pickles (``.pkl``, e.g. DMD2's teacher ``edm-imagenet-64x64-cond-adm.pkl``), whose EMA
network `models.edm_pickle` reads without running any of the file's code.
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

TORCH_SUFFIXES = (".bin", ".pt", ".pth")
SAFETENSORS_SUFFIX = ".safetensors"
EDM_PICKLE_SUFFIX = ".pkl"
SUFFIXES = (*TORCH_SUFFIXES, SAFETENSORS_SUFFIX, EDM_PICKLE_SUFFIX)
# Safetensors first: when both exist it is the one that cannot carry code.
DIRECTORY_FILES = ("model.safetensors", "pytorch_model.bin")
MODEL_PREFIX = "model."
_LIST_FIRST = 5


class CheckpointError(ValueError):
    """A checkpoint file could not be read or is not a plain state dict."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint's keys or shapes do not fit the network."""


@dataclass(frozen=True)
class CheckpointInfo:
    """Where loaded weights came from."""

    path: Path  # the weights file actually read
    name: str  # what to show a user: file name, or "dir/file" for a directory
    sha256: str


def resolve_checkpoint(path: str | Path) -> Path:
    """Return the weights file for ``path`` (a file, or a directory holding one)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    if p.is_dir():
        for name in DIRECTORY_FILES:
            if (p / name).is_file():
                return p / name
        raise FileNotFoundError(
            f"checkpoint directory {p} contains none of: {', '.join(DIRECTORY_FILES)}")
    if p.suffix.lower() not in SUFFIXES:
        raise CheckpointError(f"unsupported checkpoint format {p}: expected one of {', '.join(SUFFIXES)} or a directory")
    return p


def checkpoint_name(path: str | Path) -> str:
    """Short human-readable name of a checkpoint path (no directories above it)."""
    p = Path(path)
    file = resolve_checkpoint(p)
    return f"{p.name}/{file.name}" if p.is_dir() else p.name


def file_sha256(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a checkpoint's weights file, read in chunks (bounded memory)."""
    file = resolve_checkpoint(path)
    digest = hashlib.sha256()
    try:
        with open(file, "rb") as f:
            while chunk := f.read(chunk_size):
                digest.update(chunk)
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {file}: {e.strerror or e}") from e
    return digest.hexdigest()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a plain state dict (name -> tensor) onto the CPU."""
    file = resolve_checkpoint(path)
    try:
        if file.suffix.lower() == SAFETENSORS_SUFFIX:
            from safetensors.torch import load_file

            state = load_file(str(file), device="cpu")
        elif file.suffix.lower() == EDM_PICKLE_SUFFIX:
            from models.edm_pickle import EDMPickleError, read_edm_pickle

            try:
                state = read_edm_pickle(file)
            except EDMPickleError as e:
                raise CheckpointError(f"refusing to load {e}") from e
        else:
            # mmap avoids holding a second copy of a 1.2 GB file while it is copied
            # into the parameters; only the zip format (torch >= 1.6 default) supports it.
            state = torch.load(file, map_location="cpu", weights_only=True,
                               mmap=zipfile.is_zipfile(file))
    except CheckpointError:
        raise
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refusing to load {file}: not a plain tensor state dict, or corrupt "
            f"(weights_only unpickler: {_unpickler_reason(e)})") from e
    except Exception as e:  # corrupt/truncated files surface as many different types
        raise CheckpointError(f"cannot read checkpoint {file}: {type(e).__name__}: {_first_line(e)}") from e

    if not isinstance(state, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError(f"checkpoint {file} is not a plain state dict of named tensors")
    return dict(state)


def fit_state_dict(state: Mapping[str, torch.Tensor], module: nn.Module,
                   source: str | Path = "<state dict>") -> dict[str, torch.Tensor]:
    """Return ``state`` keyed exactly like ``module.state_dict()`` or raise CheckpointMismatchError.

    A state dict of the bare U-Net (keys without the ``model.`` prefix) is accepted
    and prefixed.
    """
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    wants_prefix = any(k.startswith(MODEL_PREFIX) for k in expected)
    if wants_prefix and state and not any(k.startswith(MODEL_PREFIX) for k in state):
        state = {MODEL_PREFIX + k: v for k, v in state.items()}

    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mis_shaped = [(k, expected[k], tuple(v.shape)) for k, v in state.items()
                  if k in expected and tuple(v.shape) != expected[k]]
    if missing or unexpected or mis_shaped:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_listing(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_listing(unexpected)}")
        if mis_shaped:
            shown = [f"{k} (expected {_shape(e)}, got {_shape(g)})" for k, e, g in mis_shaped]
            parts.append(f"{len(mis_shaped)} shape mismatch(es): {_listing(shown)}")
        raise CheckpointMismatchError(f"checkpoint {source} does not fit the network: " + "; ".join(parts))
    return dict(state)


def load_checkpoint(module: nn.Module, path: str | Path) -> CheckpointInfo:
    """Strictly load the checkpoint at ``path`` into ``module``; return its identity."""
    file = resolve_checkpoint(path)
    state = fit_state_dict(read_state_dict(file), module, source=file)
    module.load_state_dict(state, strict=True)
    return CheckpointInfo(path=file, name=checkpoint_name(path), sha256=file_sha256(file))


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_LIST_FIRST])
    return shown + (f", ... (+{len(items) - _LIST_FIRST} more)" if len(items) > _LIST_FIRST else "")


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) if shape else "scalar"


def _unpickler_reason(e: BaseException) -> str:
    # torch's message is a long multi-line advert for weights_only=False, which we
    # must not suggest; keep just the line that says what was found.
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    for line in lines:
        if line.startswith("Unsupported") or "GLOBAL" in line:
            return line
    return lines[0] if lines else type(e).__name__


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
