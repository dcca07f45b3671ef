"""What the explorer's pages share: session-state keys, memoised per-embedding vectors and callbacks."""
from __future__ import annotations

import numpy as np
import streamlit as st

from explorer import views
from explorer.data import EmbeddingFrame, LakeSession

VIEW = "view"  # session-state key of the authoritative ViewState
NONCE = "chart_nonce"  # bumped after each processed click: the next chart starts with no selection
ZOOM_NONCE = "zoom_nonce"


def load_frame(session: LakeSession, ref: str) -> EmbeddingFrame:
    """The embedding's in-memory vectors, with a spinner while they load the first time."""
    with st.spinner("Loading the embedding…"):
        return session.frame(ref)


def present_classes(session: LakeSession, ref: str) -> list[int]:
    """Class ids that have at least one point in the embedding, ascending."""
    frame = session.frame(ref)
    return session.memo(("present_classes", ref), lambda: [int(c) for c in np.flatnonzero(np.bincount(frame.class_id.astype(np.int64) + 1, minlength=1001)[1:])])


def stratified_rows(session: LakeSession, frame: EmbeddingFrame, ref: str, mask: np.ndarray, limit: int) -> np.ndarray:
    """At most `limit` rows of `mask`, a deterministic sample stratified by class x source (see `views`)."""
    strata = session.memo(("strata", ref), lambda: views.strata_codes(frame.class_id, frame.source_code, len(frame.sources)))
    return views.stratified_sample(mask, strata, frame.sampling_uniform, limit)


def clear_selection() -> None:
    """Button callback: forget the selection and the manual neighbours."""
    st.session_state[VIEW] = st.session_state[VIEW].cleared()
    st.session_state[NONCE] += 1
