"""Checkpoint formats, strict matching and safe loading."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from models import CheckpointError, CheckpointMismatchError, load_generator
from models.checkpoint import file_sha256, read_state_dict

SIGMA = torch.full((2,), 80.0)


def forward(G, x, onehot):
    with torch.no_grad():
        return G(x, SIGMA, onehot)


@pytest.fixture(scope="module")
def inputs():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 64, 64, generator=gen) * 80
    onehot = torch.nn.functional.one_hot(torch.tensor([3, 999]), 1000).float()
    return x, onehot


@pytest.fixture(scope="module")
def tiny_state(tiny_generator):
    return {k: v.clone() for k, v in tiny_generator.state_dict().items()}


def write(kind: str, state: dict, root: Path) -> Path:
    if kind == "safetensors":
        path = root / "weights.safetensors"
        save_file(state, str(path))
    elif kind == "dir":
        path = root / "release"
        path.mkdir()
        torch.save(state, path / "pytorch_model.bin")
    else:
        path = root / f"weights.{kind}"
        torch.save(state, path)
    return path


@pytest.mark.parametrize("kind", ["bin", "pt", "pth", "safetensors", "dir"])
def test_formats_load_strictly_and_reproduce_outputs(kind, tmp_path, tiny_generator, tiny_state, inputs):
    path = write(kind, tiny_state, tmp_path)
    loaded = load_generator("tiny", checkpoint=path, device="cpu")
    assert loaded.weights == "checkpoint"
    assert not loaded.module.training
    weights_file = path / "pytorch_model.bin" if kind == "dir" else path
    assert loaded.checkpoint_sha256 == hashlib.sha256(weights_file.read_bytes()).hexdigest()
    assert loaded.checkpoint_name == ("release/pytorch_model.bin" if kind == "dir" else path.name)
    assert loaded.model_id == f"tiny-{loaded.checkpoint_sha256[:12]}"
    assert torch.equal(forward(loaded.module, *inputs), forward(tiny_generator, *inputs))


def test_directory_prefers_safetensors(tmp_path, tiny_state):
    (tmp_path / "d").mkdir()
    save_file(tiny_state, str(tmp_path / "d" / "model.safetensors"))
    torch.save(tiny_state, tmp_path / "d" / "pytorch_model.bin")
    assert load_generator("tiny", checkpoint=tmp_path / "d").checkpoint_name == "d/model.safetensors"


def test_keys_without_model_prefix_are_accepted(tmp_path, tiny_generator, tiny_state, inputs):
    bare = {k.removeprefix("model."): v for k, v in tiny_state.items()}
    path = tmp_path / "unet.pt"
    torch.save(bare, path)
    loaded = load_generator("tiny", checkpoint=path)
    assert torch.equal(forward(loaded.module, *inputs), forward(tiny_generator, *inputs))


def mismatch_message(state: dict, tmp_path: Path) -> str:
    path = tmp_path / "broken.bin"
    torch.save(state, path)
    with pytest.raises(CheckpointMismatchError) as err:
        load_generator("tiny", checkpoint=path)
    message = str(err.value)
    assert isinstance(err.value, ValueError)
    assert "\n" not in message
    assert "broken.bin" in message
    return message


def test_missing_key(tmp_path, tiny_state):
    state = dict(tiny_state)
    del state["model.enc.16x16_block1.qkv.weight"]
    message = mismatch_message(state, tmp_path)
    assert "1 missing key(s): model.enc.16x16_block1.qkv.weight" in message
    assert "unexpected" not in message


def test_unexpected_key(tmp_path, tiny_state):
    state = dict(tiny_state, **{"model.extra.weight": torch.zeros(3)})
    message = mismatch_message(state, tmp_path)
    assert "1 unexpected key(s): model.extra.weight" in message
    assert "missing" not in message


def test_wrong_shape(tmp_path, tiny_state):
    state = dict(tiny_state)
    state["model.out_conv.weight"] = torch.zeros(3, 32, 1, 1)
    message = mismatch_message(state, tmp_path)
    assert "model.out_conv.weight (expected 3x32x3x3, got 3x32x1x1)" in message


def test_full_preset_checkpoint_into_tiny_lists_only_the_first_few(tmp_path, tiny_state):
    state = {k: torch.zeros(v.shape[0] + 1, *v.shape[1:]) for k, v in tiny_state.items()}
    message = mismatch_message(state, tmp_path)
    assert f"{len(tiny_state)} shape mismatch(es)" in message
    assert "more)" in message


class Payload:
    """An object that would leave a trace if it were ever unpickled."""

    marker: Path | None = None

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_arbitrary_objects_are_never_unpickled(tmp_path):
    marker = tmp_path / "executed"
    payload = Payload()
    payload.marker = marker
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"model.out_conv.weight": payload}, f, protocol=2)
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_generator("tiny", checkpoint=path)
    assert not marker.exists()


def test_object_saved_with_torch_save_is_rejected(tmp_path, tiny_state):
    path = tmp_path / "with_object.pt"
    torch.save({**tiny_state, "extra": Payload()}, path)
    with pytest.raises(CheckpointError, match="with_object.pt"):
        read_state_dict(path)


def test_non_tensor_values_are_rejected(tmp_path):
    path = tmp_path / "nested.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "epoch": 3}, path)
    with pytest.raises(CheckpointError, match="not a plain state dict"):
        read_state_dict(path)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.bin"):
        load_generator("tiny", checkpoint=tmp_path / "nowhere.bin")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(FileNotFoundError, match="empty_dir"):
        load_generator("tiny", checkpoint=tmp_path / "empty_dir")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        load_generator("tiny", checkpoint=tmp_path / "junk.safetensors")
    (tmp_path / "junk.bin").write_bytes(b"\x80\x02garbage")
    with pytest.raises(CheckpointError, match="junk.bin"):
        load_generator("tiny", checkpoint=tmp_path / "junk.bin")
    (tmp_path / "weights.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="unsupported checkpoint format"):
        load_generator("tiny", checkpoint=tmp_path / "weights.ckpt")


def test_sha256_is_streamed_and_exact(tmp_path):
    data = bytes(range(256)) * 10_000  # several chunks at a small chunk size
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert file_sha256(path, chunk_size=4096) == hashlib.sha256(data).hexdigest()
