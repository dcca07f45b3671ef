"""The details panel: the selected sample, its facts and metrics, neighbours and the selection export."""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
import streamlit as st

from explorer import common, export, prompts, queries
from explorer.columns import COMPARE_PREFIX
from explorer.frames import EmbeddingFrame
from explorer.session import LakeSession
from explorer.tables import T2ISample
from explorer.state import ViewState


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling: 64 px images stay sharp at a readable size."""
    return image.repeat(factor, axis=0).repeat(factor, axis=1)


def details_panel(session: LakeSession, frame: EmbeddingFrame, view: ViewState, row: int, neighbours: queries.Neighbours | None) -> None:
    st.subheader("Selected sample")
    if not view.selected:
        st.caption("Click a point to select it; later clicks toggle manual neighbours.")
        return
    if row < 0:
        st.warning(f"Sample `{view.selected}` is not in this embedding.")
        st.button("Clear selection", on_click=common.clear_selection, key="clear")
        return
    sample_row = int(frame.sample_row[row])
    record = session.sample_record(sample_row) if sample_row >= 0 else {}
    t2i = prompts.t2i_sample(session, sample_row)  # read for the selected sample only: native image, previews
    if t2i is not None:
        # Scaled to fit the column when larger than the ImageNet details image; smaller ones (the tiny demo model's) at its size.
        width: Literal["stretch"] | int = "stretch" if max(t2i.image.shape[:2]) > FIT_MIN else FIT_MIN
        st.image(fit_image(t2i.image), width=width, caption=f"{t2i.model} · {t2i.image.shape[1]}×{t2i.image.shape[0]}")
    elif sample_row >= 0:
        st.image(upscale(session.images(np.array([sample_row]))[0], 4), width=256, caption=common.class_label(session, frame.class_id[row]),
                 output_format="PNG")
    facts = sample_facts(session, frame, view.embedding, row, record)
    if t2i is not None:
        facts = t2i_facts(t2i) + [f for f in facts if f[0] not in T2I_REPLACED]
    st.markdown("  \n".join(f"**{label}**: {text}" for label, text in facts))
    if t2i is not None:
        step_previews(t2i)
    st.button("Clear selection and manual neighbours", on_click=common.clear_selection, key="clear")

    manual_rows = frame.rows_of(list(view.manual))
    manual_rows = manual_rows[manual_rows >= 0]
    manual_d = queries.activation_distances(session, view.embedding, row, manual_rows)
    if neighbours is not None:
        st.markdown(f"**{len(neighbours)} nearest neighbours** · {neighbours.space}")
        if neighbours.note:
            st.caption(neighbours.note)
        _thumb_grid(session, frame, neighbours.rows, neighbours.distances, "nn")
    if len(manual_rows):
        st.markdown(f"**{len(manual_rows)} manual neighbours**" + (" · distance in activation space (PCA scores)" if manual_d is not None else ""))
        d = manual_d if manual_d is not None else np.sqrt(((frame.coords[manual_rows] - frame.coords[row]) ** 2).sum(axis=1))
        _thumb_grid(session, frame, manual_rows, d, "manual")
    table = export.selection_frame(
        frame,
        session.classes,
        row,
        neighbours.rows if neighbours is not None else np.zeros(0, np.int64),
        neighbours.distances if neighbours is not None else np.zeros(0, np.float32),
        neighbours.space if neighbours is not None else "",
        manual_rows,
        manual_d,
        prompts.export_columns(session, frame, view.embedding),
    )
    st.download_button(
        "Export selection (CSV)",
        data=export.to_csv(table),
        file_name=f"selection-{_safe(view.selected)}.csv",
        mime="text/csv",
        on_click="ignore",
        key="export_selection",
    )


def sample_facts(session: LakeSession, frame: EmbeddingFrame, ref: str, row: int, record: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, Markdown text) pairs describing embedding row `row`: labels, provenance and per-sample metrics.

    Every value goes through `common.format_value`, so numeric, bool and string columns
    (and their missing values) all show; ids and origins are code spans.
    """
    seed = record.get("seed")
    facts = [
        ("sample id", _code(str(frame.sample_id[row]))),
        ("class", common.class_label(session, frame.class_id[row])),
        ("source", common.markdown_text(frame.sources[frame.source_code[row]])),
        ("split", common.markdown_text(frame.splits[frame.split_code[row]])),
        ("origin", _code(common.format_value(record.get("origin")))),
        ("seed", common.format_value(seed if isinstance(seed, (int, np.integer)) and seed >= 0 else None)),
        ("model", common.markdown_text(common.format_value(record.get("model_id")))),
        ("coordinates", ", ".join(f"{float(v):.3f}" for v in frame.coords[row])),
    ]
    if frame.is_placed(row):
        # Placed after the fit, through the stored PCA and embedding: its position is an estimate, not part of the fit.
        lineage = session.placed_lineage(ref)
        index = int(row) - frame.n_fitted
        facts.append(("placement", "placed, not fitted (projected into the stored embedding)"))
        parents = [p for p in str(lineage.parent_ids[index]).split(",") if p]
        if parents:
            made = common.markdown_text(str(lineage.operation[index]) or "edit")
            facts.append(("made by", f"{made} of " + ", ".join(_code(p) for p in parents)))
    for column in session.columns(ref):
        if column.group.startswith(COMPARE_PREFIX) and column.name not in common.LABEL_COLUMNS:
            value = session.column_values(ref, column.ref)[row]
            facts.append((column.name.replace("_", " "), common.markdown_text(common.format_value(value))))
    return facts


