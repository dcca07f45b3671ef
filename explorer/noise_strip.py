"""The images under the Noise levels map: the selected path's x0_hat per step, or its probes' noisy inputs and reconstructions.

A multi-step sample's strip is ``trajectories/<schedule>``; a text-to-image sample's its stored
x0 previews; any other sample's the stored ``reconstructions``, or, when none are stored, a
button that computes them for this one sample with `ingest.core.reconstruct_sample`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from explorer import common, prompts
from explorer.details import upscale
from explorer.noise_paths import Trajectory, first_row_of, sigma_label
from explorer.session import LakeSession
from explorer.tables import JointEmbedding, T2ISample

RECONSTRUCTED = "noise_reconstructed"  # on-demand reconstructions: (lake, sample id) -> StripImages


@dataclass(frozen=True)
class StripImages:
    """The images under the map: one list per row of the strip, with captions."""

    rows: tuple[tuple[str, np.ndarray, tuple[str, ...]], ...]  # (row title, images (m, 64, 64, 3), captions)

    @property
    def count(self) -> int:
        return sum(len(images) for _, images, _ in self.rows)


def step_images(lake: Any, schedule: str, sample_id: str) -> StripImages | None:
    """A multi-step sample's x0_hat at every step (``trajectories/<schedule>``), captioned by sigma."""
    table = lake.trajectory(schedule)
    row = first_row_of(np.asarray(table["sample_id"].values), sample_id)
    if row < 0:
        return None
    images = np.asarray(table["x0_hat"][row].values, dtype=np.uint8)
    sigmas = np.asarray(table["sigma"].values, dtype=np.float64)
    captions = tuple(f"step {i + 1} · {sigma_label(s)}" for i, s in enumerate(sigmas))
    return StripImages((("x0_hat at each step", images, captions),))


def t2i_step_strip(sample: T2ISample) -> StripImages | None:
    """A text-to-image sample's decoded x0 at every step (``t2i/<name>/samples``), captioned by timestep and sigma."""
    if sample.previews is None:
        return None
    captions = tuple(f"t={t}" + (f" · σ={sample.sigmas[i]:.3g}" if sample.sigmas else "") for i, t in enumerate(sample.timesteps))
    if len(captions) != len(sample.previews):
        captions = tuple(f"step {i + 1}" for i in range(len(sample.previews)))
    return StripImages((("x0 estimate after each step (text-to-image)", sample.previews, captions),))


def stored_reconstructions(lake: Any, sample_id: str) -> StripImages | None:
    """The probe inputs and one-step reconstructions stored for `sample_id` (None when there are none)."""
    try:
        table = lake.reconstructions()
    except KeyError:
        return None
    row = first_row_of(np.asarray(table["sample_id"].values), sample_id)
    if row < 0:
        return None
    probed = np.asarray(table["probed"][row].values, dtype=bool)
    if not probed.any():
        return None
    sigmas = np.asarray(table["sigma"].values, dtype=np.float64)
    return reconstruction_strip(sigmas[probed], np.asarray(table["noisy"][row].values)[probed], np.asarray(table["x0_hat"][row].values)[probed])


def reconstruction_strip(sigmas: np.ndarray, noisy: np.ndarray, x0_hat: np.ndarray) -> StripImages:
    """Two rows, from high sigma to low: the noisy probe inputs and their one-step reconstructions."""
    order = np.argsort(-np.asarray(sigmas, dtype=np.float64), kind="stable")
    labels = [sigma_label(float(sigmas[i])) for i in order]
    return StripImages(
        (
            ("noisy input x0 + σ·ε", np.asarray(noisy, dtype=np.uint8)[order], tuple(f"noisy · {s}" for s in labels)),
            ("one-step reconstruction G(x0 + σ·ε, σ)", np.asarray(x0_hat, dtype=np.uint8)[order], tuple(f"x0_hat · {s}" for s in labels)),
        )
    )



def draw_strip(session: LakeSession, path: Trajectory, joint: JointEmbedding) -> None:
    """The images along the selected path: x0_hat per step, or noisy input and reconstruction per sigma."""
    lake = session.lake
    t2i = prompts.t2i_sample(session, int(session.sample_rows([path.sample_id])[0]))
    if t2i is not None:
        what = f"{len(path.sigmas)} steps of text-to-image model `{t2i.model}`"
    elif path.kind == "steps":
        what = f"{len(path.sigmas)} steps of schedule `{path.schedule}`"
    else:
        what = f"probes at {len(path.sigmas)} noise levels"
    heading, clear = st.columns([4, 1])
    heading.markdown(f"**Along the path of** `{path.sample_id}` · {what}")
    clear.button("Clear selection and manual neighbours", on_click=common.clear_selection, key="noise_clear")
    if t2i is not None:  # its steps are the path's vertices; the ImageNet denoiser never reconstructs it
        strip = t2i_step_strip(t2i)
    elif path.kind == "steps" and path.schedule is not None:
        strip = step_images(lake, path.schedule, path.sample_id)
    else:
        strip = session.memo(("recon", path.sample_id), lambda: stored_reconstructions(lake, path.sample_id))
        strip = strip or st.session_state.get(RECONSTRUCTED, {}).get((str(session.path), path.sample_id))
        if strip is None:
            _reconstruct_button(session, path.sample_id, [float(s) for s in sorted(joint.sigmas, reverse=True)], joint.layer)
            return
    if strip is None:
        st.caption("No images are stored for these steps.")
        return
    for title, images, captions in strip.rows:
        st.caption(title)
        st.image([upscale(img, 2) if img.shape[0] <= 64 else img for img in images], width=112, caption=list(captions), output_format="PNG")


def _reconstruct_button(session: LakeSession, sample_id: str, sigmas: list[float], layer: str) -> None:
    """Offer to compute the probe inputs and reconstructions of one sample now (none are stored)."""
    try:
        # Lazy: the ingest package (and torch behind it) loads only when a sample needs it.
        from ingest.core import reconstruct_sample
        from ingest.errors import InputError
    except ImportError:
        st.info(
            "No reconstructions are stored for this sample, and this installation cannot compute them on demand "
            "(`ingest.core` is missing). Store them with "
            f"`python -m ingest activations --lake {session.path} ... --reconstructions`.",
            icon=":material/info:",
        )
        return
    st.caption("No reconstructions are stored for this sample (`ingest activations --reconstructions` stores them).")
    if st.button(f"Compute its reconstructions at σ = {', '.join(f'{s:g}' for s in sigmas)}", key="noise_reconstruct"):
        try:
            with st.spinner("Running the denoiser on this sample…"):
                # The layer's probe network and noise seed: the images the probes saw.
                done = reconstruct_sample(session.lake, sample_id, sigmas, layer=layer)
        except InputError as exc:  # no probe set-up in this lake, a missing checkpoint: one line, not a traceback
            st.warning(f"Could not compute the reconstructions: {exc}")
            return
        strip = reconstruction_strip(np.asarray(done.sigmas, dtype=np.float64), done.noisy, done.x0_hat)
        st.session_state.setdefault(RECONSTRUCTED, {})[(str(session.path), sample_id)] = strip
        st.rerun()


