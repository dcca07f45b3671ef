"""The Compare models page: how alike two registered models' layers are, as stored CKA heatmaps.

Reads ``analysis/cka/<first>~<second>@sigma<s>`` (`python -m analysis cka`): the debiased linear
CKA of every layer of one model against every layer of another, on the samples both probed
at one noise level. The page lists every stored table, draws the chosen one as a heatmap
(one cell per layer pair, 0 to 1), and says on how many samples and how to compute more.
Below, the linked maps (`explorer.linked_maps`): two models' maps of the same samples side by
side, a sample followed through both; then the stored generated-set comparisons
(`explorer.sets_tables`). It is offered when the lake holds a CKA table or more
than one ImageNet model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from analysis import cka_table
from explorer.linked_maps import linked_maps_section
from explorer.session import LakeSession
from explorer.sets_tables import generated_sets_section
from lake.layout import format_sigma

TABLE_KEY = "w_cka_table"


@dataclass(frozen=True)
class CkaTable:
    """One stored CKA table: models, noise level, layers and the matrix (rows: the first model's layers)."""

    group: str
    first_model: str
    second_model: str
    sigma: float
    first_layers: list[str]
    second_layers: list[str]
    matrix: np.ndarray
    attrs: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.first_model} vs {self.second_model} · sigma {format_sigma(self.sigma)}"

    def cells(self) -> pd.DataFrame:
        """One row per layer pair: first_layer, second_layer, cka (the heatmap's data)."""
        first, second = np.meshgrid(np.arange(len(self.first_layers)), np.arange(len(self.second_layers)), indexing="ij")
        return pd.DataFrame({"first_layer": np.asarray(self.first_layers, dtype=object)[first.ravel()],
                             "second_layer": np.asarray(self.second_layers, dtype=object)[second.ravel()],
                             "cka": self.matrix.ravel()})


def load_cka_tables(session: LakeSession) -> list[CkaTable]:
    """Every CKA table of the lake, in storage order (read once per commit)."""
    def compute() -> list[CkaTable]:
        lake, tables = session.lake, []
        for group in lake.results("cka"):
            attrs = lake.attrs(group)
            if attrs.get("analysis") != "cka":
                continue
            tables.append(CkaTable(group, str(attrs["first_model"]), str(attrs["second_model"]), float(attrs["sigma"]),
                                   *cka_table(lake, group), attrs))
        return tables

    return session.memo("cka_tables", compute)


def imagenet_models(session: LakeSession) -> list[str]:
    """Names of the lake's registered ImageNet models, first model first (read once per commit)."""
    return session.memo("imagenet_models", lambda: [record.name for record in session.lake.models() if record.kind == "imagenet64"])


def offered(session: LakeSession) -> bool:
    """Whether the page has something to show or to offer: a CKA table, or two ImageNet models to compare."""
    return session.memo("cka_offered", lambda: bool(session.lake.results("cka")) or len(imagenet_models(session)) > 1)


def heatmap_spec(first_model: str, second_model: str, first_layers: list[str], second_layers: list[str]) -> dict[str, Any]:
    """A layer x layer heatmap of the dataset `cells` (first_layer, second_layer, cka), 0 to 1, values written in the cells."""
    import altair as alt

    base = alt.Chart(alt.NamedData("cells")).encode(
        x=alt.X("second_layer:N", sort=second_layers, title=f"{second_model} layer", axis=alt.Axis(labelAngle=-20, labelLimit=320)),
        y=alt.Y("first_layer:N", sort=first_layers, title=f"{first_model} layer", axis=alt.Axis(labelLimit=320)),
    )
    cells = base.mark_rect().encode(
        color=alt.Color("cka:Q", title="CKA", scale=alt.Scale(domain=[0, 1], scheme="viridis")),
        tooltip=[alt.Tooltip("first_layer:N", title=first_model), alt.Tooltip("second_layer:N", title=second_model),
                 alt.Tooltip("cka:Q", format=".3f", title="CKA")],
    )
    text = base.mark_text(fontSize=13).encode(
        text=alt.Text("cka:Q", format=".2f"),
        color=alt.condition(alt.datum.cka > 0.6, alt.value("black"), alt.value("white")),
    )
    # A fixed step per layer (Streamlit sizes the chart's width; a plain height left the bands collapsed).
    return (cells + text).properties(height=alt.Step(44), width="container").to_dict()


def models_page(session: LakeSession) -> None:
    """The page: pick a stored CKA table, see its heatmap and numbers."""
    tables = load_cka_tables(session)
    models = imagenet_models(session)
    command = (f"python -m analysis cka --lake {session.path} --models {models[0]},{models[1]} --sigma S"
               if len(models) > 1 else f"python -m analysis cka --lake {session.path} --models FIRST,SECOND --sigma S")
    if not tables:
        st.info(f"No CKA tables in this lake yet. Compare two of its models ({', '.join(models)}) with `{command}`.")
        linked_maps_section(session)
        generated_sets_section(session)
        return
    labels = [t.label for t in tables]
    if st.session_state.get(TABLE_KEY) not in labels:
        st.session_state[TABLE_KEY] = labels[0]
    chosen = tables[labels.index(st.selectbox("CKA table", labels, key=TABLE_KEY))]
    st.caption(f"Debiased linear CKA (Kornblith et al. 2019) between every layer of **{chosen.first_model}** and every layer of "
               f"**{chosen.second_model}**, on the {int(chosen.attrs.get('n_shared', 0)):,} samples both probed at sigma "
               f"{format_sigma(chosen.sigma)}: 1 means the two layers represent the samples alike up to rotation and scale, "
               f"0 means unrelated. Stored in `{chosen.group}`; more with `{command}`.")
    spec = heatmap_spec(chosen.first_model, chosen.second_model, chosen.first_layers, chosen.second_layers)
    st.vega_lite_chart(spec={**spec, "datasets": {"cells": chosen.cells()}}, width="stretch", key="cka_heatmap")
    matrix = pd.DataFrame(chosen.matrix, index=pd.Index(chosen.first_layers, name=chosen.first_model), columns=chosen.second_layers)
    st.dataframe(matrix.style.format("{:.3f}"), width="stretch")
    st.download_button("Download this table (CSV)", matrix.to_csv().encode(), file_name=f"cka_{chosen.first_model}_{chosen.second_model}"
                       f"_sigma{format_sigma(chosen.sigma)}.csv", mime="text/csv", key="cka_download")
    linked_maps_section(session)
    generated_sets_section(session)
