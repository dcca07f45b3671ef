"""The Explore page under Streamlit's AppTest: clicks arrive as the scatter's selection state,
change only the small highlights dataset, and 1000 classes get a readable legend."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from apptest import open_app

from explorer import charts
from explorer.page_explore import HIGHLIGHT_KEY, SCATTER_KEY
from lake import imagenet_classes

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


def _scatter(at):
    """The scatter's element: its widget id, spec and named datasets as raw Arrow bytes."""
    chart = at.get("vega_lite_chart")[0]
    return chart.proto.id, json.loads(chart.proto.spec), {d.name: bytes(d.data.data) for d in chart.proto.datasets}


def _frame(raw: bytes):
    return pa.ipc.open_stream(raw).read_pandas()


def _click(at, *sample_ids: str):
    """What the browser sends after clicks: the toggling selection's current ids."""
    at.session_state[SCATTER_KEY] = {"selection": {charts.PICK: [{"sample_id": s} for s in sample_ids]}}
    return at.run()


def test_a_click_selects_and_changes_only_the_highlights(small_lake, monkeypatch):
    at = open_app(small_lake.path, monkeypatch)
    chart_id, spec, datasets = _scatter(at)
    assert len(_frame(datasets["marks"])) == 0
    clicked = str(small_lake.sample_ids[7])
    _click(at, clicked)
    assert at.session_state["view"].selected == clicked
    new_id, new_spec, new_datasets = _scatter(at)
    # Same widget, same spec, the points byte for byte: the browser keeps its view and its
    # drawn points and replaces only the highlights.
    assert new_id == chart_id and new_spec == spec
    assert new_datasets["points"] == datasets["points"]
    marks = _frame(new_datasets["marks"])
    assert dict(zip(marks["sample_id"], marks["role"]))[clicked] == "selected"
    assert list(marks["role"]).count("knn") == 10
    assert list(marks["role"])[-1] == "selected"  # drawn last: on top of its neighbours' rings
    assert "role" not in _frame(new_datasets["points"]).columns


def test_clicking_the_same_point_again_toggles_it_and_other_reruns_click_nothing(small_lake, monkeypatch):
    at = open_app(small_lake.path, monkeypatch)
    first, other = str(small_lake.sample_ids[3]), str(small_lake.sample_ids[200])
    _click(at, first)
    _click(at, first, other)  # a second point: a manual neighbour
    assert at.session_state["view"].selected == first and at.session_state["view"].manual == (other,)
    _click(at, first)  # the same point again: the selection lost it, and it leaves the manual set
    assert at.session_state["view"].manual == ()
    at.number_input(key="w_k").set_value(4).run()  # a rerun for another reason is no click
    assert at.session_state["view"].manual == () and at.session_state["view"].selected == first
    _click(at, first, other)  # and a third time: back in
    assert at.session_state["view"].manual == (other,)
    marks = _frame(_scatter(at)[2]["marks"])
    assert dict(zip(marks["sample_id"], marks["role"])) [other] == "manual"
    assert list(marks["role"]).count("knn") == 4


def test_a_new_spec_starts_a_new_selection_in_the_browser(small_lake, monkeypatch):
    at = open_app(small_lake.path, monkeypatch)
    a, b = str(small_lake.sample_ids[10]), str(small_lake.sample_ids[11])
    _click(at, a)
    at.selectbox(key="w_color").set_value("source").run()  # a new spec: the browser rebuilds its view
    at.session_state["view"] = at.session_state["view"].cleared()
    at.run()
    _click(at, b)  # the rebuilt view's selection holds only the new click
    assert at.session_state["view"].selected == b


@pytest.fixture(scope="module")
def thousand_class_lake(tmp_path_factory):
    """The benchmark's synthetic lake (1000 classes, real lake API), small."""
    from bench_explorer import build_lake

    path = tmp_path_factory.mktemp("thousand") / "lake"
    build_lake(path, 3000)
    return path


