"""The Prompts page: a text-to-image model's prompts in the map of their pooled text embeddings, coloured by cluster.

Reads ``analysis/prompts/<name>`` (`python -m analysis prompts`): per prompt a k-means
cluster and 2-D coordinates. The sidebar's prompt search applies here too. Below the map,
the prompts listed by cluster with their number of samples in the lake.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from explorer import charts, prompts
from explorer.rows import align_rows, row_uniform
from explorer.session import LakeSession
from explorer.state import ViewState

MAX_PROMPTS_DRAWN = 20_000  # beyond, a fixed sample of the prompts (the table below lists them all)
MODEL_KEY = "w_prompt_model"


@dataclass(frozen=True)
class PromptMap:
    """One model's prompt map: one row per prompt of ``analysis/prompts/<name>``."""

    name: str
    table: pd.DataFrame  # prompt_id, prompt, cluster, x, y, samples
    attrs: dict[str, Any]


def load_prompt_map(session: LakeSession, name: str) -> PromptMap | None:
    """The model's prompt map with each prompt's sample count, or None when the lake has no ``analysis/prompts/<name>``."""
    def compute() -> PromptMap | None:
        stored = session.prompt_map(name)  # read once per commit, like the rest of the map
        if stored is None:
            return None
        coords, ids, text = stored.coords, stored.prompt_id, stored.prompt
        index = prompts.prompt_index(session)
        code = index.models.index(name) if name in index.models else -1
        mine = np.flatnonzero(index.prompt_model == code)
        counts = np.bincount(index.prompt_code[index.prompt_code >= 0], minlength=index.n_prompts)
        at = align_rows(ids, np.asarray(index.prompt_id[mine], dtype=object))  # this table's prompts among the model's
        samples = np.where(at >= 0, counts[mine][np.clip(at, 0, max(len(mine) - 1, 0))] if len(mine) else 0, 0)
        table = pd.DataFrame({"prompt_id": ids.astype(str), "prompt": text.astype(str),
                              "cluster": stored.cluster,
                              "x": coords[:, 0], "y": coords[:, 1] if coords.shape[1] > 1 else 0.0,
                              "samples": samples.astype(np.int64)})  # fmt: skip
        return PromptMap(name, table, stored.attrs)

    return session.memo(("prompt_map", name), compute)


def map_spec(colour: charts.ColorSpec, extent: tuple[float, float, float, float], renderer: str) -> dict[str, Any]:
    """The prompt map (dataset `prompts`: x, y, colour, prompt, cluster, samples), each prompt a point sized by its samples."""
    import altair as alt

    x0, x1, y0, y1 = extent
    chart = (
        alt.Chart(alt.Data(name="prompts"))
        .mark_circle(opacity=0.8, stroke="#333333", strokeWidth=0.5)
        .encode(
            x=alt.X("x:Q", title=None, scale=alt.Scale(domain=[x0, x1], nice=False, zero=False)),
            y=alt.Y("y:Q", title=None, scale=alt.Scale(domain=[y0, y1], nice=False, zero=False)),
            color=alt.Color("colour:N", title=colour.title, scale=colour.scale(), legend=alt.Legend(symbolLimit=24, labelLimit=220)),
            size=alt.Size("samples:Q", title="samples", scale=alt.Scale(range=[40, 400], zero=False), legend=None),
            tooltip=[alt.Tooltip("prompt:N", title="prompt"), alt.Tooltip("cluster:N", title="cluster"), alt.Tooltip("samples:Q", title="samples")],
        )
        .properties(height=520, usermeta={"embedOptions": {"renderer": renderer}})
        .configure_view(strokeWidth=0)
    )
    return chart.to_dict(validate=False)


def prompts_page(session: LakeSession, view: ViewState) -> None:
    """The page: pick a model (when there are several), its prompt map, and its prompts by cluster."""
    index = prompts.prompt_index(session) if prompts.has_t2i(session) else None
    if index is None or not index.models:
        st.info("This lake holds no text-to-image samples. `python -m ingest generate-t2i --lake LAKE ...` makes some (docs/text-to-image.md).")
        return
    models = list(index.models)
    if st.session_state.get(MODEL_KEY) not in models:
        st.session_state[MODEL_KEY] = models[0]
    name = str(st.selectbox("Model", models, key=MODEL_KEY)) if len(models) > 1 else models[0]
    found = load_prompt_map(session, name)
    if found is None:
        st.info(f"No prompt map of {name} yet: run this, then reload the page.")
        st.code(f"python -m analysis prompts --lake {session.path} --name {name}", language="bash")
        return
    table = found.table
    if view.prompt:
        table = table[table["prompt"].str.lower().str.contains(view.prompt.strip().lower(), regex=False)]
    method = found.attrs.get("map_method", "")
    st.caption(
        f"{len(table):,} of {len(found.table):,} prompts of `{name}`"
        + (f" matching “{view.prompt}”" if view.prompt else "")
        + f" · {found.attrs.get('n_clusters', table['cluster'].nunique())} k-means clusters of the {found.attrs.get('space', 'pooled text embeddings')}"
        + (f" · map: {method}" if method else "")
        + " · point size: samples in the lake. Colour the Explore map by *prompt cluster* to see them among the samples."
    )
    drawn = table
    if len(drawn) > MAX_PROMPTS_DRAWN:  # a fixed sample: the same prompts stay drawn as the search narrows
        drawn = drawn[row_uniform(len(found.table))[drawn.index.to_numpy()] < MAX_PROMPTS_DRAWN / len(drawn)]
    if len(drawn):
        labels = drawn["cluster"].map(lambda c: f"cluster {c}")
        everywhere = tuple(f"cluster {c}" for c in sorted(found.table["cluster"].unique()))
        limit = charts.palette_size(view.palette if view.palette in charts.CATEGORICAL_COLOURS else "")
        if len(everywhere) <= limit:  # fixed colours per cluster, as the Explore page keeps them
            top, other = everywhere, False
        else:
            top = charts.top_categories(labels.value_counts().to_dict(), limit)
            other = bool((~labels.isin(top)).any())
        colour = charts.legend_colour_spec("prompt cluster", view.palette if view.palette in charts.CATEGORICAL_COLOURS else "", top, other)
        points = drawn.assign(colour=pd.Categorical(labels.where(labels.isin(top), charts.OTHER), categories=list(colour.domain or ())))
        extent = (float(found.table["x"].min()), float(found.table["x"].max()), float(found.table["y"].min()), float(found.table["y"].max()))
        pad_x, pad_y = (extent[1] - extent[0]) * 0.05 or 1.0, (extent[3] - extent[2]) * 0.05 or 1.0
        extent = (extent[0] - pad_x, extent[1] + pad_x, extent[2] - pad_y, extent[3] + pad_y)
        with st.container(key="prompt-map"):  # a keyed container: browsers (and tests) find the map by its class
            st.vega_lite_chart(spec=charts.with_datasets(map_spec(colour, extent, charts.renderer_for(len(points))),
                                                         prompts=points[["x", "y", "colour", "prompt", "cluster", "samples"]]), width="stretch")  # fmt: skip
    st.markdown("**Prompts by cluster**")
    st.dataframe(
        table.sort_values(["cluster", "samples", "prompt"], ascending=[True, False, True])[["cluster", "prompt", "samples", "prompt_id"]],
        hide_index=True,
        width="stretch",
        key="prompt-table",
    )
