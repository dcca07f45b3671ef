"""The Explore scatter's spec, its click bookkeeping and its readable legend for 1000 classes (pure functions)."""
from __future__ import annotations

import json

import pytest

from explorer import charts
from lake import imagenet_classes

EXTENT = (-1.0, 1.0, -2.0, 2.0)


def _layers(spec: dict) -> dict[str, dict]:
    return {layer["data"]["name"]: layer for layer in spec["layer"]}


def test_selection_is_a_separate_small_layer_over_points_that_know_nothing_of_it():
    colour = charts.legend_colour_spec("class", "", ("1: goldfish", "9: ostrich"), has_other=False)
    spec = charts.scatter_spec(colour, EXTENT, "http://127.0.0.1:1/thumb/", True, "canvas")
    layers = _layers(spec)
    assert list(layers) == ["cells", "points", "marks"]  # density under points under highlights
    points, marks = layers["points"], layers["marks"]
    assert "role" not in json.dumps(points)  # a click must not change what the points layer reads
    assert points["encoding"]["color"]["field"] == "colour"
    assert marks["encoding"]["size"]["field"] == "role"
    assert marks["encoding"]["size"]["scale"]["domain"] == list(charts.MARK_ROLES)
    assert charts.SELECTED_FILL in json.dumps(marks["encoding"]["color"])
    # both layers share the colour scale, so a ringed neighbour keeps its class colour
    assert marks["encoding"]["color"]["field"] == "colour"
    assert marks["encoding"]["color"]["legend"] is None  # one legend, from the points layer
    assert spec["usermeta"]["embedOptions"]["renderer"] == "canvas"
    # no per-point ARIA description on canvas: one expression less per point in Vega's interpreter
    assert points["mark"]["aria"] is False and layers["cells"]["mark"]["aria"] is False


def test_the_click_selection_toggles_and_lives_on_the_points_layer():
    spec = charts.scatter_spec(charts.ColorSpec("value", "real fraction", False), EXTENT, "http://x/thumb/", False, "svg")
    (param,) = spec["params"]
    assert param["name"] == charts.PICK
    assert param["select"] == {"type": "point", "clear": False, "fields": ["sample_id"], "on": "click", "toggle": "true"}
    points = _layers(spec)["points"]
    assert param["views"] == [points["name"]]
    assert [layer["data"]["name"] for layer in spec["layer"]] == ["points", "marks"]  # no density without sampling
    assert points["mark"]["aria"] is True  # SVG keeps its accessible descriptions


def test_a_click_is_the_one_id_the_toggling_selection_gained_or_lost():
    seen = charts.PickSeen()
    clicked, seen = seen.update(("a",))
    assert clicked == "a"
    clicked, seen = seen.update(("a",))  # a rerun for another reason: the selection did not change
    assert clicked is None
    clicked, seen = seen.update(())  # the same point clicked again toggles it out: still a click on it
    assert clicked == "a"
    clicked, seen = seen.update(("a",))  # and a third time
    assert clicked == "a"
    clicked, seen = seen.update(("a", "b"))
    assert clicked == "b"
    # a new spec: the browser's new view starts with an empty selection while the widget
    # state still holds the old one until the next click
    seen = seen.rebuilt()
    clicked, seen = seen.update(("a", "b"))
    assert clicked is None
    clicked, seen = seen.update(("c",))
    assert clicked == "c"


@pytest.mark.parametrize(
    ("before", "after", "clicked"),
    [((), ("x",), "x"), (("x", "y"), ("x",), "y"), (("x",), ("x",), None), ((), ("x", "y"), None), (("x",), ("y",), None)],
)
def test_clicked_id_accepts_exactly_one_toggle(before, after, clicked):
    assert charts.clicked_id(before, after) == clicked


def test_1000_classes_get_a_readable_legend_top_classes_in_view_plus_other():
    classes = imagenet_classes()
    # counts in view: class 500 most frequent, then 3 and 7 tied (broken by label), then the rest
    counts = {classes.label(c): 10 for c in range(1000)}
    counts[classes.label(500)] = 90
    counts[classes.label(3)] = counts[classes.label(7)] = 50
    top = charts.top_categories(counts, charts.palette_size(""))
    assert len(top) == 8 == charts.palette_size("okabe-ito")
    assert top[0] == classes.label(500) and set(top[1:3]) == {classes.label(3), classes.label(7)}
    assert top[1:3] == tuple(sorted(top[1:3]))  # ties break by name: the same view, the same legend
    colour = charts.legend_colour_spec("class (top 8 in view)", "", top, has_other=True)
    spec = charts.scatter_spec(colour, EXTENT, "http://x/thumb/", True, "canvas")
    scale = _layers(spec)["points"]["encoding"]["color"]["scale"]
    assert scale["domain"] == [*top, charts.OTHER]
    assert scale["range"] == [*charts.OKABE_ITO, charts.OTHER_COLOUR]
    assert len(set(scale["range"])) == 9  # every listed class has its own colour, "other" is grey
    assert _layers(spec)["points"]["encoding"]["color"]["legend"] is not None


def test_chosen_classes_override_the_most_frequent_and_are_capped_at_the_palette():
    counts = {"a": 5, "b": 9, "c": 1}
    assert charts.top_categories(counts, 2, chosen=("c", "a", "c")) == ("c", "a")
    assert charts.top_categories(counts, 2) == ("b", "a")
    assert charts.top_categories({"a": 0, "b": 1}, 5) == ("b",)  # absent categories get no colour
    for palette in charts.CATEGORICAL_COLOURS:
        assert charts.palette_size(palette) == len(charts.CATEGORICAL_COLOURS[palette])
    spec = charts.legend_colour_spec("source", "tableau10", ("real", "generated"), has_other=False)
    assert spec.domain == ("real", "generated") and spec.colours == charts.CATEGORICAL_COLOURS["tableau10"][:2]