def test_1000_classes_colour_the_top_classes_in_view_and_grey_the_rest(thousand_class_lake, monkeypatch):
    at = open_app(thousand_class_lake, monkeypatch)
    _, spec, datasets = _scatter(at)
    points_layer = next(layer for layer in spec["layer"] if layer["data"]["name"] == "points")
    colour = points_layer["encoding"]["color"]
    domain = colour["scale"]["domain"]
    assert len(domain) == 9 and domain[-1] == charts.OTHER  # 8 readable entries plus "other"
    assert colour["scale"]["range"][-1] == charts.OTHER_COLOUR and "top 8 in view" in colour["title"]
    points = _frame(datasets["points"])
    assert points["class"].nunique() == 1000
    coloured = points[points["colour"] != charts.OTHER]
    assert set(coloured["colour"]) == set(domain[:-1])
    assert (coloured["colour"].astype(str) == coloured["class"].astype(str)).all()  # a colour means its class
    # Searchable: pick classes in the highlight box; they, and only they, get colours.
    classes = imagenet_classes()
    at.multiselect(key=HIGHLIGHT_KEY).set_value([1, 207]).run()
    _, spec, datasets = _scatter(at)
    points_layer = next(layer for layer in spec["layer"] if layer["data"]["name"] == "points")
    assert points_layer["encoding"]["color"]["scale"]["domain"] == [classes.label(1), classes.label(207), charts.OTHER]
    points = _frame(datasets["points"])
    chosen = points[points["colour"] != charts.OTHER]
    assert set(chosen["class"].astype(str)) == {classes.label(1), classes.label(207)}
    assert len(chosen) == int(points["class"].isin([classes.label(1), classes.label(207)]).sum())


def test_chosen_classes_are_trimmed_to_what_the_palette_can_colour(thousand_class_lake, monkeypatch):
    at = open_app(thousand_class_lake, monkeypatch)
    at.session_state[HIGHLIGHT_KEY] = list(range(10))  # e.g. picked under a 20-colour palette
    at.run()
    assert at.multiselect(key=HIGHLIGHT_KEY).value == list(range(8))  # Okabe-Ito colours 8
    at.selectbox(key="w_palette").set_value("category20").run()
    at.multiselect(key=HIGHLIGHT_KEY).set_value(list(range(12))).run()
    _, spec, _ = _scatter(at)
    points_layer = next(layer for layer in spec["layer"] if layer["data"]["name"] == "points")
    assert len(points_layer["encoding"]["color"]["scale"]["domain"]) == 13  # 12 chosen + other


def test_leaving_the_page_and_coming_back_clicks_nothing(small_lake, monkeypatch):
    at = open_app(small_lake.path, monkeypatch)
    a, b = str(small_lake.sample_ids[3]), str(small_lake.sample_ids[200])
    _click(at, a)
    _click(at, a, b)  # b: a manual neighbour
    _click(at, b)  # a clicked again (it is the selected point: nothing changes); the selection holds only b
    assert at.session_state["view"].selected == a and at.session_state["view"].manual == (b,)
    at.radio(key="w_page").set_value("compare").run()  # the scatter leaves the page, and its state with it
    at.radio(key="w_page").set_value("explore").run()  # a new scatter, an empty selection: no click on b
    assert at.session_state["view"].selected == a and at.session_state["view"].manual == (b,)
    _click(at, str(small_lake.sample_ids[201]))  # the new view's first click registers
    assert at.session_state["view"].manual == (b, str(small_lake.sample_ids[201]))


def test_an_empty_text_value_has_a_readable_legend_entry(small_lake, monkeypatch):
    # Real images have model_id "": the legend says "(none)" instead of an empty label.
    at = open_app(small_lake.path, monkeypatch, {"color": "samples.model_id"})
    _, spec, datasets = _scatter(at)
    points_layer = next(layer for layer in spec["layer"] if layer["data"]["name"] == "points")
    domain = points_layer["encoding"]["color"]["scale"]["domain"]
    assert charts.NO_VALUE in domain and "" not in domain and "dmd2-test" in domain
    points = _frame(datasets["points"])
    assert set(points["value"].astype(str)) == {charts.NO_VALUE, "dmd2-test"}
