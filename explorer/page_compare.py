"""The Real-vs-generated page: density difference heatmap, per-class view and the comparison metrics."""
from __future__ import annotations

import numpy as np
import streamlit as st

from explorer import charts, common, export, views
from explorer.data import EmbeddingFrame, LakeSession
from explorer.state import ViewState


def compare_page(session: LakeSession, frame: EmbeddingFrame, view: ViewState, xy: np.ndarray, mask: np.ndarray) -> None:
    info = session.embedding(view.embedding)
    overall, per_class = session.compare_summary(info.key)
    present = common.present_classes(session, view.embedding)
    focus = st.selectbox(
        "Per-class view",
        [-1, *present],
        format_func=lambda c: "all classes (sidebar filters)" if c == -1 else session.classes.label(c),
        key="w_focus_class",
    )
    if focus >= 0:
        mask = mask & (frame.class_id == focus)
    generated, real = frame.source_is("generated"), frame.source_is("real")
    extent = views.data_extent(xy)
    left, right = st.columns([3, 2], gap="medium")
    with left:
        n_gen, n_real = int((mask & generated).sum()), int((mask & real).sum())
        st.caption(f"{n_gen:,} generated and {n_real:,} real points · orange: generated over-represented, purple: real under-covered")
        if n_gen == 0 or n_real == 0:
            st.info("This view needs both real and generated samples.")
        grid = views.density_difference(xy, mask, generated, real, extent, bins=80, smooth=1.0)
        rows = common.stratified_rows(session, frame, view.embedding, mask, min(view.max_points, 20_000))
        points = export.points_frame(frame, rows, session.classes).assign(x=xy[rows, 0], y=xy[rows, 1])
        cells = views.difference_cells(grid)
        peak = float(np.abs(cells[4]).max()) if len(cells[4]) else 1.0
        spec = charts.difference_spec(extent, peak, frame.sources, charts.renderer_for(len(points)))
        st.vega_lite_chart(spec=charts.with_datasets(spec, cells=charts.cells_frame(cells, "difference"), points=points), width="stretch", key="difference")
    with right:
        st.subheader("Comparison metrics")
        if not overall and per_class.empty:
            st.info(f"No comparison metrics for {info.key} yet: run `python -m analysis run --lake {session.path}`.")
        if overall:
            st.dataframe({"metric": list(overall), "value": [str(v) for v in overall.values()]}, hide_index=True, width="stretch")
        if not per_class.empty:
            shown = per_class if focus < 0 else per_class[per_class["class_id"] == focus]
            st.dataframe(shown, hide_index=True, width="stretch", height=420)
