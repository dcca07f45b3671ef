"""EDM's network pickles (NVlabs ``edm-*.pkl``, e.g. DMD2's teacher), read without running any of their code.

EDM saves ``dict(ema=net, ...)`` with plain pickle, and every network class in it reduces to
``torch_utils.persistence._reconstruct_persistent_obj(meta)``, where ``meta`` carries the
defining module's source text: EDM's own loader executes it. ``torch.load(weights_only=True)``
refuses these files outright (their protocol), so this module has its own unpickler:

- It calls only what rebuilds tensors: ``torch._utils._rebuild_tensor_v2`` and
  ``_rebuild_parameter``, ``OrderedDict``, ``set``, and, for ``torch.storage._load_from_bytes``
  (which runs ``torch.load(weights_only=False)`` on bytes from the file), our own storage
  reader with ``weights_only=True``.
- Every other class or function the file names becomes an inert record of its name, its
  arguments and its state; nothing is imported, called or executed.

The network's parameters and persistent buffers are then read off those records (the
``_parameters``, ``_buffers`` and ``_modules`` of each module's state, as ``state_dict`` would)
into a plain state dict that `models.checkpoint` fits strictly to our network.
"""
from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

NETWORK_KEY = "ema"  # EDM's snapshot dict: the EMA network is the one it samples with


class EDMPickleError(ValueError):
    """The file is not an EDM network pickle we can read safely."""


class InertRecord:
    """What the file asked for by the name ``module.qualname``, called with `args`, given `state`: never run."""

    qualname = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs, self.state = args, kwargs, None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<inert {self.qualname}>"


def _read_storage(data: bytes) -> Any:
    """A storage from the bytes torch pickles it as, read with torch's weights-only unpickler."""
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


_CALLABLE = {
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _read_storage,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        allowed = _CALLABLE.get((module, name))
        if allowed is not None:
            return allowed
        return type(name, (InertRecord,), {"qualname": f"{module}.{name}"})

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError(f"persistent id {pid!r}: not a plain pickle (a torch.save zip file?)")


def read_edm_pickle(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict (name -> tensor) of the EMA network in EDM pickle `path`; EDMPickleError otherwise."""
    try:
        with open(path, "rb") as f:
            root = _RestrictedUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, RuntimeError, TypeError, ValueError, AttributeError) as e:
        raise EDMPickleError(f"{path}: not a readable EDM network pickle ({type(e).__name__}: {_first_line(e)})") from e
    if not isinstance(root, dict) or NETWORK_KEY not in root:
        raise EDMPickleError(f"{path}: not an EDM network snapshot (expected a dict with an {NETWORK_KEY!r} network)")
    state: dict[str, torch.Tensor] = {}
    _collect(root[NETWORK_KEY], "", state, path)
    if not state:
        raise EDMPickleError(f"{path}: its {NETWORK_KEY!r} network holds no tensors")
    return state


def module_state(node: Any) -> dict[str, Any] | None:
    """A module record's ``__dict__``: EDM's persistent classes keep it in ``meta['state']``, torch's own in their state."""
    if not isinstance(node, InertRecord):
        return None
    if node.qualname.endswith("._reconstruct_persistent_obj") and node.args and isinstance(node.args[0], dict):
        state = node.args[0].get("state")
    else:
        state = node.state
    return state if isinstance(state, dict) and "_modules" in state else None


def _collect(node: Any, prefix: str, out: dict[str, torch.Tensor], path: str | Path) -> None:
    """Parameters, then persistent buffers, then submodules, as ``nn.Module.state_dict`` orders them."""
    state = module_state(node)
    if state is None:
        raise EDMPickleError(f"{path}: {prefix.rstrip('.') or NETWORK_KEY}: not a network module ({node!r})")
    skipped = state.get("_non_persistent_buffers_set") or set()
    for table in ("_parameters", "_buffers"):
        for name, value in (state.get(table) or {}).items():
            if value is None or (table == "_buffers" and name in skipped):
                continue
            if not isinstance(value, torch.Tensor):
                raise EDMPickleError(f"{path}: {prefix}{name} is not a tensor")
            out[prefix + name] = value.detach()
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            _collect(child, f"{prefix}{name}.", out, path)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
