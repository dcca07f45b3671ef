"""The Explore page's scatter on the GPU: what the page sends the WebGL component each run.

`gl_message` assembles one small message (URLs of the per-point arrays, the selection's
marks, placed samples and their lineage, the colour legend); the arrays themselves go to
the data server's blob store once per (embedding, colouring, filter) and the browser
fetches them by URL. `gl_click` turns a click event back into a sample id.
"""
from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import numpy as np

from explorer import charts, point_sets, prompts, scatter_gl, views
from explorer.columns import NO_CLASS
from explorer.frames import EmbeddingFrame
from explorer.scatter_gl import GLPoints
from explorer.session import LakeSession
from explorer.state import ViewState
from explorer.thumbs import ThumbnailServer


def points_token(session: LakeSession, view: ViewState) -> str:
    """Names the drawn points (this lake commit's session, embedding and rotation) in events and hover URLs."""
    return hashlib.blake2b(repr((id(session), view.embedding, view.rotation)).encode(), digest_size=8).hexdigest()


def _points(session: LakeSession, server: ThumbnailServer, frame: EmbeddingFrame, view: ViewState, xy: np.ndarray) -> GLPoints:
    token = points_token(session, view)
    key = ("gl_points", view.embedding, view.rotation, id(server))
    points: GLPoints = session.memo(key, lambda: scatter_gl.gl_points(server, xy, frame.sample_row, token))
    if not scatter_gl.still_served(server, [points.x, points.y, points.rows]):  # dropped from a full store: put again
        points = scatter_gl.gl_points(server, xy, frame.sample_row, token)
    server.facts.register(token, frame.size, hover_facts(session, frame, view.embedding))
    return points


def hover_facts(session: LakeSession, frame: EmbeddingFrame, ref: str) -> Any:
    """The tooltip lines of one point, as the Vega scatter's tooltip gives them."""
    has_prompts = prompts.has_t2i(session)

    def facts(row: int) -> dict[str, Any]:
        record: dict[str, Any] = {}
        if has_prompts:
            record["prompt"] = str(prompts.hover_prompts(session, frame, ref, np.array([row]))[0])
        class_id = int(frame.class_id[row])
        record["class"] = session.classes.label(class_id) if 0 <= class_id < 1000 else NO_CLASS
        record["source"] = str(frame.sources[frame.source_code[row]])
        record["sample id"] = str(frame.sample_id[row])
        if frame.is_placed(row):
            record["placement"] = session.placed_lineage(ref).placement(row - frame.n_fitted)
        return record

    return facts


def gl_message(
    session: LakeSession,
    server: ThumbnailServer,
    frame: EmbeddingFrame,
    view: ViewState,
    xy: np.ndarray,
    visible: np.ndarray,
    colour: dict[str, Any],
    roles: dict[int, str],
) -> dict[str, Any]:
    """Everything the component needs this run; only `marks` changes on a click."""
    points = _points(session, server, frame, view, xy)
    placed = None
    if frame.n_placed:
        lineage = session.placed_lineage(view.embedding)
        placed = {
            "rows": [int(r) for r in range(frame.n_fitted, frame.size) if visible[r]],
            "lines": [[int(c), int(p)] for c, p in zip(lineage.child_rows, lineage.parent_rows) if visible[c]],
        }
    return {
        "module": scatter_gl.script_url(server),
        "token": points.token,
        "height": scatter_gl.HEIGHT,
        "points": points.message(),
        "colour": colour,
        "filter": scatter_gl.gl_filter(server, visible),
        "window": list(view.window) if view.window else None,
        "marks": scatter_gl.gl_marks(roles),
        "placed": placed,
        "sets": [
            {"name": s.name, "colour": charts.OKABE_ITO[i % len(charts.OKABE_ITO)], "polygon": [list(p) for p in s.polygon]}
            for i, s in enumerate(view.sets) if s.embedding == view.embedding
        ],
        "thumbs": server.base_url,
        "meta": f"{server.origin}/facts/{points.token}/",
    }


def gl_colour_message(server: ThumbnailServer, colour: charts.ColorSpec, column: Any, n: int, memo: Any, key: Any) -> dict[str, Any]:
    """The colour message, memoised per colouring (a rerun for a click reuses it)."""
    message: dict[str, Any] = memo(("gl_colour", key, id(server)), lambda: scatter_gl.gl_colours(server, colour, column, n))
    if not scatter_gl.still_served(server, [message["url"]]):
        message = scatter_gl.gl_colours(server, colour, column, n)
    return message


def gl_click(frame: EmbeddingFrame, session: LakeSession, view: ViewState, session_state: Any) -> str | None:
    """The sample id a click on the WebGL scatter chose for this run, or None."""
    index = scatter_gl.pending_click(session_state, points_token(session, view), frame.size)
    return None if index is None else str(frame.sample_id[index])


def gl_lasso(frame: EmbeddingFrame, session: LakeSession, view: ViewState, session_state: Any) -> ViewState:
    """The view with the set a lasso drew on the WebGL scatter this run (unchanged without one)."""
    polygon = scatter_gl.pending_lasso(session_state, points_token(session, view))
    if polygon is None:
        return view
    x0, x1, y0, y1 = session.memo(("extent", view.embedding, view.rotation), lambda: views.data_extent(views.plotted_xy(frame.coords, view.rotation)))
    return point_sets.add_set(view, polygon, max(x1 - x0, y1 - y0))


def gl_zoom(session: LakeSession, view: ViewState, session_state: Any) -> ViewState:
    """The view after a box zoom (or its reset) on the WebGL scatter this run."""
    zoomed, window = scatter_gl.pending_zoom(session_state, points_token(session, view))
    return replace(view, window=window) if zoomed else view
