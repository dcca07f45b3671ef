"""Paths across noise levels: one sample's trajectory through a layer's joint embedding, and what the map draws of paths.

A generated multi-step sample's path is its steps (``analysis/trajectory/<layer>/<schedule>``),
every other sample's its probes, always from high sigma to low. Which paths to draw (the
selection's, and its neighbours' when asked) and their vertex and arrow tables live here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from explorer import charts, queries
from explorer.frames import EmbeddingFrame
from explorer.session import LakeSession
from explorer.state import ViewState
from explorer.tables import JointEmbedding, ScheduleSteps

SELECTED_COLOUR = charts.SELECTED_FILL
# Neighbours' paths: light, distinct colours (none is the selection's blue).
LIGHT_COLOURS = ("#f4a582", "#92c5de", "#b8e186", "#c2a5cf", "#fdb863", "#80cdc1", "#f1b6da", "#d9d9d9", "#fddbc7", "#a6dba0")


@dataclass(frozen=True)
class Trajectory:
    """One sample's path across sigma, from high sigma to low."""

    sample_id: str
    sigmas: tuple[float, ...]  # decreasing
    xy: np.ndarray  # (vertices, 2)
    kind: str  # "steps" (a multi-step sample's generation) or "probes"
    schedule: str | None = None


def first_row_of(ids: np.ndarray, sample_id: str) -> int:
    """The first row of `sample_id` in `ids` (-1 when absent)."""
    hits = np.flatnonzero(ids == sample_id)
    return int(hits[0]) if len(hits) else -1


def trajectory_of(joint: JointEmbedding, schedules: dict[str, ScheduleSteps], sample_id: str) -> Trajectory | None:
    """`sample_id`'s path: its steps when it is a multi-step sample, else its probes; None when it has neither.

    Vertices run from the highest sigma to the lowest; (sample, sigma) pairs without
    coordinates (NaN: not probed) are left out.
    """
    for steps in schedules.values():
        row = first_row_of(steps.sample_id, sample_id)
        if row >= 0:
            return _path(sample_id, steps.sigmas, steps.coords[row], "steps", steps.schedule)
    row = first_row_of(joint.sample_id, sample_id)
    if row < 0:
        return None
    return _path(sample_id, joint.sigmas, joint.coords[row], "probes", None)


def _path(sample_id: str, sigmas: np.ndarray, xy: np.ndarray, kind: str, schedule: str | None) -> Trajectory | None:
    order = np.argsort(-np.asarray(sigmas, dtype=np.float64), kind="stable")
    keep = order[np.isfinite(xy[order]).all(axis=1)]
    if len(keep) == 0:
        return None
    return Trajectory(sample_id, tuple(float(sigmas[i]) for i in keep), np.asarray(xy[keep], dtype=np.float32), kind, schedule)


def sigma_label(sigma: float) -> str:
    """'σ=80', 'σ=21.3', 'σ=0.5'."""
    return f"σ={sigma:.3g}"


def paths_frame(paths: list[tuple[Trajectory, str, str]]) -> pd.DataFrame:
    """The vertices of every path, in drawing order: (trajectory, role, colour) -> one row per vertex."""
    rows = []
    for number, (path, role, colour) in enumerate(paths):
        for i, (sigma, (x, y)) in enumerate(zip(path.sigmas, path.xy)):
            rows.append((float(x), float(y), path.sample_id, number, i, sigma, sigma_label(sigma), role, colour, 3.0 if role == "selected" else 2.0))
    columns = ["x", "y", "sample_id", "path", "order", "sigma", "label", "role", "colour", "width"]
    return pd.DataFrame(rows, columns=columns).astype({"x": np.float32, "y": np.float32, "path": np.int32, "order": np.int32})


def arrows_frame(paths: list[tuple[Trajectory, str, str]], extent: tuple[float, float, float, float], width: int, height: int) -> pd.DataFrame:
    """An arrow head at the middle of every segment, turned along it (high sigma to low) on screen.

    Vega's `angle` turns a triangle-up clockwise from pointing up; screen y grows
    downwards, so a segment (dx, dy) in data units heads atan2(dx * sx, dy * sy).
    """
    x0, x1, y0, y1 = extent
    sx, sy = width / (x1 - x0), height / (y1 - y0)
    rows = []
    for path, role, colour in paths:
        for (ax, ay), (bx, by) in zip(path.xy[:-1], path.xy[1:]):
            if ax == bx and ay == by:
                continue
            angle = math.degrees(math.atan2(float(bx - ax) * sx, float(by - ay) * sy)) % 360
            rows.append(((ax + bx) / 2, (ay + by) / 2, path.sample_id, angle, role, colour))
    return pd.DataFrame(rows, columns=["x", "y", "sample_id", "angle", "role", "colour"]).astype({"x": np.float32, "y": np.float32})



def paths_to_draw(session: LakeSession, frame: EmbeddingFrame, view: ViewState, joint: JointEmbedding,
           schedules: dict[str, ScheduleSteps], with_neighbours: bool) -> list[tuple[Trajectory, str, str]]:
    """(trajectory, role, colour) of the selection and, when asked, of its neighbours; the selection first."""
    if not view.selected:
        return []
    def path_of(sample_id: str) -> Trajectory | None:
        # One id scan per sample and layer for the session's life: reruns and neighbours reuse it.
        return session.memo(("joint_path", joint.layer, sample_id), lambda: trajectory_of(joint, schedules, sample_id))

    selected = path_of(view.selected)
    if selected is None:
        return []
    found = [(selected, "selected", SELECTED_COLOUR)]
    if with_neighbours:
        manual = set(view.manual)
        for sample_id in _neighbour_ids(session, frame, view):
            path = path_of(sample_id)
            if path is not None and sample_id != view.selected:
                colour = LIGHT_COLOURS[(len(found) - 1) % len(LIGHT_COLOURS)]
                found.append((path, "manual" if sample_id in manual else "knn", colour))
    return found



def _neighbour_ids(session: LakeSession, frame: EmbeddingFrame, view: ViewState) -> list[str]:
    """The selection's k-NN (as the Explore page finds them for the current key) and its manual neighbours."""
    if not view.selected:
        return []
    row = int(frame.rows_of([view.selected])[0])
    found: list[str] = []
    if row >= 0:
        if view.neighbour_space == "projection":
            neighbours = queries.projection_neighbours(frame, row, view.k)
        else:  # the Explore page's memo key: one query serves both pages
            neighbours = session.memo(("neighbours", view.embedding, row, view.k), lambda: queries.activation_neighbours(session, view.embedding, row, view.k))
        found = [str(i) for i in frame.sample_id[neighbours.rows]]
    return list(dict.fromkeys([*found, *view.manual]))


