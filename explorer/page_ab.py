"""The A/B page: two models' images of the same noise and class side by side, rated blind, with win rates.

For each pair (`explorer.ab_pairs`: e.g. the student's one-step sample and the teacher's
Heun sample of the same seed, index and class) the page shows both images on sides drawn
per pair, their layers' activations on the same first input, and three buttons. Each
rating is appended to the lake's ``ratings`` table and committed at once (`lake.append_rating`),
with the rater's name and the time; the page reports the first model's win rate with a
Wilson 95% interval and exports the ratings as CSV. Offered when the lake holds such pairs.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from explorer.ab_pairs import (
    Pairing,
    activation_difference,
    bare_layer,
    find_pairings,
    left_side,
    sample_model_of_table,
    win_rate,
)
from explorer.details import upscale
from explorer.session import LakeSession
from explorer.tables import table_ids
from lake import LakeLockedError, Rating, append_rating, read_ratings
from lake.layout import GENERATION_GROUP, generation_group, trajectory_layer_group

PAIRING_KEY, PAIR_KEY, RATER_KEY, NOTE_KEY = "w_ab_pairing", "w_ab_pair", "w_ab_rater", "ab_note"
SCALE = 4  # 64 px images shown at 256 px, nearest neighbour


def pairings(session: LakeSession) -> list[Pairing]:
    """The lake's pairings of two generated models (read once per commit)."""
    def compute() -> list[Pairing]:
        lake = session.lake
        return find_pairings(lake.column("samples", "sample_id").tolist(), lake.column("samples", "class_id").tolist())

    return session.memo("ab_pairings", compute)


def model_label(session: LakeSession, sample_model: str) -> str:
    """A samples/model_id as people name it: the registered model's name and how it sampled
    (``teacher (heun8)``, ``micro (one step)``); the id itself for an unregistered model."""
    base, _, schedule = sample_model.partition("~")
    names = session.memo("ab_model_names", lambda: {record.model_id: record.name for record in session.lake.models()})
    return f"{names.get(base, base)} ({schedule or 'one step'})"


def offered(session: LakeSession) -> bool:
    """Whether the lake holds pairs to rate."""
    return bool(pairings(session))


def layer_tables(session: LakeSession) -> dict[str, dict[str, tuple[str, bool]]]:
    """For each samples/model_id, its layers' generation-pass tables: bare layer -> (group, per-step table)."""
    def compute() -> dict[str, dict[str, tuple[str, bool]]]:
        lake = session.lake
        found: dict[str, dict[str, tuple[str, bool]]] = {}
        names = [record.name for record in lake.models()]
        for layer in lake.children(GENERATION_GROUP):
            group = generation_group(layer)
            found.setdefault(sample_model_of_table(lake.attrs(group), None), {})[bare_layer(layer, names)] = (group, False)
        for schedule in lake.schedules():
            for layer in lake.trajectory_layers(schedule):
                group = trajectory_layer_group(schedule, layer)
                found.setdefault(sample_model_of_table(lake.attrs(group), schedule), {})[bare_layer(layer, names)] = (group, True)
        return found

    return session.memo("ab_layer_tables", compute)


def first_pass_means(session: LakeSession, group: str, per_step: bool, sample_id: str) -> np.ndarray | None:
    """A sample's channel means in `group` on its first network pass (step 0 of a per-step table)."""
    ids = session.memo(("ab_ids", group), lambda: table_ids(session.lake, group))
    rows = np.flatnonzero(ids == sample_id)
    if not len(rows):
        return None
    values = np.asarray(session.lake.column(group, "mean", rows=[int(rows[0])]), dtype=np.float32)[0]
    return values[0] if per_step else values


def differences(session: LakeSession, pairing: Pairing, pair: int) -> pd.DataFrame:
    """One row per layer both models stored: how far apart their activations are on the pair's first input."""
    tables = layer_tables(session)
    first, second = tables.get(pairing.first_model, {}), tables.get(pairing.second_model, {})
    rows = []
    for layer in sorted(first.keys() & second.keys()):
        a = first_pass_means(session, *first[layer], pairing.first_ids[pair])
        b = first_pass_means(session, *second[layer], pairing.second_ids[pair])
        if a is not None and b is not None and a.shape == b.shape:
            relative, cosine = activation_difference(a, b)
            rows.append({"layer": layer, "relative difference": relative, "cosine similarity": cosine})
    return pd.DataFrame(rows, columns=["layer", "relative difference", "cosine similarity"])


