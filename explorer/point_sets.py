"""Sets of points (the original tool's batch neighbour analysis): who is in a set, what it holds, how two differ.

A set is a lasso's outline on one embedding (`explorer.state.PointSet`); its members are
the filtered points inside it. Its summary counts members by class, source, split and
model, gives the real fraction, the members nearest the set's centre in the key's PCA
space, and how many of the members' stored k nearest neighbours are members too; two
sets compare by class histogram and by the Frechet distance of Gaussians fitted to their
PCA scores (`analysis.metrics`, the same estimator the real-vs-generated table uses).

Statistics read at most `MAX_STAT_ROWS` members, evenly spaced over the set in embedding
order (no random draw: the same set always gives the same numbers). No Streamlit here.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

import numpy as np

from analysis.metrics import frechet_distance_of
from explorer.columns import NO_CLASS
from explorer.frames import EmbeddingFrame
from explorer.session import LakeSession
from explorer.state import MAX_SET_VERTICES, MAX_SETS, PointSet, ViewState

MAX_STAT_ROWS = 20_000  # members read for PCA statistics and k-NN overlap
CENTRAL = 8  # members shown as the set's most central images
SIMPLIFY = 0.002  # first tolerance of a lasso's simplification, as a fraction of the map's span


def simplify(polygon: np.ndarray, span: float) -> tuple[tuple[float, float], ...]:
    """A lasso's polygon with at most `MAX_SET_VERTICES` corners (Douglas-Peucker, scikit-image)."""
    from skimage.measure import approximate_polygon

    closed = np.vstack([polygon, polygon[:1]]).astype(np.float64)
    tolerance = max(span, 1e-12) * SIMPLIFY
    simple = approximate_polygon(closed, tolerance)
    while len(simple) - 1 > MAX_SET_VERTICES:
        tolerance *= 2
        simple = approximate_polygon(closed, tolerance)
    corners = simple[:-1] if len(simple) > 1 and np.array_equal(simple[0], simple[-1]) else simple
    return tuple((float(x), float(y)) for x, y in corners)


def add_set(view: ViewState, polygon: np.ndarray, span: float) -> ViewState:
    """The view with a new set drawn on its embedding ("set N", one past the highest N kept); the oldest go beyond `MAX_SETS`."""
    numbers = [int(s.name[4:]) for s in view.sets if s.name.startswith("set ") and s.name[4:].isdigit()]
    number = max(numbers, default=0) + 1
    new = PointSet(f"set {number}", view.embedding, simplify(polygon, span))
    return replace(view, sets=(*view.sets, new)[-MAX_SETS:])


def remove_set(view: ViewState, name: str) -> ViewState:
    return replace(view, sets=tuple(s for s in view.sets if s.name != name))


