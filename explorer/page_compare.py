"""The Real-vs-generated page: density difference heatmap, per-class view and the comparison metrics."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from explorer import charts, common, export, views
from explorer.frames import EmbeddingFrame
from explorer.session import LakeSession
from explorer.state import ViewState
from lake.layout import split_t2i_layer

LEGEND_TEXT = "green cells: generated over-represented · purple cells: real under-covered · orange circles: real · black crosses: generated"


@dataclass(frozen=True)
class Headline:
    """One overall comparison metric: its attribute, a label, the value shown and what it means."""

    name: str
    label: str
    value: str
    meaning: str


def headline_metrics(attrs: dict[str, Any]) -> tuple[list[Headline], str]:
    """The five overall metrics of an `analysis/compare/<key>` group, each with one line on its meaning,
    and a line saying in which feature space (and on how many rows) they were computed.

    Meanings follow `analysis.metrics` (Frechet distance of fitted Gaussians, and precision,
    recall, density, coverage with k-NN balls after Naeem et al. 2020). Metrics the group
    lacks are left out.
    """
    k = attrs.get("parameters.k", attrs.get("k"))
    ball = f"{k}-nearest-neighbour ball" if k is not None else "k-nearest-neighbour ball"
    meanings = {
        "frechet_distance": ("Fréchet distance", "distance between Gaussians fitted to the real and to the generated points (the FID formula); 0 = same mean and covariance, lower is closer"),
        "precision": ("Precision", f"share of generated samples inside the {ball} of some real sample (fidelity)"),
        "recall": ("Recall", f"share of real samples inside the {ball} of some generated sample (diversity)"),
        "density": ("Density", f"how many real samples' {ball}s hold a generated sample, on average, divided by {k or 'k'} (about 1 when generated samples sit like real ones)"),
        "coverage": ("Coverage", f"share of real samples whose {ball} holds at least one generated sample"),
    }
    found = [Headline(name, label, common.format_value(attrs[name]), meaning) for name, (label, meaning) in meanings.items() if name in attrs]
    return found, _space_line(attrs, k)


def _space_line(attrs: dict[str, Any], k: Any) -> str:
    space = str(attrs.get("space") or "PCA scores of the activations")
    where = f"layer {attrs['layer']} at sigma {common.format_value(attrs.get('sigma'))}" if attrs.get("layer") else "this embedding's layer and sigma"
    line = f"Feature space: {space} of {where} (not the 2D/3D projection)"
    n_real, n_gen = attrs.get("n_real"), attrs.get("n_generated")
    if n_real is not None and n_gen is not None:
        line += f"; {common.format_value(n_real)} real and {common.format_value(n_gen)} generated samples"
    prdc_real, prdc_gen = attrs.get("prdc_real_rows"), attrs.get("prdc_generated_rows")
    if prdc_real is not None and prdc_gen is not None:
        line += f"; precision, recall, density and coverage on {common.format_value(prdc_real)} real and {common.format_value(prdc_gen)} generated of them"
    if k is not None:
        line += f", k={k}"
    return line + "."


def compare_page(session: LakeSession, frame: EmbeddingFrame, view: ViewState, xy: np.ndarray, mask: np.ndarray) -> None:
    info = session.embedding(view.embedding)
    overall, per_class = session.compare_summary(info.key)
    present = common.present_classes(session, view.embedding)
    focus = st.selectbox(
        "Per-class view",
        [-1, *present],
        format_func=lambda c: "all classes (sidebar filters)" if c == -1 else common.class_label(session, c),
        key="w_focus_class",
    )
    if focus >= 0:
        mask = mask & (frame.class_id == focus)
    generated, real = frame.source_is("generated"), frame.source_is("real")
    extent = views.data_extent(xy)
    left, right = st.columns([3, 2], gap="medium")
    with left:
        n_gen, n_real = int((mask & generated).sum()), int((mask & real).sum())
        st.caption(f"{n_gen:,} generated and {n_real:,} real points · {LEGEND_TEXT}")
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
        if not overall and per_class.empty and split_t2i_layer(info.layer) is not None:
            st.info(f"{info.key} is a text-to-image model's key: every sample in it is generated, so there is nothing real "
                    "to compare with (`analysis run` skips the comparison here).")  # fmt: skip
        elif not overall and per_class.empty:
            st.info(f"No comparison metrics for {info.key} yet: run `python -m analysis run --lake {session.path}`.")
        headlines, space = headline_metrics(overall)
        if headlines:
            st.markdown("\n".join(f"- **{h.label}: {h.value}** · {h.meaning}" for h in headlines))
            st.caption(space)
        if overall:
            with st.expander("All attributes of the comparison", expanded=not headlines):
                st.dataframe({"attribute": list(overall), "value": [str(v) for v in overall.values()]}, hide_index=True, width="stretch")
        if not per_class.empty:
            st.markdown("**Per class**" + ("" if focus < 0 else f" · {common.class_label(session, focus)}"))
            shown = per_class if focus < 0 else per_class[per_class["class_id"] == focus]
            st.dataframe(shown, hide_index=True, width="stretch", height=420)

