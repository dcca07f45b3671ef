"""One-step reconstructions of probes: what the denoiser makes of a real image at each noise level.

A probe of a lake sample at noise level sigma feeds the network ``noisy = x0 + sigma * eps``
(``x0 = image / 127.5 - 1`` from the channel-last uint8 image, ``eps`` from
``models.probe_noise(noise_seed, sample_id)``, the same eps at every sigma) conditioned on
the sample's own class. Its output ``x0_hat = D(noisy, sigma, onehot(class))`` is the
one-step reconstruction. Both are stored as uint8 HWC images (``models.to_uint8_nhwc``;
the noisy input clipped to [-1, 1] first) in the ``reconstructions`` table
(`lake.layout.reconstructions_spec`):

- ``ingest activations --reconstructions`` stores them for every (sample, sigma) it probes,
  from the very pass whose activations it stores (`denoise_block`);
- `reconstruct_sample` computes them on demand for one sample with the model and noise
  seed of the lake's probes, and gives exactly the stored bits where they exist: it runs
  the sample's whole compute block (the samples-table rows ``kB .. kB+B-1`` the job ran
  together, ``B`` the group's ``compute_block``), because a sample's low bits depend on
  which samples share its forward call. Same device type and thread count as the job, and
  the same block as then (a block that was the partly filled last one of a samples table
  that grew afterwards is computed at its new size).

torch is imported only inside the functions that run the network, so the explorer can
import this module for free.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lake import Lake, open_lake
from lake.layout import RECONSTRUCTIONS_GROUP, SAMPLES_GROUP, activations_group, reconstructions_spec
from lake.schema import LAYER_ALIASES

from .errors import InputError

if TYPE_CHECKING:
    from lake import InputFile, LakeWriter

    from .activation_store import ActivationTable
    from .probe import BlockOutput, ModelIdentity, ModelSpec


@dataclass(frozen=True)
class Reconstruction:
    """One sample's probes: the noisy input and the one-step reconstruction at each sigma."""

    sample_id: str
    sigmas: list[float]  # float32-exact, in the order asked for (stored: storage order)
    noisy: np.ndarray  # (S, 64, 64, 3) uint8: x0 + sigma * eps, clipped to [-1, 1]
    x0_hat: np.ndarray  # (S, 64, 64, 3) uint8: D(x0 + sigma * eps, sigma, onehot(class))


# --------------------------------------------------------------------------- the network side


@dataclass
class DenoisedBlock:
    """A full denoiser pass over one compute block at one sigma, still on the network's device."""

    output: BlockOutput  # the captured layers' means (and spatial maps when asked)
    noisy: Any  # (n, 64, 64, 3) uint8 tensor: the pass's input, clipped
    x0_hat: Any  # (n, 64, 64, 3) uint8 tensor: the pass's output


def denoise_block(module: Any, x0: Any, eps: Any, sigma: float, class_ids: Any, layers: Sequence[str] = (),
                  keep_spatial: bool = False) -> DenoisedBlock:
    """D(x0 + sigma*eps, sigma, onehot(class)) over a whole block, capturing `layers` on the way.

    The same computation as `ingest.probe.probe_block` but run to the end (no
    stop_early), so the captured values are bit-identical to a probe's and the output
    image comes with them. `x0` and `eps` are (n, 3, 64, 64) float32 on the module's device.
    """
    from contextlib import AbstractContextManager, nullcontext

    import torch
    from torch.nn import functional as F

    import models

    from .probe import BlockOutput, _reduce

    n = x0.shape[0]
    labels = F.one_hot(class_ids.to(x0.device), module.label_dim).to(torch.float32)
    sigmas = torch.full((n,), float(sigma), dtype=torch.float32, device=x0.device)
    captured: AbstractContextManager[dict[str, Any]] = models.capture(module, layers) if layers else nullcontext({})
    with torch.inference_mode(), captured as acts:
        noisy = x0 + float(sigma) * eps  # exactly the probe's input (probe_block spells it the same)
        x0_hat = module(noisy, sigmas, labels)
        means, spatial = _reduce(acts, layers, keep_spatial)
        return DenoisedBlock(output=BlockOutput(means=means, spatial=spatial),
                             noisy=models.to_uint8_nhwc(noisy.clamp(-1, 1)), x0_hat=models.to_uint8_nhwc(x0_hat))


