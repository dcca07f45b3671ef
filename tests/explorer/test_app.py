"""The app's wiring, run headless with Streamlit's AppTest against real lakes on disk."""
from __future__ import annotations

from dataclasses import replace

from apptest import chart_datasets, open_app, scatter_points, scatter_roles
from conftest import KEY, NAME_2D, NAME_3D
from explorer.state import ViewState
from lake import LakeWriter, Provenance


def _app(lake, monkeypatch, query=None):
    """The app on `lake`; every run fails the test on an error box or exception (see apptest.py)."""
    return open_app(lake, monkeypatch, query)


def _scatter_points(at):
    spec, _ = chart_datasets(at)
    assert spec["usermeta"]["embedOptions"]["renderer"] == "svg"
    return scatter_points(at)


def test_first_page_draws_every_point_with_ids_and_thumbnail_rows(small_lake, monkeypatch):
    at = _app(small_lake.path, monkeypatch)
    points = _scatter_points(at)
    assert len(points) == len(small_lake.sample_ids)
    assert set(points["sample_id"]) == set(small_lake.sample_ids)
    assert "image" not in points.columns  # thumbnail URLs are built in the browser from `thumb`
    assert scatter_roles(at) == {}  # nothing selected, nothing highlighted
    assert "1: goldfish" in set(points["class"])
    assert at.query_params["emb"] == f"{KEY}/{NAME_2D}"


def test_injected_selection_shows_details_neighbours_roles_and_url(small_lake, monkeypatch):
    at = _app(small_lake.path, monkeypatch)
    selected, manual = str(small_lake.sample_ids[3]), str(small_lake.sample_ids[200])
    at.session_state["view"] = replace(at.session_state["view"], selected=selected, manual=(manual,))
    at.run()
    text = " ".join(m.value for m in at.markdown)
    assert selected in text and "1: goldfish" in text and "real fraction" in text
    assert "10 nearest neighbours" in text and "1 manual neighbours" in text
    images = at.get("image")
    assert len(images) == 3  # the selected image, the neighbour grid, the manual grid
    _scatter_points(at)  # the chart is drawn (in SVG at this size)
    roles = scatter_roles(at)
    assert roles[selected] == "selected" and roles[manual] == "manual"
    assert list(roles.values()).count("knn") == 10
    assert at.query_params["sel"] == selected and at.query_params["manual"] == manual
    # the Clear button empties both the selection and the manual set
    next(b for b in at.button if b.label.startswith("Clear")).click().run()
    assert at.session_state["view"].selected is None and at.session_state["view"].manual == ()
    assert "sel" not in at.query_params


def test_a_shared_url_restores_the_view(small_lake, monkeypatch):
    selected = str(small_lake.sample_ids[50])
    at = _app(small_lake.path, monkeypatch, {"emb": f"{KEY}/{NAME_3D}", "classes": "207", "sel": selected, "k": "4", "color": "compare.real_fraction"})
    view: ViewState = at.session_state["view"]
    assert view.embedding == f"{KEY}/{NAME_3D}" and view.classes == (207,) and view.k == 4
    assert at.multiselect(key="w_classes").value == [207]
    points = _scatter_points(at)
    roles = scatter_roles(at)
    golden = {str(i) for i, c in zip(small_lake.sample_ids, small_lake.class_ids) if c == 207}
    assert len(golden) == 40 and set(points["sample_id"]) - set(roles) == golden - set(roles)  # the filter, plus highlights
    assert list(roles.values()).count("knn") == 4
    assert "value" in points.columns  # coloured by the comparison metric


def test_class_search_and_source_filter(small_lake, monkeypatch):
    at = _app(small_lake.path, monkeypatch)
    at.text_input(key="w_class_search").input("goldfish").run()
    assert at.multiselect(key="w_classes").value == [1]
    at.multiselect(key="w_sources").select("generated").run()
    points = _scatter_points(at)
    assert len(points) == 20 and set(points["source"]) == {"generated"}
    assert at.query_params["classes"] == "1" and at.query_params["source"] == "generated"


def test_compare_and_3d_pages(small_lake, monkeypatch):
    at = _app(small_lake.path, monkeypatch, {"page": "compare"})
    tables = at.dataframe
    assert any("mean_real_fraction" in t.value.columns for t in tables)
    at = _app(small_lake.path, monkeypatch, {"page": "3d", "emb": f"{KEY}/{NAME_3D}"})
    assert len(at.get("deck_gl_json_chart")) == 1
    # A lake of one model and no CKA table has nothing to compare models with: the page is not offered.
    assert "models" not in at.radio(key="w_page").options


def test_friendly_pages_for_missing_empty_and_unanalysed_lakes(tmp_path, samples_only_lake, monkeypatch):
    at = _app(tmp_path / "absent", monkeypatch)
    assert not at.exception
    assert "make demo" in at.code[0].value
    empty = tmp_path / "empty"
    with LakeWriter.open(empty, Provenance(job="create")):
        pass
    at = _app(empty, monkeypatch)
    assert not at.exception and "python -m ingest" in at.code[0].value
    at = _app(samples_only_lake.path, monkeypatch)
    assert not at.exception and at.code[0].value == f"python -m analysis run --lake {samples_only_lake.path}"
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "zarr.json").write_text("{not json")
    at = _app(foreign, monkeypatch)
    assert not at.exception and at.info