def points_in_polygon(xy: np.ndarray, polygon: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """The rows among `candidates` (a boolean mask) whose 2D coordinates lie inside `polygon`."""
    from skimage.measure import points_in_poly

    rows = np.flatnonzero(candidates)
    low, high = polygon.min(axis=0), polygon.max(axis=0)
    near = rows[np.all((xy[rows, :2] >= low) & (xy[rows, :2] <= high), axis=1)]  # the bounding box first: cheap
    inside = points_in_poly(np.asarray(xy[near, :2], dtype=np.float64), np.asarray(polygon, dtype=np.float64))
    return near[inside]


def set_rows(xy: np.ndarray, mask: np.ndarray, point_set: PointSet) -> np.ndarray:
    """The members of a set: filtered rows (`mask`) inside its outline."""
    return points_in_polygon(xy, np.asarray(point_set.polygon, dtype=np.float64), mask)


def stat_rows(rows: np.ndarray) -> np.ndarray:
    """At most `MAX_STAT_ROWS` of `rows`, evenly spaced (deterministic)."""
    if len(rows) <= MAX_STAT_ROWS:
        return rows
    return rows[np.linspace(0, len(rows) - 1, MAX_STAT_ROWS).astype(np.int64)]


@dataclass(frozen=True)
class SetSummary:
    """What one set holds."""

    name: str
    size: int
    by_class: list[tuple[str, int]]  # most frequent first
    by_source: list[tuple[str, int]]
    by_split: list[tuple[str, int]]
    by_model: list[tuple[str, int]]  # the generating model of each member (explorer.prompts.NO_MODEL for real images)
    real_fraction: float
    central_rows: np.ndarray  # embedding rows nearest the set's centre (PCA space, else the map), nearest first
    central_space: str  # "PCA" or "map"
    knn_inside: float | None  # fraction of the members' stored k-NN neighbours that are members (None: no graph)


def _counts(labels: np.ndarray) -> list[tuple[str, int]]:
    return sorted(Counter(str(v) for v in labels).items(), key=lambda item: (-item[1], item[0]))


def pca_scores(session: LakeSession, ref: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(rows with scores, their PCA scores) for embedding rows, from the key's stored PCA table; None without one."""
    info = session.embedding(ref)
    group = session.group_for("pca", info.key)
    if not group or session.lake.shape(group, "scores") is None:
        return None
    table_rows = session.table_rows(group, ref)[rows]
    have = table_rows >= 0
    order = np.argsort(table_rows[have], kind="stable")  # read in table order
    scores = np.asarray(session.lake.column(group, "scores", table_rows[have][order]), dtype=np.float64)
    return rows[have][order], scores


def knn_inside(session: LakeSession, ref: str, rows: np.ndarray, members: np.ndarray) -> float | None:
    """The fraction of `rows`' stored k nearest neighbours that are in `members` (embedding rows)."""
    group = session.group_for("knn", session.embedding(ref).key)
    if not group or len(rows) == 0:
        return None
    table_rows = session.table_rows(group, ref)[rows]
    table_rows = np.sort(table_rows[table_rows >= 0])
    if len(table_rows) == 0:
        return None
    neighbour_rows = np.asarray(session.lake.column(group, "neighbor_row", table_rows), dtype=np.int64)
    inverse = session.table_to_embedding(group, ref)
    valid = (neighbour_rows >= 0) & (neighbour_rows < len(inverse))
    embedded = np.where(valid, inverse[np.clip(neighbour_rows, 0, len(inverse) - 1)], -1)
    known = embedded >= 0
    return float(np.isin(embedded[known], members).mean()) if known.any() else None


def summarise(session: LakeSession, frame: EmbeddingFrame, ref: str, name: str, rows: np.ndarray, model_of: np.ndarray | None) -> SetSummary:
    """The summary of the set `name` whose members are `rows` (`model_of`: each embedding row's model id, or None)."""
    classes = [session.classes.label(int(c)) if 0 <= int(c) < 1000 else NO_CLASS for c in frame.class_id[rows]]
    sources = np.asarray(frame.sources, dtype=object)[frame.source_code[rows]]
    splits = np.asarray(frame.splits, dtype=object)[frame.split_code[rows]]
    models = model_of[rows] if model_of is not None else np.array([], dtype=object)
    sample = stat_rows(rows)
    scored = pca_scores(session, ref, sample) if len(sample) else None
    if scored is not None and len(scored[0]):
        where, points, space = scored[0], scored[1], "PCA"
    else:
        where, points, space = sample, np.asarray(frame.coords[sample], dtype=np.float64), "map"
    if len(where):
        distance = np.linalg.norm(points - points.mean(axis=0), axis=1)
        central = where[np.argsort(distance, kind="stable")[:CENTRAL]]
    else:
        central = np.zeros(0, np.int64)
    return SetSummary(
        name, len(rows), _counts(np.asarray(classes, dtype=object)), _counts(sources), _counts(splits), _counts(models),
        float(np.mean(sources == "real")) if len(rows) else 0.0, central, space, knn_inside(session, ref, sample, rows),
    )  # fmt: skip


def frechet_between(session: LakeSession, ref: str, rows_a: np.ndarray, rows_b: np.ndarray) -> float | None:
    """The Frechet distance between Gaussians fitted to two sets' PCA scores (None: no PCA, or fewer than 2 members)."""
    a, b = pca_scores(session, ref, stat_rows(rows_a)), pca_scores(session, ref, stat_rows(rows_b))
    if a is None or b is None or len(a[0]) < 2 or len(b[0]) < 2:
        return None
    return frechet_distance_of(a[1], b[1])
