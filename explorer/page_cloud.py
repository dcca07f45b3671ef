"""The 3D page: a pydeck point cloud of a 3D embedding."""
from __future__ import annotations

import numpy as np
import streamlit as st

from explorer import charts, common, export
from explorer.data import EmbeddingFrame, LakeSession
from explorer.state import ViewState


def cloud_page(session: LakeSession, frame: EmbeddingFrame, view: ViewState, mask: np.ndarray) -> None:
    rows = common.stratified_rows(session, frame, view.embedding, mask, min(view.max_points, 30_000))
    table = export.points_frame(frame, rows, session.classes)
    if view.color_by in ("class", "source", "split"):
        codes = {"class": frame.class_id[rows], "source": frame.source_code[rows], "split": frame.split_code[rows]}[view.color_by]
        rgb = charts.point_colors(codes, None)
    else:
        values = session.column_values(view.embedding, view.color_by)[rows]
        rgb = charts.point_colors(None, values) if values.dtype.kind in "iufb" else charts.point_colors(np.unique(values, return_inverse=True)[1], None)
    table["rgb"] = rgb.tolist()
    table["class"] = table["class"].astype(str)
    table["source"] = table["source"].astype(str)
    table["sample_id"] = table["sample_id"].astype(str)
    centre = tuple(float(v) for v in np.nanmean(frame.coords, axis=0))
    span = float(np.nanmax(np.ptp(frame.coords, axis=0)))
    st.caption(f"{len(rows):,} of {int(mask.sum()):,} filtered points · drag to rotate, scroll to zoom. Selection works in the Explore page (it shows this embedding through the rotation sliders).")
    st.pydeck_chart(charts.point_cloud(table[["x", "y", "z", "rgb", "class", "source", "sample_id"]], centre, span), height=620)
