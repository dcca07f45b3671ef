"""Every column type a lake can hold (numeric, bool, text from any storage, with missing
values) through the details panel, "Colour by", the 3D page and the data layer.

`typed_lake`'s comparison table carries bool `memorised`, text `note` ('' = missing),
int `rank` and float `score` (NaN = missing) besides the analysis job's own columns.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from apptest import markdown_text, open_app, scatter_points
from conftest import KEY, NAME_2D, NAME_3D
from explorer import charts
from explorer.common import MISSING, format_value, markdown_text as escape
from explorer.columns import categorical_or_numeric
from explorer.lake_status import EmbeddingInfo, embedding_of_key, random_weights
from explorer.session import LakeSession
from lake import LakeWriter, Provenance, open_lake
from lake.store import commit


def _select(at, sample_id: str):
    at.session_state["view"] = replace(at.session_state["view"], selected=sample_id)
    return at.run()


def test_details_panel_shows_bool_text_int_and_missing_values(typed_lake, monkeypatch):
    at = open_app(typed_lake.path, monkeypatch)
    # Sample 0: memorised, no note, score NaN. Sample 1: not memorised, a note with Markdown characters.
    text = markdown_text(_select(at, str(typed_lake.sample_ids[0])))
    assert "**memorised**: true" in text and f"**note**: {MISSING}" in text and f"**score**: {MISSING}" in text and "**rank**: 0" in text
    assert "**source**: real" in text and f"**seed**: {MISSING}" in text  # a real image has no generation seed
    text = markdown_text(_select(at, str(typed_lake.sample_ids[1])))
    assert "**memorised**: false" in text and "**note**: near\\_dup\\*1" in text and "**score**: 0.1" in text and "**rank**: 1" in text
    generated = int(np.flatnonzero(typed_lake.sources == "generated")[0])
    text = markdown_text(_select(at, str(typed_lake.sample_ids[generated])))
    assert "**source**: generated" in text and "**model**: dmd2-test" in text and "nearest neighbours" in text


@pytest.mark.parametrize("column, nominal", [("compare.memorised", True), ("compare.note", True), ("compare.rank", False), ("compare.score", False)])
def test_colour_by_every_column_type_on_explore_and_3d(typed_lake, monkeypatch, column, nominal):
    at = open_app(typed_lake.path, monkeypatch, {"color": column, "sel": str(typed_lake.sample_ids[1])})
    palette = at.selectbox(key="w_palette")
    assert ("okabe-ito" if nominal else "viridis") in palette.options[0]  # the default palette fits the type
    points = scatter_points(at)
    expected = categorical_or_numeric(np.asarray(open_lake(typed_lake.path).root[f"analysis/compare/{KEY}/{column.partition('.')[2]}"][:]))
    by_id = dict(zip(typed_lake.sample_ids, expected))  # the analysis order is the samples order here
    shown = dict(zip(points["sample_id"], points["value"]))
    for sample_id, value in shown.items():
        if nominal:  # its own category, or "other" where the palette has fewer colours than categories
            assert value in (str(by_id[sample_id]) or charts.NO_VALUE, charts.OTHER)  # an empty text reads "(none)"
        else:
            assert (np.isnan(value) and np.isnan(by_id[sample_id])) or value == pytest.approx(float(by_id[sample_id]))
    if column == "compare.memorised":
        assert set(points["value"]) == {"true", "false"}

    at.radio(key="w_page").set_value("3d").run()
    assert at.session_state["w_embedding"] == f"{KEY}/{NAME_3D}"
    deck = json.loads(at.get("deck_gl_json_chart")[0].proto.json)
    data = deck["layers"][0]["data"]
    colours = {}
    for point in data:
        colours.setdefault(str(by_id[point["sample_id"]]), set()).add(tuple(point["rgb"]))
    if column == "compare.memorised":
        assert colours["true"].isdisjoint(colours["false"])  # two categories, two colours


def test_compare_page_on_a_lake_with_typed_columns(typed_lake, monkeypatch):
    at = open_app(typed_lake.path, monkeypatch, {"page": "compare"})
    assert any("mean_real_fraction" in t.value.columns for t in at.dataframe)


def test_text_columns_of_any_storage_become_one_text_type():
    assert categorical_or_numeric(np.array([True, False])).tolist() == ["true", "false"]
    mixed = np.array(["a", None, b"b\xc3\xa9", float("nan"), 3], dtype=object)
    assert categorical_or_numeric(mixed).tolist() == ["a", "", "bé", "", "3"]
    assert categorical_or_numeric(np.array(["x", "yz"])).dtype.kind == "T"
    assert categorical_or_numeric(np.array([b"x", b""])).tolist() == ["x", ""]
    numbers = np.array([1.5, np.nan], dtype=np.float32)
    assert categorical_or_numeric(numbers) is not None and categorical_or_numeric(numbers).dtype == np.float32


@pytest.mark.parametrize(
    "value, text",
    [(None, MISSING), (np.float32("nan"), MISSING), (np.float32(0.625), "0.625"), (np.bool_(True), "true"), (np.int64(-3), "-3"), ("", MISSING), ("  ", MISSING), ("train", "train"), (b"val", "val"), (float("inf"), MISSING), (np.array(2.5, np.float32), "2.5")],
)
def test_format_value(value, text):
    assert format_value(value) == text


def test_markdown_text_escapes_what_markdown_would_act_on():
    assert escape("near_dup*1 [x](y) `z`") == "near\\_dup\\*1 \\[x\\](y) \\`z\\`"


def test_embedding_of_key_prefers_the_twin_of_the_same_parameters():
    def info(key, name, dims):
        return EmbeddingInfo(path=f"analysis/embeddings/{key}/{name}", key=key, name=name, dims=dims, rows=1)

    embeddings = [
        info("a@sigma2", "umap2d-n15", 2),
        info("a@sigma2", "umap3d-n30", 3),
        info("a@sigma2", "umap3d-n15", 3),
        info("b@sigma2", "umap2d-n15", 2),
    ]
    assert embedding_of_key(embeddings, "a@sigma2/umap2d-n15", 3) == "a@sigma2/umap3d-n15"
    assert embedding_of_key(embeddings, "a@sigma2/umap3d-n30", 2) == "a@sigma2/umap2d-n15"
    assert embedding_of_key(embeddings, "b@sigma2/umap2d-n15", 3) is None
    assert embedding_of_key(embeddings, "missing/x", 3) is None


def test_random_weights_are_found_in_generation_and_activation_attributes(small_lake, tmp_path):
    assert random_weights(open_lake(small_lake.path), "enc.8x8_block2") is None  # no model output at all
    lake = tmp_path / "lake"
    shutil.copytree(small_lake.path, lake)
    with LakeWriter.open(lake, Provenance(job="test probes")) as writer:
        writer.group("activations/enc.8x8_block2").attrs.update({"weights": "checkpoint", "model_id": "dmd2-imagenet64"})
        writer.group("activations/dec.8x8_in0").attrs.update({"weights": "random", "model_id": "tiny-random-seed0"})
    assert random_weights(open_lake(lake), "enc.8x8_block2") is None  # a real checkpoint: nothing to say
    found = random_weights(open_lake(lake), "dec.8x8_in0")
    assert found is not None and found.probes and not found.generated and found.model_ids == ("tiny-random-seed0",)
    with LakeWriter.open(lake, Provenance(job="test generate")) as writer:
        writer.group("generation/enc.8x8_block2").attrs.update({"weights": "random", "model_id": "tiny-random-seed0"})
    found = random_weights(open_lake(lake), "enc.8x8_block2")
    assert found is not None and found.generated and not found.probes


def test_no_random_weights_note_on_a_lake_without_model_output(small_lake, monkeypatch):
    at = open_app(small_lake.path, monkeypatch)
    assert not any("random weights" in i.value for i in at.info)


def test_3d_page_switches_to_the_3d_embedding_of_the_same_key_and_back(small_lake, monkeypatch):
    at = open_app(small_lake.path, monkeypatch, {"emb": f"{KEY}/{NAME_2D}"})
    at.radio(key="w_page").set_value("3d").run()
    assert at.session_state["w_embedding"] == f"{KEY}/{NAME_3D}" and at.session_state["view"].embedding == f"{KEY}/{NAME_3D}"
    assert len(at.get("deck_gl_json_chart")) == 1
    assert not any("needs a 3D embedding" in c.value for c in at.caption)
    assert at.query_params["page"] == "3d" and at.query_params["emb"] == f"{KEY}/{NAME_3D}"
    at.radio(key="w_page").set_value("explore").run()
    assert at.session_state["view"].embedding == f"{KEY}/{NAME_2D}"  # back to the 2D view the researcher had
    # A 3D embedding the researcher picked stays when leaving the 3D page.
    at.selectbox(key="w_embedding").set_value(f"{KEY}/{NAME_3D}").run()
    at.radio(key="w_page").set_value("3d").run()
    at.radio(key="w_page").set_value("compare").run()
    assert at.session_state["view"].embedding == f"{KEY}/{NAME_3D}"
    # A shared link to the 3D page with a 2D embedding opens the 3D twin.
    at = open_app(small_lake.path, monkeypatch, {"emb": f"{KEY}/{NAME_2D}", "page": "3d"})
    assert at.session_state["view"].embedding == f"{KEY}/{NAME_3D}" and len(at.get("deck_gl_json_chart")) == 1


def test_3d_page_message_only_when_the_key_has_no_3d_embedding(small_lake, tmp_path, monkeypatch):
    lake = tmp_path / "only2d"
    shutil.copytree(small_lake.path, lake)
    shutil.rmtree(lake / "analysis" / "embeddings" / KEY / NAME_3D)
    commit(lake)  # re-consolidate: the lake as an analysis run without 3D UMAP leaves it
    assert [e.ref for e in LakeSession(lake).embeddings] == [f"{KEY}/{NAME_2D}"]
    at = open_app(lake, monkeypatch, {"page": "3d"})
    assert any("needs a 3D embedding" in c.value and KEY in c.value for c in at.caption)
    assert not at.get("deck_gl_json_chart") and at.get("vega_lite_chart")  # the Explore page instead


def test_3d_page_gives_each_class_its_own_colour_and_a_legend(small_lake, monkeypatch):
    at = open_app(small_lake.path, monkeypatch, {"emb": f"{KEY}/{NAME_3D}", "page": "3d"})
    data = json.loads(at.get("deck_gl_json_chart")[0].proto.json)["layers"][0]["data"]
    colours: dict[str, set[tuple[int, ...]]] = {}
    for point in data:
        colours.setdefault(point["class"], set()).add(tuple(point["rgb"]))
    assert len(colours) == 6 and all(len(c) == 1 for c in colours.values())
    assert len(set.union(*colours.values())) == 6  # class ids 1, 9, 417... would collide by remainder
    legend = markdown_text(at)
    assert all(label in legend for label in colours) and "1: goldfish" in legend
    at.selectbox(key="w_color").set_value("compare.real_fraction").run()
    assert any("real_fraction: " in c.value and "(yellow) to" in c.value for c in at.caption)  # a numeric colour says its range