def block_inputs(images: np.ndarray, sample_ids: Sequence[str], noise_seed: int, device: Any) -> tuple[Any, Any]:
    """x0 (n, 3, 64, 64) from uint8 HWC images and each sample's probe noise eps, on `device`."""
    import torch

    import models

    x0 = torch.from_numpy(images).permute(0, 3, 1, 2).to(device, torch.float32) / 127.5 - 1
    eps = torch.stack([models.probe_noise(noise_seed, s, x0.shape[1:]) for s in sample_ids]).to(device)
    return x0, eps


# --------------------------------------------------------------------------- the table


def open_reconstruction_table(writer: LakeWriter, sigmas: Sequence[float], attrs: dict[str, Any]) -> ActivationTable:
    """Open (creating if needed) `reconstructions`, with every requested sigma on its sigma axis.

    Like `ingest.activation_store.open_activation_table`: new sigmas extend the axis
    (cells unprobed until written); a group made by another model or noise seed is refused
    with a one-line error.
    """
    from .activation_store import ActivationTable, check_identity

    wanted = [float(np.float32(s)) for s in sigmas]
    found = writer.attrs(RECONSTRUCTIONS_GROUP)
    if found is not None:
        check_identity(RECONSTRUCTIONS_GROUP, found, {"model_id": attrs["model_id"], "noise_seed": attrs["noise_seed"]},
                       "use the same model and --noise-seed, or another lake")
    table = writer.table(reconstructions_spec(wanted, attrs))
    axis = [float(v) for v in np.asarray(table.column("sigma")[:], dtype=np.float32)]
    missing = [s for s in wanted if s not in axis]
    if missing:
        table.extend_axis("sigma", missing)
    return ActivationTable(table, axis + missing)


def checkpoint_inputs(spec: ModelSpec, identity: ModelIdentity) -> list[InputFile]:
    """The checkpoint file as a provenance input (path, size, sha256), so a later reader can find it again."""
    from lake import InputFile

    if not spec.checkpoint:
        return []
    from models.checkpoint import resolve_checkpoint

    path = resolve_checkpoint(spec.checkpoint)
    return [InputFile(path=str(path.resolve()), size=path.stat().st_size, sha256=identity.checkpoint_sha256 or "")]


def stored_reconstruction(lake: Lake | str | os.PathLike[str], sample_id: str) -> Reconstruction | None:
    """The stored reconstructions of `sample_id` at every sigma probed (None when it has none)."""
    lake = _open(lake)
    if not lake.has(RECONSTRUCTIONS_GROUP):
        return None
    rows = np.flatnonzero(lake.column(RECONSTRUCTIONS_GROUP, "sample_id") == sample_id)
    if not len(rows):
        return None
    row = int(rows[0])
    probed = np.asarray(lake.column(RECONSTRUCTIONS_GROUP, "probed", [row])[0], dtype=bool)
    if not probed.any():
        return None
    axis = np.asarray(lake.column(RECONSTRUCTIONS_GROUP, "sigma"), dtype=np.float32)
    noisy = lake.column(RECONSTRUCTIONS_GROUP, "noisy", [row])[0]
    x0_hat = lake.column(RECONSTRUCTIONS_GROUP, "x0_hat", [row])[0]
    return Reconstruction(sample_id=sample_id, sigmas=[float(s) for s in axis[probed]], noisy=noisy[probed],
                          x0_hat=x0_hat[probed])


# --------------------------------------------------------------------------- on demand


