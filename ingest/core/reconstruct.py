"""One-step reconstructions of probes: what the denoiser makes of a real image at each noise level.

A probe of a lake sample at noise level sigma feeds the network ``noisy = x0 + sigma * eps``
(``x0 = image / 127.5 - 1`` from the channel-last uint8 image, ``eps`` from
``models.probe_noise(noise_seed, sample_id)``, the same eps at every sigma) conditioned on
the sample's own class. Its output ``x0_hat = D(noisy, sigma, onehot(class))`` is the
one-step reconstruction. Both are stored as uint8 HWC images (``models.to_uint8_nhwc``;
the noisy input clipped to [-1, 1] first) in the ``reconstructions`` table
(`lake.layout.reconstructions_spec`):

- ``ingest activations --reconstructions`` stores them for every (sample, sigma) it probes,
  from the very pass whose activations it stores (`ingest.core.forward.denoise_block`);
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

from lake import Lake
from lake.layout import RECONSTRUCTIONS_GROUP, SAMPLES_GROUP, reconstructions_spec

from ..errors import InputError
from .recorded import ProbeModel, as_lake, load_probe_model

if TYPE_CHECKING:
    from lake import LakeWriter

    from ..activation_store import ActivationTable


@dataclass(frozen=True)
class Reconstruction:
    """One sample's probes: the noisy input and the one-step reconstruction at each sigma."""

    sample_id: str
    sigmas: list[float]  # float32-exact, in the order asked for (stored: storage order)
    noisy: np.ndarray  # (S, 64, 64, 3) uint8: x0 + sigma * eps, clipped to [-1, 1]
    x0_hat: np.ndarray  # (S, 64, 64, 3) uint8: D(x0 + sigma * eps, sigma, onehot(class))


def open_reconstruction_table(writer: LakeWriter, sigmas: Sequence[float], attrs: dict[str, Any]) -> ActivationTable:
    """Open (creating if needed) `reconstructions`, with every requested sigma on its sigma axis.

    Like `ingest.activation_store.open_activation_table`: new sigmas extend the axis
    (cells unprobed until written); a group made by another model or noise seed is refused
    with a one-line error.
    """
    from ..activation_store import ActivationTable, check_identity

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


def stored_reconstruction(lake: Lake | str | os.PathLike[str], sample_id: str) -> Reconstruction | None:
    """The stored reconstructions of `sample_id` at every sigma probed (None when it has none)."""
    lake = as_lake(lake)
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

    from ..options import parse_sigmas
    from .forward import block_inputs, conditioning_classes, denoise_block

    lake = as_lake(lake)
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