# Facts a text-to-image sample's own facts replace (its seed and model are in `t2i_facts`).
T2I_REPLACED = frozenset({"seed", "model"})
FIT_MIN = 256  # a smaller native image (the tiny demo model's 64 px) is enlarged, sharp, to at least this size


def fit_image(image: np.ndarray) -> np.ndarray:
    """The native image for a column-wide `st.image`: small images enlarged by a whole factor (nearest
    neighbour), large ones left for the browser to scale down to fit."""
    factor = max(1, FIT_MIN // max(image.shape[0], image.shape[1], 1))
    return upscale(image, factor) if factor > 1 else image


def t2i_facts(sample: T2ISample) -> list[tuple[str, str]]:
    """(label, Markdown text) pairs of a text-to-image sample: prompt coordinates, then the model identity."""
    timesteps = ", ".join(str(t) for t in sample.timesteps) or common.MISSING
    if sample.sigmas:
        timesteps += " (sigma " + ", ".join(f"{s:.3g}" for s in sample.sigmas) + ")"
    facts = [
        ("prompt", common.markdown_text(sample.prompt) or common.MISSING),
        ("negative prompt", common.markdown_text(sample.negative_prompt) if sample.negative_prompt else common.MISSING),
        ("prompt id", _code(sample.prompt_id or common.MISSING)),
        ("guidance", common.format_value(sample.guidance)),
        ("seed · index", f"{sample.seed} · {sample.index}"),
        ("timesteps", timesteps),
        ("model", _code(sample.model)),
    ]
    return facts + [(label, common.markdown_text(text)) for label, text in prompts.identity_facts(sample.identity)]


def step_previews(sample: T2ISample) -> None:
    """The decoded x0 of every step with its timestep (nothing when the lake stores no previews)."""
    if sample.previews is None:
        return
    st.markdown(f"**Steps** · the x0 estimate after each of the {len(sample.previews)} steps")
    steps = list(sample.timesteps) if len(sample.timesteps) == len(sample.previews) else list(range(len(sample.previews)))
    labels = [f"t={t}" + (f" · σ={sample.sigmas[i]:.3g}" if sample.sigmas else "") for i, t in enumerate(steps)]
    width = max(64, min(128, 320 // len(sample.previews)))  # four steps fit one row of the details column
    st.image([fit_image(p) if p.shape[0] < width else p for p in sample.previews], width=width, caption=labels)


def _code(text: str) -> str:
    """A Markdown code span that holds any text (backticks in it included)."""
    if text == common.MISSING:
        return text
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _thumb_grid(session: LakeSession, frame: EmbeddingFrame, rows: np.ndarray, distances: np.ndarray, key: str) -> None:
    if len(rows) == 0:
        return
    sample_rows = frame.sample_row[rows]
    ok = sample_rows >= 0
    images = session.images(sample_rows[ok]) if ok.any() else np.zeros((0, 64, 64, 3), np.uint8)
    ref = frame.info.ref
    captions = [
        f"{prompts.row_label(session, frame, ref, int(r))} · {frame.sources[frame.source_code[r]]} · d={float(d):.3g}"
        for r, d in zip(rows[ok], np.asarray(distances)[ok])
    ]
    st.image([upscale(img, 2) for img in images], width=112, caption=captions, output_format="PNG")


def _safe(text: str | None) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in (text or ""))[:80]
