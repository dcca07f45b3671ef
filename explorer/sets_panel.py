"""The Explore page's sets of points: a tab per set (what it holds, its most central images, export) and a comparison of two.

Sets are made with the WebGL scatter's lasso and kept in the view (and its URL) as outlines
(`explorer.point_sets`); this module only draws them.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from explorer import common, export, point_sets, prompts
from explorer.frames import EmbeddingFrame
from explorer.point_sets import SetSummary
from explorer.session import LakeSession
from explorer.state import PointSet, ViewState

TOP_CLASSES = 10  # classes listed per set; the comparison's histogram shows the most frequent over both sets
COMPARE_CLASSES = 15


def sets_section(session: LakeSession, frame: EmbeddingFrame, view: ViewState, xy: np.ndarray, mask: np.ndarray, lasso: bool = True) -> None:
    """The sets drawn on this embedding, under the scatter; a hint when there are none (`lasso`: the scatter can draw one)."""
    sets = [s for s in view.sets if s.embedding == view.embedding]
    if not sets:
        if lasso:
            st.caption("Sets of points: lasso points on the map (Shift+drag, or 'Lasso a set') to count, compare and export them.")
        return
    st.subheader("Sets of points")
    members = {s.name: _members(session, view, xy, mask, s) for s in sets}
    labels = [f"{s.name} · {len(members[s.name]):,}" for s in sets] + (["Compare two sets"] if len(sets) >= 2 else [])
    tabs = st.tabs(labels)
    model_of = _models(session, frame, view.embedding)
    for tab, point_set in zip(tabs, sets):
        with tab:
            summary = point_sets.summarise(session, frame, view.embedding, point_set.name, members[point_set.name], model_of)
            _summary(session, frame, view, summary, members[point_set.name])
    if len(sets) >= 2:
        with tabs[-1]:
            _compare(session, frame, view, sets, members)


def _members(session: LakeSession, view: ViewState, xy: np.ndarray, mask: np.ndarray, point_set: PointSet) -> np.ndarray:
    # Memoised per outline and filter: a click elsewhere must not redo the polygon test over every point.
    key = ("set_rows", view.embedding, view.rotation, point_set.polygon, hash(np.packbits(mask).tobytes()))
    rows: np.ndarray = session.memo(key, lambda: point_sets.set_rows(xy, mask, point_set))
    return rows


def _models(session: LakeSession, frame: EmbeddingFrame, ref: str) -> np.ndarray | None:
    try:
        codes, labels = prompts.colour_codes(session, frame, ref, prompts.MODEL)
    except (KeyError, ValueError):
        return None
    return np.asarray(labels, dtype=object)[codes]


def _counts_text(counts: list[tuple[str, int]], limit: int | None = None) -> str:
    shown = counts[:limit] if limit else counts
    text = " · ".join(f"{common.markdown_text(label)}: {n:,}" for label, n in shown)
    return text + (f" · … {len(counts) - len(shown)} more" if len(counts) > len(shown) else "")


def _summary(session: LakeSession, frame: EmbeddingFrame, view: ViewState, summary: SetSummary, rows: np.ndarray) -> None:
    a, b, c = st.columns(3)
    a.metric("points", f"{summary.size:,}")
    b.metric("real fraction", f"{summary.real_fraction:.2f}")
    c.metric("k-NN inside the set", "—" if summary.knn_inside is None else f"{summary.knn_inside:.2f}",
             help="of the members' stored nearest neighbours (activation space), the fraction that are members too")  # fmt: skip
    st.markdown(f"**by class:** {_counts_text(summary.by_class, TOP_CLASSES)}")
    st.markdown(f"**by source:** {_counts_text(summary.by_source)}  \n**by split:** {_counts_text(summary.by_split)}")
    if summary.by_model:
        st.markdown(f"**by model:** {_counts_text(summary.by_model)}")
    if len(summary.central_rows):
        central = summary.central_rows[frame.sample_row[summary.central_rows] >= 0]
        st.caption(f"most central members (nearest the set's mean in {summary.central_space} space)")
        if len(central):
            st.image(list(session.images(frame.sample_row[central])), width=72, caption=[str(frame.sample_id[r]) for r in central],
                     output_format="PNG")
    extra = prompts.export_columns(session, frame, frame.info.ref)
    left, middle, right = st.columns(3)
    left.download_button(f"Export {summary.name} as CSV", data=lambda: export.to_csv(export.points_frame(frame, rows, session.classes, extra)),
                         file_name=f"{summary.name.replace(' ', '_')}.csv", mime="text/csv", on_click="ignore", key=f"set_csv_{summary.name}")  # fmt: skip
    middle.download_button("as Parquet", data=lambda: export.to_parquet(export.points_frame(frame, rows, session.classes, extra)),
                           file_name=f"{summary.name.replace(' ', '_')}.parquet", mime="application/vnd.apache.parquet", on_click="ignore",
                           key=f"set_parquet_{summary.name}")  # fmt: skip
    right.button(f"Remove {summary.name}", key=f"set_remove_{summary.name}", on_click=_remove, args=(summary.name,))


def _remove(name: str) -> None:
    st.session_state[common.VIEW] = point_sets.remove_set(st.session_state[common.VIEW], name)


def _compare(session: LakeSession, frame: EmbeddingFrame, view: ViewState, sets: list[PointSet], members: dict[str, np.ndarray]) -> None:
    names = [s.name for s in sets]
    left, right = st.columns(2)
    first = left.selectbox("set A", names, index=0, key="set_compare_a")
    second = right.selectbox("set B", names, index=1, key="set_compare_b")
    if first == second:
        st.caption("Pick two different sets.")
        return
    a, b = members[first], members[second]
    distance = point_sets.frechet_between(session, view.embedding, a, b)
    shared = len(np.intersect1d(a, b))
    st.markdown(
        f"**Frechet distance** (Gaussians fitted to their PCA scores): {'—' if distance is None else f'{distance:.4g}'} · "
        f"**shared points:** {shared:,} · sizes {len(a):,} and {len(b):,}"
    )
    st.bar_chart(_class_histograms(session, frame, {first: a, second: b}), stack=False, horizontal=True, height=360)


def _class_histograms(session: LakeSession, frame: EmbeddingFrame, sets: dict[str, np.ndarray]) -> Any:
    """Fraction of each set per class, for the classes most frequent over both sets."""
    columns = {}
    for name, rows in sets.items():
        classes = frame.class_id[rows].astype(np.int64)
        counts = pd.Series(classes).value_counts()
        columns[name] = counts / max(len(rows), 1)
    table = pd.DataFrame(columns).fillna(0.0)
    table = table.loc[table.sum(axis=1).sort_values(ascending=False).index[:COMPARE_CLASSES]]
    table.index = [common.class_label(session, int(c)) for c in table.index]
    return table
