"""EDM's network pickles (the teacher's format) load exactly, and nothing in such a file ever runs."""
from __future__ import annotations

import copy
import io
import os
import pickle
import sys
import types
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn

from models import CheckpointError, build_generator, load_generator
from tests.conftest import run_cli

CONTAINERS = (nn.ModuleDict, nn.ModuleList, nn.Sequential)


def persistence_module(marker: Path) -> types.ModuleType:
    """A stand-in for EDM's ``torch_utils.persistence``: what the file names to rebuild each network class.

    Its ``module_src`` (what EDM's loader executes) would create `marker`.
    """
    module = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # the name EDM's pickles call; never called by our loader
        raise AssertionError("the loader ran the file's reconstruct function")

    _reconstruct_persistent_obj.__module__ = module.__name__
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    module._reconstruct_persistent_obj = _reconstruct_persistent_obj
    module.source = f"open({str(marker)!r}, 'w').write('ran')\n"
    return module


class Persistent:
    """Pickles as EDM's persistent classes do: the reconstruct function, called with a meta dict holding source code."""

    def __init__(self, persistence: types.ModuleType, module: nn.Module, state: dict) -> None:
        self.persistence = persistence
        self.meta = dict(type="class", version=6, module_src=persistence.source, class_name=type(module).__name__,
                         init_args=(), init_kwargs={"note": "EDM keeps the constructor arguments"}, state=state)

    def __reduce__(self):
        return self.persistence._reconstruct_persistent_obj, (self.meta,)


def as_edm(module: nn.Module, persistence: types.ModuleType):
    """`module` as EDM's pickle holds it: our network classes persistent, torch's containers plain torch objects."""
    children = OrderedDict((name, None if child is None else as_edm(child, persistence)) for name, child in module._modules.items())
    if isinstance(module, CONTAINERS):
        plain = copy.copy(module)
        plain.__dict__["_modules"] = children
        return plain
    state = dict(module.__dict__)
    state["_modules"] = children
    return Persistent(persistence, module, state)


def write_edm_pickle(path: Path, network: nn.Module, marker: Path) -> Path:
    """A snapshot with EDM's structure: dict(ema=net, loss_fn=..., augment_pipe=None, dataset_kwargs=...), protocol 4."""
    persistence = persistence_module(marker)
    sys.modules["torch_utils"] = types.ModuleType("torch_utils")
    sys.modules["torch_utils.persistence"] = persistence
    try:
        snapshot = dict(ema=as_edm(network, persistence), loss_fn=Persistent(persistence, nn.Identity(), {"_modules": {}}),
                        augment_pipe=None, dataset_kwargs=dict(class_name="training.dataset.ImageFolderDataset"))
        path.write_bytes(pickle.dumps(snapshot, protocol=4))
    finally:  # the loader must not find EDM's code anywhere
        del sys.modules["torch_utils.persistence"], sys.modules["torch_utils"]
    return path


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    root = tmp_path_factory.mktemp("edm")
    network = build_generator("micro", seed=11)
    marker = root / "ran"
    return write_edm_pickle(root / "edm-imagenet-64x64-cond-adm.pkl", network, marker), network, marker


def test_the_ema_network_loads_exactly_without_running_the_files_code(teacher):
    path, network, marker = teacher
    assert b"torch_utils.persistence" in path.read_bytes() and b"module_src" in path.read_bytes()
    loaded = load_generator("micro", checkpoint=path, device="cpu")
    expected, got = network.state_dict(), loaded.module.state_dict()
    assert list(got) == list(expected)
    for name, value in expected.items():
        assert torch.equal(got[name], value), name
    assert any(".resample_filter" in name for name in got)  # buffers, not only parameters
    assert loaded.weights == "checkpoint" and loaded.checkpoint_name == path.name
    assert not marker.exists()
    assert "torch_utils" not in sys.modules


def test_the_network_must_fit_the_preset(teacher):
    path, _, _ = teacher
    with pytest.raises(CheckpointError, match="does not fit the network"):
        load_generator("tiny", checkpoint=path, device="cpu")


def code_running_pickle(path: Path, marker: Path, inside_a_storage: bool) -> Path:
    """A file that runs `touch marker` when unpickled the usual way: at the top, or inside a tensor's storage bytes."""
    command = (os.system, (f"touch {marker}",))

    class Payload:
        def __reduce__(self):
            return command

    if not inside_a_storage:
        path.write_bytes(pickle.dumps({"ema": Payload()}, protocol=4))
        return path

    class Storage:  # torch pickles a storage as torch.storage._load_from_bytes(<torch.save bytes>)
        def __reduce__(self):
            buffer = io.BytesIO()
            pickle.dump(Payload(), buffer, protocol=2)
            return torch.storage._load_from_bytes, (buffer.getvalue(),)

    class Tensor:
        def __reduce__(self):
            return torch._utils._rebuild_tensor_v2, (Storage(), 0, (1,), (1,), False, OrderedDict())

    path.write_bytes(pickle.dumps({"ema": Tensor()}, protocol=4))
    return path


@pytest.mark.parametrize("inside_a_storage", [False, True], ids=["top-level", "storage-bytes"])
def test_a_pickle_that_would_run_a_command_runs_nothing_and_is_refused_in_one_line(tmp_path, inside_a_storage):
    marker = tmp_path / "pwned"
    path = code_running_pickle(tmp_path / "evil.pkl", marker, inside_a_storage)
    with pytest.raises(CheckpointError, match=r"^refusing to load .*evil\.pkl: ") as raised:
        load_generator("micro", checkpoint=path, device="cpu")
    assert "\n" not in str(raised.value)
    assert not marker.exists()


def test_the_cli_refuses_it_in_one_line_and_leaves_no_lake(tmp_path):
    marker = tmp_path / "pwned"
    path = code_running_pickle(tmp_path / "evil.pkl", marker, inside_a_storage=False)
    result = run_cli("ingest", "generate", "--lake", str(tmp_path / "lake"), "--preset", "micro", "--checkpoint", str(path),
                     "--num-samples", "2", "--no-progress")
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "evil.pkl" in line and "Traceback" not in result.stderr
    assert not marker.exists() and not (tmp_path / "lake").exists()
