"""Linked maps on the Compare models page: two models' 2-D maps of the same samples, side by side.

For a pair of keys compared by ``python -m analysis neighbourhood`` (one per model, e.g.
``bottleneck@sigma2`` and ``teacher-stand-in.bottleneck@sigma2``), the first 2-D embedding of
each key is drawn, the second aligned onto the first (`explorer.alignment`: rotation or
reflection, scale and shift fitted on the shared samples), both coloured by the stored
neighbourhood change. Following a sample (picked from the list, most changed first, or
clicked in either map) rings it in both maps, with its k nearest samples in each model's own
activation space, and says how many of them the two models share.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from explorer import charts
from explorer.alignment import Alignment, fit_alignment
from explorer.page_explore import picked_ids
from explorer.queries import activation_neighbours
from explorer.session import LakeSession

PAIR_KEY, FOLLOW_KEY = "w_linked_pair", "w_linked_sample"
MAP_KEYS = ("linked-first", "linked-second")
SEEN_KEY = "linked_seen"
K = 10
LISTED = 50  # samples offered in the follow list, most changed first
MAX_DRAWN = 20_000  # points per map (a seeded sample beyond; the followed sample and its neighbours always)


@dataclass(frozen=True)
class LinkedPair:
    """Two keys compared by a neighbourhood table, and the 2-D embedding of each."""

    first_key: str
    second_key: str
    group: str  # analysis/neighbourhood/<first>~<second>
    first_ref: str
    second_ref: str

    @property
    def label(self) -> str:
        return f"{self.first_key} vs {self.second_key}"


def linked_pairs(session: LakeSession) -> list[LinkedPair]:
    """Every stored neighbourhood comparison whose two keys both have a 2-D embedding."""
    def compute() -> list[LinkedPair]:
        maps: dict[str, str] = {}
        for info in session.embeddings:
            if info.dims == 2:
                maps.setdefault(info.key, info.ref)
        found = []
        for group in session.lake.results("neighbourhood"):
            attrs = session.lake.attrs(group)
            first, second = str(attrs.get("first_key", "")), str(attrs.get("second_key", ""))
            if first in maps and second in maps and first != second:
                found.append(LinkedPair(first, second, group, maps[first], maps[second]))
        return found

    return session.memo("linked_pairs", compute)


@dataclass(frozen=True)
class LinkedMaps:
    """Both maps' rows of the shared samples, the alignment, and the change score (first map's rows)."""

    first_rows: np.ndarray  # embedding rows of the shared samples in the first map
    second_rows: np.ndarray  # ... and of the same samples, in the same order, in the second
    alignment: Alignment
    change: np.ndarray  # neighbourhood change of each shared sample (NaN where not scored)


def load_linked(session: LakeSession, pair: LinkedPair) -> LinkedMaps:
    """Join the two maps on their samples (by `samples` row), align the second onto the first (once per commit)."""
    def compute() -> LinkedMaps:
        first, second = session.frame(pair.first_ref), session.frame(pair.second_ref)
        a = first.sample_row[: first.n_fitted]
        b = second.sample_row[: second.n_fitted]
        shared, first_rows, second_rows = np.intersect1d(a[a >= 0], b[b >= 0], assume_unique=False, return_indices=True)
        first_rows = np.flatnonzero(a >= 0)[first_rows]
        second_rows = np.flatnonzero(b >= 0)[second_rows]
        alignment = fit_alignment(first.coords[first_rows], second.coords[second_rows])
        change = np.asarray(session.column_values(pair.first_ref, f"vs {pair.second_key}.neighbourhood_change"), dtype=np.float64)
        return LinkedMaps(first_rows, second_rows, alignment, change[first_rows])

    return session.memo(("linked", pair), compute)


def followed_index(linked: LinkedMaps, session: LakeSession, pair: LinkedPair) -> int:
    """The index (into the shared samples) of the followed sample, from a click in either map or the list."""
    ids = session.frame(pair.first_ref).sample_id[linked.first_rows]
    for key in MAP_KEYS:  # a click: the map's point selection holds the clicked sample (no toggling)
        state = st.session_state.get(key)
        picked = picked_ids(state["selection"].get(charts.PICK) if state else None, "sample_id")
        if picked and st.session_state.get(f"{SEEN_KEY}-{key}") != picked:
            st.session_state[f"{SEEN_KEY}-{key}"] = picked
            st.session_state[FOLLOW_KEY] = picked[0]
    order = np.argsort(-np.nan_to_num(linked.change, nan=-1.0), kind="stable")
    if st.session_state.get(FOLLOW_KEY) not in set(ids.tolist()):
        st.session_state[FOLLOW_KEY] = str(ids[order[0]])
    followed = str(st.session_state[FOLLOW_KEY])
    listed = [str(ids[i]) for i in order[:LISTED]]
    if followed not in listed:
        listed.append(followed)
    change = dict(zip(ids.tolist(), linked.change.tolist(), strict=True))
    st.selectbox(f"Follow a sample (the {LISTED} most changed first; or click one in either map)", listed, key=FOLLOW_KEY,
                 format_func=lambda s: f"{s} · change {change[s]:.2f}" if np.isfinite(change[s]) else s)
    return int(np.flatnonzero(ids == followed)[0])


def map_points(session: LakeSession, ref: str, rows: np.ndarray, coords: np.ndarray, change: np.ndarray,
               followed: int, neighbours: np.ndarray) -> pd.DataFrame:
    """One map's drawn points: every shared sample (or a seeded sample of them), the followed one and its
    neighbours last (drawn on top) with their roles."""
    frame = session.frame(ref)
    n = len(rows)
    keep = np.arange(n) if n <= MAX_DRAWN else np.sort(np.random.default_rng(0).choice(n, MAX_DRAWN, replace=False))
    role = np.full(n, "point", dtype=object)
    role[neighbours] = "knn"
    role[followed] = "selected"
    keep = np.concatenate([np.setdiff1d(keep, [*neighbours, followed]), neighbours, [followed]])
    picked = rows[keep]
    return pd.DataFrame({
        "x": coords[keep, 0], "y": coords[keep, 1], "sample_id": frame.sample_id[picked].astype(object),
        "class": [session.classes.label(int(c)) if 0 <= int(c) < 1000 else str(int(c)) for c in frame.class_id[picked]],
        "change": change[keep], "role": role[keep],
    })


def map_spec(title: str, renderer: str) -> dict[str, Any]:
    """A scatter of `points` coloured by neighbourhood change; the followed sample ringed, its neighbours circled."""
    import altair as alt

    x, y = alt.X("x:Q", title=None, scale=alt.Scale(zero=False)), alt.Y("y:Q", title=None, scale=alt.Scale(zero=False))
    pick = alt.selection_point(name=charts.PICK, fields=["sample_id"], on="click", clear=False)
    tooltip = [alt.Tooltip("sample_id:N", title="sample id"), alt.Tooltip("class:N"), alt.Tooltip("change:Q", format=".2f")]
    points = alt.Chart(alt.Data(name="points")).mark_circle(size=30, opacity=0.8, aria=renderer == "svg").encode(
        x=x, y=y, tooltip=tooltip,
        color=alt.Color("change:Q", title="neighbourhood change", scale=alt.Scale(domain=[0, 1], scheme="viridis")),
    ).add_params(pick)
    rings = alt.Chart(alt.Data(name="points")).transform_filter("datum.role !== 'point'").mark_point(
        size=140, strokeWidth=2.5, filled=False, aria=renderer == "svg").encode(
        x=x, y=y, tooltip=tooltip,
        color=alt.Color("role:N", scale=alt.Scale(domain=["selected", "knn"], range=[charts.SELECTED_FILL, "#e69f00"]),
                        legend=alt.Legend(title=None, labelExpr="datum.label === 'knn' ? 'its nearest' : 'followed'")),
    )
    chart = alt.layer(points, rings).resolve_scale(color="independent").properties(
        title=title, height=420, usermeta={"embedOptions": {"renderer": renderer}})
    return chart.to_dict()


def linked_maps_section(session: LakeSession) -> None:
    """The section: pick a compared pair of keys, follow a sample through both maps."""
    st.subheader("Linked maps")
    pairs = linked_pairs(session)
    if not pairs:
        st.caption("No two models' maps are linked yet: compare two keys with `python -m analysis neighbourhood --lake "
                   f"{session.path} --keys FIRST_KEY,SECOND_KEY` (each key needs a 2-D embedding: `analysis run`).")
        return
    labels = [p.label for p in pairs]
    if st.session_state.get(PAIR_KEY) not in labels:
        st.session_state[PAIR_KEY] = labels[0]
    pair = pairs[labels.index(st.selectbox("Compared keys", labels, key=PAIR_KEY))]
    linked = load_linked(session, pair)
    followed = followed_index(linked, session, pair)
    first, second = session.frame(pair.first_ref), session.frame(pair.second_ref)
    near_first = activation_neighbours(session, pair.first_ref, int(linked.first_rows[followed]), K)
    near_second = activation_neighbours(session, pair.second_ref, int(linked.second_rows[followed]), K)
    index_first = {int(r): i for i, r in enumerate(linked.first_rows)}
    index_second = {int(r): i for i, r in enumerate(linked.second_rows)}
    knn_first = np.array([index_first[int(r)] for r in near_first.rows if int(r) in index_first], dtype=np.int64)
    knn_second = np.array([index_second[int(r)] for r in near_second.rows if int(r) in index_second], dtype=np.int64)
    shared = len(set(knn_first.tolist()) & set(knn_second.tolist()))
    st.caption(f"{len(linked.first_rows):,} samples in both maps; the second map is rotated, scaled and shifted onto the first "
               f"(orthogonal Procrustes on them; residual {linked.alignment.residual:.2f} map units). Colour: the stored "
               f"neighbourhood change (`{pair.group}`). The followed sample's {K} nearest samples in each model's own "
               f"activation space: **{shared} of {K} the same** in both.")
    coords = (first.coords[linked.first_rows], linked.alignment.apply(second.coords[linked.second_rows]))
    renderer = charts.renderer_for(min(len(linked.first_rows), MAX_DRAWN))
    columns = st.columns(2)
    for column, key, title, rows, xy, knn, ref in zip(
            columns, MAP_KEYS, (pair.first_key, f"{pair.second_key} (aligned)"), (linked.first_rows, linked.second_rows),
            coords, (knn_first, knn_second), (pair.first_ref, pair.second_ref), strict=True):
        points = map_points(session, ref, rows, xy, linked.change, followed, knn)
        with column:
            st.vega_lite_chart(spec=charts.with_datasets(map_spec(title, renderer), points=points), on_select="rerun",
                               selection_mode=[charts.PICK], key=key, width="stretch")
