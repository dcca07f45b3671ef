"""Choosing the device and dtype the generator runs in."""

from __future__ import annotations

import torch

from .threads import configure_threads as configure_threads  # the jobs' thread choice, next to their device choice

DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def pick_device(requested: str | None = None) -> torch.device:
    """Device for ``requested`` ("cpu", "cuda", "cuda:N", "mps"; None or "auto": CUDA > MPS > CPU).

    Raises ValueError naming the requested value when that device is unknown or unavailable.
    """
    if requested is None or requested.strip().lower() in ("", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")

    try:
        device = torch.device(requested.strip().lower())
    except RuntimeError:
        raise ValueError(f"unknown device {requested!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {requested!r} requested but CUDA is not available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {requested!r} requested but only "
                             f"{torch.cuda.device_count()} CUDA device(s) are visible")
        return device
    if device.type == "mps":
        if not _mps_available():
            raise ValueError(f"device {requested!r} requested but MPS is not available")
        return device
    raise ValueError(f"unsupported device {requested!r}; use auto, cpu, cuda, cuda:N or mps")


def pick_dtype(name: str | None, device: torch.device) -> torch.dtype:
    """Compute dtype: "fp32" (default) anywhere, "bf16" on CUDA only."""
    key = "fp32" if name is None else name.strip().lower()
    if key not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; use fp32 or bf16")
    dtype = DTYPES[key]
    if dtype == torch.bfloat16 and torch.device(device).type != "cuda":
        raise ValueError(f"dtype {name!r} needs a CUDA device (got {torch.device(device)}); use fp32")
    return dtype