@dataclass(frozen=True)
class ProbeSetup:
    """How a lake's probes were made, as its `reconstructions` or `activations/<layer>` attributes record it."""

    group: str
    model_id: str
    preset: str
    weights: str  # "random" or "checkpoint"
    checkpoint: str  # the checkpoint's short name ("" for random weights)
    checkpoint_sha256: str
    noise_seed: int
    compute_block: int
    dtype: str
    sigmas: list[float]  # the group's sigma axis


@dataclass(frozen=True)
class ProbeModel:
    """The network of a lake's probes, loaded: reuse it across `reconstruct_sample` calls."""

    setup: ProbeSetup
    module: Any
    device: Any


def probe_setup(lake: Lake | str | os.PathLike[str], layer: str | None = None) -> ProbeSetup:
    """The recorded probe set-up: `activations/<layer>` when given (an alias like `mid` is fine), else
    `reconstructions`, else the first layer's."""
    lake = _open(lake)
    if layer is not None:
        group = activations_group(LAYER_ALIASES.get(layer, layer))
        if not lake.has(group):
            raise InputError(f"{lake.path}: no {group}; it has {', '.join(lake.activation_layers()) or 'no probes'}")
    elif lake.has(RECONSTRUCTIONS_GROUP):
        group = RECONSTRUCTIONS_GROUP
    elif lake.activation_layers():
        group = activations_group(lake.activation_layers()[0])
    else:
        raise InputError(f"{lake.path}: no probes yet (no activations/<layer> or reconstructions); "
                         "run `python -m ingest activations` first")
    attrs = lake.attrs(group)
    try:
        return ProbeSetup(group=group, model_id=str(attrs["model_id"]), preset=str(attrs["preset"]),
                          weights=str(attrs["weights"]), checkpoint=str(attrs.get("checkpoint") or ""),
                          checkpoint_sha256=str(attrs.get("checkpoint_sha256") or ""),
                          noise_seed=int(attrs["noise_seed"]), compute_block=int(attrs["compute_block"]),
                          dtype=str(attrs.get("dtype") or _probe_dtype(lake, attrs)),
                          sigmas=[float(v) for v in np.asarray(lake.column(group, "sigma"), dtype=np.float32)])
    except KeyError as exc:
        raise InputError(f"{lake.path}/{group}: its attributes lack {exc.args[0]!r}; probe again with this version") from None


def _probe_dtype(lake: Lake, attrs: dict[str, Any]) -> str:
    """The compute dtype of the latest `ingest activations` run of this model and noise seed (activation
    groups do not record it; their provenance does), fp32 when none says."""
    for record in reversed(lake.provenance()):
        parameters = record.get("parameters") or {}
        if (record.get("job") == "ingest activations" and parameters.get("model_id") == attrs.get("model_id")
                and parameters.get("noise_seed") == attrs.get("noise_seed") and parameters.get("dtype")):
            return str(parameters["dtype"])
    return "fp32"


def find_checkpoint(lake: Lake | str | os.PathLike[str], setup: ProbeSetup) -> list[str]:
    """Paths the lake's provenance records give for the checkpoint with the probes' sha256, newest first."""
    lake = _open(lake)
    paths: list[str] = []
    for record in reversed(lake.provenance()):
        for item in record.get("inputs") or []:
            if item.get("sha256") == setup.checkpoint_sha256 and item.get("path") and item["path"] not in paths:
                paths.append(str(item["path"]))
    return paths


