"""Generated sets on the Compare models page: stored ``analysis/sets/<key>/<first>__vs__<second>`` tables.

Each table (`python -m analysis sets`) compares two generated sets (two models' samples, or
one model's one-step and multi-step samples) in one key's PCA space: the overall Frechet
distance and precision/recall/density/coverage of the second set against the first, and
the same per class, listed largest distance first and downloadable as CSV.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from analysis import sets_table
from explorer.session import LakeSession

TABLE_KEY = "w_sets_table"
METRICS = ("frechet_distance", "precision", "recall", "density", "coverage")


def stored_sets(session: LakeSession) -> list[str]:
    """Every stored sets comparison's group (read once per commit)."""
    return session.memo("sets_groups", lambda: [g for g in session.lake.results("sets") if session.lake.attrs(g).get("analysis") == "sets"])


def generated_sets_section(session: LakeSession) -> None:
    """Pick a stored comparison; see its overall metrics and its classes, largest Frechet distance first."""
    st.subheader("Generated sets")
    groups = stored_sets(session)
    if not groups:
        st.caption("No generated sets compared yet: `python -m analysis sets --lake "
                   f"{session.path} --layer LAYER --sigma S --models FIRST,SECOND` compares two models' samples (a registered "
                   "name, with ~<schedule> for its multi-step or Heun samples) in that layer's feature space.")
        return
    reports = session.memo("sets_reports", lambda: {g: sets_table(session.lake, g) for g in groups})
    labels = {g: f"{r['second']} against {r['first']} · {r['key']}" for g, r in reports.items()}
    if st.session_state.get(TABLE_KEY) not in groups:
        st.session_state[TABLE_KEY] = groups[0]
    group = str(st.selectbox("Compared sets", groups, format_func=lambda g: labels[g], key=TABLE_KEY))
    report = reports[group]
    overall = report["overall"]
    st.caption(f"**{report['second']}** ({overall['n_second']:,} samples) against **{report['first']}** ({overall['n_first']:,}, the "
               f"reference, as real is on the Real vs generated page), in {report['space']}; k={overall['k']}. Stored in `{group}`.")
    columns = st.columns(len(METRICS))
    for column, name in zip(columns, METRICS, strict=True):
        value = overall.get(name)
        column.metric(name.replace("_", " "), "n/a" if value is None or value != value else f"{value:.3g}")
    classes = pd.DataFrame(report["classes"]).sort_values("frechet_distance", ascending=False, na_position="last")
    st.dataframe(classes, hide_index=True, width="stretch")
    st.download_button("Download the per-class table (CSV)", classes.to_csv(index=False).encode(),
                       file_name=f"sets_{report['first']}_vs_{report['second']}.csv".replace("~", "-"), mime="text/csv", key="sets_download")
