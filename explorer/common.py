"""What the explorer's pages share: session-state keys, memoised per-embedding vectors and callbacks."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import streamlit as st

from explorer import views
from explorer.columns import NO_CLASS
from explorer.frames import EmbeddingFrame
from explorer.session import LakeSession

VIEW = "view"  # session-state key of the authoritative ViewState
NONCE = "chart_nonce"  # bumped after each processed click: the next chart starts with no selection
ZOOM_NONCE = "zoom_nonce"
MISSING = "—"  # how an absent value (NaN, "", None, seed -1 of a real image) is shown

# Per-sample columns that repeat the built-in class/source/split colourings and facts (every
# analysis table carries them as labels) or are unique per sample.
LABEL_COLUMNS = frozenset({"class_id", "source", "split", "wnid", "class_name", "origin"})


def class_label(session: LakeSession, class_id: int) -> str:
    """'1: goldfish', or 'no class' for a sample without an ImageNet class (-1)."""
    return session.classes.label(int(class_id)) if 0 <= int(class_id) < 1000 else NO_CLASS


def format_value(value: Any) -> str:
    """A per-sample value as short text, whatever the column's type.

    Lakes hold numeric, bool and string columns (vlen-utf8, StringDType or object), with
    NaN or "" for missing values; this never assumes a column is numeric.
    """
    if value is None:
        return MISSING
    if isinstance(value, (np.generic, np.ndarray)) and np.ndim(value) == 0:  # numpy scalars, 0-d arrays (zarr reads)
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else MISSING
    text = str(value)
    return text if text.strip() else MISSING


def markdown_text(text: str) -> str:
    """`text` with the characters Markdown acts on inside a line escaped, so values show literally."""
    return "".join("\\" + ch if ch in "\\`*_[]<>|~$" else ch for ch in text)


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