def _rate(path: str, pairing: Pairing, pair: int, clicked: str, names: tuple[str, str]) -> None:
    """Button callback: store the rating of the side clicked ("left", "right" or "tie"), then go to the next pair."""
    left = left_side(pairing.first_ids[pair], pairing.second_ids[pair])
    right = "second" if left == "first" else "first"
    choice = {"left": left, "right": right, "tie": "tie"}[clicked]
    rating = Rating(pairing.first_ids[pair], pairing.second_ids[pair], pairing.first_model, pairing.second_model,
                    choice, left, str(st.session_state.get(RATER_KEY, "")))
    try:
        stored = append_rating(path, rating)
    except (LakeLockedError, ValueError) as exc:
        st.session_state[NOTE_KEY] = ("warning", f"Not saved: {exc}")
        return
    on_left, on_right = names if left == "first" else names[::-1]
    sides = f"Image 1 was {on_left}, Image 2 was {on_right}"
    picked = "about the same" if choice == "tie" else (names[0] if choice == "first" else names[1])
    st.session_state[NOTE_KEY] = ("success", f"Saved pair {pair + 1} for {stored.rater}: {picked}. {sides}.")
    st.session_state[PAIR_KEY] = min(pair + 2, len(pairing))


def ab_page(session: LakeSession) -> None:
    """The page: choose a pairing, rate pairs blind, read the win rate, download the ratings."""
    found = pairings(session)
    labels = [f"{model_label(session, p.first_model)} vs {model_label(session, p.second_model)} · {len(p)} pairs" for p in found]
    if st.session_state.get(PAIRING_KEY) not in labels:
        st.session_state[PAIRING_KEY] = labels[0]
    pairing = found[labels.index(st.selectbox("Models", labels, key=PAIRING_KEY))]
    first, second = model_label(session, pairing.first_model), model_label(session, pairing.second_model)
    st.caption(f"Each pair is **{first}** and **{second}** from the same noise (seed and index) "
               "and class. The sides are shuffled per pair: say which image looks better without knowing which model made "
               "it; the models are named after you rate. Every rating is saved in the lake's `ratings` table at once.")
    st.text_input("Your name (saved with each rating)", key=RATER_KEY, placeholder="e.g. ada")
    if not 1 <= int(st.session_state.get(PAIR_KEY, 1)) <= len(pairing):  # e.g. another pairing with fewer pairs
        st.session_state[PAIR_KEY] = 1
    pair = int(st.number_input(f"Pair (1 to {len(pairing)})", min_value=1, max_value=len(pairing), step=1, key=PAIR_KEY)) - 1
    note = st.session_state.pop(NOTE_KEY, None)
    if note is not None:
        (st.success if note[0] == "success" else st.warning)(note[1])

    first_id, second_id = pairing.first_ids[pair], pairing.second_ids[pair]
    left = left_side(first_id, second_id)
    shown = [first_id, second_id] if left == "first" else [second_id, first_id]
    images = session.images(session.sample_rows(shown))
    class_id = pairing.class_ids[pair]
    st.markdown(f"**Class {session.classes.label(class_id)}**")
    columns = st.columns(2)
    for k, column in enumerate(columns):
        # PNG: judged by their pixels, so never through JPEG's artefacts (Streamlit's default for arrays)
        column.image(upscale(images[k], SCALE), caption=f"Image {k + 1}", output_format="PNG")
    named = bool(str(st.session_state.get(RATER_KEY, "")).strip())
    buttons = st.columns(3)
    for column, (text, clicked) in zip(buttons, [("Image 1 is better", "left"), ("About the same", "tie"),
                                                 ("Image 2 is better", "right")], strict=True):
        column.button(text, key=f"ab_{clicked}", disabled=not named, on_click=_rate,
                      args=(str(session.path), pairing, pair, clicked, (first, second)), width="stretch")
    if not named:
        st.caption("Type your name to rate.")

    table = differences(session, pairing, pair)
    if len(table):
        st.markdown("**Activations on the same first input** (the noise at sigma 80 and the class; both samplers start there)")
        st.dataframe(table.style.format({"relative difference": "{:.3f}", "cosine similarity": "{:.3f}"}), hide_index=True)
    _results(session, pairing, (first, second))


def _results(session: LakeSession, pairing: Pairing, names: tuple[str, str]) -> None:
    """The first model's win rate over everyone's latest ratings, and the ratings as CSV."""
    ratings = read_ratings(session.lake)
    rate = win_rate(ratings, pairing.first_model, pairing.second_model)
    st.subheader("Results")
    if not rate.decisive:
        st.caption(f"No decisive ratings of this pairing yet ({rate.ties} ties).")
    else:
        st.metric(f"{names[0]} preferred", f"{rate.rate:.0%}",
                  help="share of decisive ratings (ties apart) that preferred the first model")
        st.caption(f"{rate.first_wins} for {names[0]}, {rate.second_wins} for {names[1]}, {rate.ties} "
                   f"ties (each rater's latest rating of each pair); 95% Wilson interval "
                   f"{_percent(rate.low)} to {_percent(rate.high)}.")
    if ratings:
        frame = pd.DataFrame([vars(r) for r in ratings])
        st.download_button("Download the ratings (CSV)", frame.to_csv(index=False).encode(), file_name="ratings.csv",
                           mime="text/csv", key="ab_download")


def _percent(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.0%}"
