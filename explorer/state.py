"""The explorer's view state, its URL encoding, and the click/selection rules.

Everything a researcher would want to share (embedding, colouring, filters, zoom,
selected sample, manual neighbours) is one frozen `ViewState`, encoded into URL query
parameters so that a link reproduces the view. Decoding never raises: a hand-edited
or stale URL falls back to defaults field by field.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

CATEGORICAL_PALETTES = ("okabe-ito", "tableau10", "category20", "dark2", "set2")
CONTINUOUS_PALETTES = ("viridis", "cividis", "magma", "plasma", "turbo")
DEFAULT_CATEGORICAL = "okabe-ito"  # colour-blind safe (Okabe & Ito 2008)
DEFAULT_CONTINUOUS = "viridis"  # perceptually uniform and colour-blind safe
NEIGHBOUR_SPACES = ("activation", "projection")
CLICK_MODES = ("neighbours", "select")
PAGES = ("explore", "compare", "3d", "noise", "prompts", "models", "ab")  # "prompts", "models", "ab": offered only in lakes that have them
MAX_K = 200
MAX_POINTS_LIMIT = 200_000
MAX_PROMPT_SEARCH = 200  # characters of a prompt search (a URL may hold any text)
MAX_SETS = 8  # named sets of points a view keeps (in its URL)
MAX_SET_VERTICES = 64  # a lasso's polygon is simplified to at most this many corners before it is kept
SET_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-.")

Window = tuple[float, float, float, float]  # x0, x1, y0, y1 in plotted coordinates


@dataclass(frozen=True)
class PointSet:
    """A named set of points: the filtered points of `embedding` inside `polygon` (plotted coordinates).

    Kept as its outline, not its members, so a URL can hold it and it means the same on
    any machine with the same lake.
    """

    name: str
    embedding: str
    polygon: tuple[tuple[float, float], ...]


def set_name(text: str, fallback: str) -> str:
    """A set name safe in a URL: letters, digits, space, `_-.`; at most 32 characters; `fallback` when nothing is left."""
    cleaned = "".join(ch for ch in text if ch in SET_NAME_CHARS).strip()[:32]
    return cleaned or fallback


@dataclass(frozen=True)
class ViewState:
    """What is on screen: shared through the URL."""

    embedding: str = ""  # "<key>/<name>"; "" = the first embedding in the lake
    color_by: str = "class"  # "class", "source", "split" or a column ref like "compare.real_fraction"
    palette: str = ""  # "" = colour-blind-safe default for the colour type
    classes: tuple[int, ...] = ()  # empty = every class
    sources: tuple[str, ...] = ()  # empty = every source
    splits: tuple[str, ...] = ()  # empty = every split
    prompt: str = ""  # keep text-to-image samples whose prompt contains this text (any case); "" = no prompt filter
    window: Window | None = None  # zoom window; None = everything
    rotation: tuple[float, float] = (0.0, 0.0)  # azimuth, elevation (degrees) for 3D embeddings
    selected: str | None = None  # sample id of the selected point
    manual: tuple[str, ...] = ()  # sample ids of manually chosen neighbours
    k: int = 10
    neighbour_space: str = "activation"
    max_points: int = 50_000
    page: str = "explore"  # one of PAGES: "explore", "compare" (real vs generated), "3d", "noise", "prompts", "models", "ab"
    sets: tuple[PointSet, ...] = ()  # named sets of points (lasso selections), oldest first

    def with_click(self, sample_id: str, mode: str = "neighbours") -> ViewState:
        """The state after clicking a point.

        In `neighbours` mode the first click selects and later clicks on other points
        toggle them in and out of the manual neighbour set; in `select` mode every
        click selects a new point (and starts a new manual set).
        """
        if mode == "select" or self.selected is None:
            if sample_id == self.selected:
                return self
            return replace(self, selected=sample_id, manual=())
        if sample_id == self.selected:
            return self
        if sample_id in self.manual:
            return replace(self, manual=tuple(m for m in self.manual if m != sample_id))
        return replace(self, manual=(*self.manual, sample_id))

    def cleared(self) -> ViewState:
        """No selected point and no manual neighbours."""
        return replace(self, selected=None, manual=())


def _join(values: tuple[Any, ...]) -> str:
    return ",".join(str(v) for v in values)


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def encode_query_params(state: ViewState) -> dict[str, str]:
    """URL query parameters for a state; defaults are left out to keep links short."""
    default = ViewState()
    params: dict[str, str] = {}
    if state.embedding:
        params["emb"] = state.embedding
    if state.color_by != default.color_by:
        params["color"] = state.color_by
    if state.palette:
        params["palette"] = state.palette
    if state.classes:
        params["classes"] = _join(state.classes)
    if state.sources:
        params["source"] = _join(state.sources)
    if state.splits:
        params["split"] = _join(state.splits)
    if state.prompt:
        params["prompt"] = state.prompt
    if state.window is not None:
        params["win"] = _join(tuple(_fmt(v) for v in state.window))
    if state.rotation != default.rotation:
        params["rot"] = _join(tuple(_fmt(v) for v in state.rotation))
    if state.selected:
        params["sel"] = state.selected
    if state.manual:
        # Sample ids never contain '|' (they are file stems, paths and generator ids).
        params["manual"] = "|".join(state.manual)
    if state.k != default.k:
        params["k"] = str(state.k)
    if state.neighbour_space != default.neighbour_space:
        params["nn"] = state.neighbour_space
    if state.max_points != default.max_points:
        params["pts"] = str(state.max_points)
    if state.page != default.page:
        params["page"] = state.page
    if state.sets:
        params["sets"] = "|".join(f"{s.name}~{s.embedding}~{';'.join(f'{_fmt(x)},{_fmt(y)}' for x, y in s.polygon)}" for s in state.sets)
    return params


def decode_query_params(params: Mapping[str, Any]) -> ViewState:
    """The state a URL describes; malformed fields fall back to their defaults."""

    def get(name: str) -> str:
        value = params.get(name, "")
        if isinstance(value, (list, tuple)):
            value = value[-1] if value else ""
        return str(value).strip()

    default = ViewState()
    values: dict[str, Any] = {}
    values["embedding"] = get("emb")
    values["color_by"] = get("color") or default.color_by
    palette = get("palette")
    values["palette"] = palette if palette in CATEGORICAL_PALETTES + CONTINUOUS_PALETTES else ""
    values["classes"] = tuple(sorted({int(t) for t in get("classes").split(",") if t.strip().isdigit() and int(t) < 1000}))
    values["sources"] = tuple(t for t in get("source").split(",") if t)
    values["splits"] = tuple(t for t in get("split").split(",") if t)
    values["prompt"] = get("prompt")[:MAX_PROMPT_SEARCH]
    values["window"] = _floats(get("win"), 4, ordered_pairs=True)
    rotation = _floats(get("rot"), 2)
    values["rotation"] = rotation if rotation is not None else default.rotation
    values["selected"] = get("sel") or None
    values["manual"] = tuple(dict.fromkeys(t for t in get("manual").split("|") if t and t != values["selected"]))
    values["k"] = _int_in(get("k"), 1, MAX_K, default.k)
    space = get("nn")
    values["neighbour_space"] = space if space in NEIGHBOUR_SPACES else default.neighbour_space
    values["max_points"] = _int_in(get("pts"), 100, MAX_POINTS_LIMIT, default.max_points)
    page = get("page")
    values["page"] = page if page in PAGES else default.page
    values["sets"] = _sets(get("sets"))
    return ViewState(**values)


def _sets(text: str) -> tuple[PointSet, ...]:
    """The sets of a `sets` parameter (`name~embedding~x,y;x,y;...|...`); malformed ones are left out."""
    found: list[PointSet] = []
    for part in text.split("|") if text else []:
        name, _, rest = part.partition("~")
        embedding, _, corners = rest.partition("~")
        polygon = [_floats(corner, 2) for corner in corners.split(";")]
        if name != set_name(name, "") or not embedding or not 3 <= len(polygon) <= MAX_SET_VERTICES or any(p is None for p in polygon):
            continue
        if name not in {s.name for s in found}:
            found.append(PointSet(name, embedding, tuple(polygon)))
    return tuple(found[:MAX_SETS])


def _floats(text: str, count: int, ordered_pairs: bool = False) -> Any:
    parts = text.split(",") if text else []
    if len(parts) != count:
        return None
    try:
        numbers = tuple(float(p) for p in parts)
    except ValueError:
        return None
    if not all(math.isfinite(v) for v in numbers):
        return None
    if ordered_pairs and any(numbers[i] >= numbers[i + 1] for i in range(0, count, 2)):
        return None
    return numbers


def _int_in(text: str, low: int, high: int, default: int) -> int:
    try:
        value = int(text)
    except ValueError:
        return default
    return value if low <= value <= high else default


def brush_window(selection: Mapping[str, Any] | None, x_field: str = "x", y_field: str = "y") -> Window | None:
    """The zoom window of an Altair interval selection (`{"x": [a, b], "y": [c, d]}`), if complete."""
    if not selection:
        return None
    try:
        x0, x1 = sorted(float(v) for v in selection[x_field])
        y0, y1 = sorted(float(v) for v in selection[y_field])
    except (KeyError, TypeError, ValueError):
        return None
    if not (x1 > x0 and y1 > y0) or not all(math.isfinite(v) for v in (x0, x1, y0, y1)):
        return None
    return (x0, x1, y0, y1)


def state_fields() -> list[str]:
    return [f.name for f in fields(ViewState)]