def load_probe_model(lake: Lake | str | os.PathLike[str], *, layer: str | None = None, checkpoint: str | None = None,
                     device: str = "auto", dtype: str | None = None) -> ProbeModel:
    """Load the network that made the lake's probes (`probe_setup`), checked against its recorded identity.

    Random weights are rebuilt from the preset. A checkpoint is `checkpoint` when given,
    else the file the provenance records name; either must have the recorded sha256, or a
    one-line InputError says which file to pass. `dtype` defaults to the recorded one.
    """
    from .probe import ModelSpec, load_model

    lake = _open(lake)
    setup = probe_setup(lake, layer)
    wanted = f"the checkpoint with sha256 {setup.checkpoint_sha256[:12]}... ({setup.checkpoint})"
    if setup.weights != "checkpoint":
        candidates: list[str | None] = [None]
    elif checkpoint is not None:
        candidates = [checkpoint]
    else:
        candidates = [p for p in find_checkpoint(lake, setup) if os.path.exists(p)]
        if not candidates:
            raise InputError(f"{lake.path}: its probes ran {wanted}, which no provenance record locates on this "
                             "machine; pass checkpoint=PATH (--checkpoint) to that file")
    for path in candidates:
        loaded, identity = load_model(ModelSpec(preset=setup.preset, checkpoint=path, device=device,
                                                dtype=dtype or setup.dtype))
        if identity.model_id == setup.model_id and (identity.checkpoint_sha256 or "") == setup.checkpoint_sha256:
            return ProbeModel(setup=setup, module=loaded.module, device=loaded.device)
        if setup.weights != "checkpoint":
            raise InputError(f"{lake.path}: its probes ran {setup.model_id}, but --preset {setup.preset} without a "
                             f"checkpoint builds {identity.model_id}; probe again with this version")
        if checkpoint is not None:
            raise InputError(f"checkpoint {path}: this is model {identity.model_id}, but {lake.path}'s probes ran "
                             f"{setup.model_id}; pass {wanted}")
    raise InputError(f"{lake.path}: {', '.join(str(p) for p in candidates)} changed since the probes "
                     f"(sha256 differs); pass checkpoint=PATH to {wanted}")


def reconstruct_sample(lake: Lake | str | os.PathLike[str], sample_id: str, sigmas: Sequence[float] | None = None, *,
                       model: ProbeModel | None = None, exact: bool = True, layer: str | None = None,
                       checkpoint: str | None = None, device: str = "auto", dtype: str | None = None) -> Reconstruction:
    """The noisy input and one-step reconstruction of `sample_id` at each of `sigmas`, computed now.

    Same network and noise seed as the lake's probes (`model`, or `load_probe_model` with
    `layer`, `checkpoint`, `device`, `dtype`); `sigmas` default to the probed ones. With
    `exact` (default) the sample's whole compute block runs, so the result equals the
    stored probes bit for bit (given the same device type and threads); `exact=False` runs
    the sample alone, block-size times cheaper, equal up to the last bits of the network
    (an occasional uint8 level). Bad ids or sigmas raise a one-line InputError.
    """
    import torch

    from .options import parse_sigmas
    from .probe import conditioning_classes

    lake = _open(lake)
    model = model if model is not None else load_probe_model(lake, layer=layer, checkpoint=checkpoint, device=device,
                                                              dtype=dtype)
    setup = model.setup
    wanted = parse_sigmas(setup.sigmas if sigmas is None else sigmas)
    ids = lake.sample_ids()
    where = np.flatnonzero(ids == sample_id)
    if not len(where):
        raise InputError(f"{lake.path}: no sample {sample_id!r} in samples")
    row = int(where[0])
    if exact:
        block = setup.compute_block
        start = row - row % block
        rows = np.arange(start, min(start + block, len(ids)))
    else:
        rows = np.array([row])
    images = lake.images(slice(int(rows[0]), int(rows[-1]) + 1))
    classes = conditioning_classes(lake.column(SAMPLES_GROUP, "class_id", slice(int(rows[0]), int(rows[-1]) + 1)))
    x0, eps = block_inputs(images, ids[rows].tolist(), setup.noise_seed, model.device)
    labels = torch.from_numpy(classes)
    at = row - int(rows[0])
    noisy, x0_hat = [], []
    for sigma in wanted:
        out = denoise_block(model.module, x0, eps, sigma, labels)
        noisy.append(out.noisy[at].cpu().numpy())
        x0_hat.append(out.x0_hat[at].cpu().numpy())
    return Reconstruction(sample_id=sample_id, sigmas=wanted, noisy=np.stack(noisy), x0_hat=np.stack(x0_hat))


def _open(lake: Lake | str | os.PathLike[str]) -> Lake:
    return lake if isinstance(lake, Lake) else open_lake(lake)
