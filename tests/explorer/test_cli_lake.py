"""The explorer on the lake `make demo` builds (the `cli_demo_lake` session fixture runs the
Makefile's own steps: ingest npz/jpeg, generate and probe with the tiny random-weight
model, `analysis run` for two layer/sigma keys), clicked through as a new user would.

Each AppTest run fails on any error box or exception (`apptest.CheckedAppTest`); the
facts and neighbours shown are checked against what the CLI wrote.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from apptest import markdown_text, open_app, scatter_points, scatter_roles
from explorer.common import format_value
from explorer.data import LakeSession
from explorer.sidebar import colour_columns
from lake import open_lake

# The first test here waits for the session's demo build (~2 min alone, far longer on a busy
# 2-core machine), and pytest-timeout counts fixture set-up in the test's time.
pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def demo(cli_demo_lake: Path) -> LakeSession:
    return LakeSession(cli_demo_lake)


def _ids(lake: Path, source: str) -> list[str]:
    root = open_lake(lake).root
    ids, sources = np.asarray(root["samples/sample_id"][:]), np.asarray(root["samples/source"][:])
    return [str(i) for i in ids[sources == source]]


def _row_of(lake: Path, group: str, sample_id: str) -> int:
    ids = np.asarray(open_lake(lake).root[f"{group}/sample_id"][:])
    return int(np.flatnonzero(ids == sample_id)[0])


def test_first_page_says_the_demo_uses_random_weights(cli_demo_lake, monkeypatch):
    at = open_app(cli_demo_lake, monkeypatch)
    notes = [i.value for i in at.info if "random weights" in i.value]
    assert len(notes) == 1
    assert "tiny-random-seed0" in notes[0] and "--checkpoint pytorch_model.bin --preset dmd2-imagenet64" in notes[0]
    assert "generated samples" in notes[0]
    assert len(scatter_points(at)) == open_lake(cli_demo_lake).num_samples


@pytest.mark.parametrize("source", ["real", "generated"])
@pytest.mark.parametrize("dims", [2, 3])
def test_selecting_a_point_shows_its_facts_and_stored_neighbours(cli_demo_lake, demo, monkeypatch, source, dims):
    for key in sorted({e.key for e in demo.embeddings}):
        ref = next(e.ref for e in demo.embeddings if e.key == key and e.dims == dims)
        selected = _ids(cli_demo_lake, source)[5]
        manual = _ids(cli_demo_lake, "generated" if source == "real" else "real")[7]
        at = open_app(cli_demo_lake, monkeypatch, {"emb": ref})
        at.session_state["view"] = replace(at.session_state["view"], selected=selected, manual=(manual,))
        at.run()
        text = markdown_text(at)
        root = open_lake(cli_demo_lake).root
        sample = _row_of(cli_demo_lake, "samples", selected)
        assert f"**source**: {source}" in text
        assert f"**split**: {root['samples/split'][sample]}" in text  # text columns shown as text
        compare = f"analysis/compare/{key}"
        crow = _row_of(cli_demo_lake, compare, selected)
        for name in ("real_fraction", "nearest_real_distance"):
            assert f"**{name.replace('_', ' ')}**: {format_value(root[f'{compare}/{name}'][crow])}" in text
        # The k nearest neighbours are the stored k-NN graph's, drawn with the `knn` role.
        k = int(root[f"analysis/knn/{key}/neighbor_id"].shape[1])
        assert f"**{min(k, 10)} nearest neighbours** · activation (stored k-NN graph)" in text
        assert "**1 manual neighbours** · distance in activation space" in text
        stored = {str(i) for i in np.asarray(root[f"analysis/knn/{key}/neighbor_id"][_row_of(cli_demo_lake, f'analysis/knn/{key}', selected)])}
        roles = scatter_roles(at)
        assert {i for i, r in roles.items() if r == "knn"} == stored - {manual}
        assert roles[selected] == "selected" and roles[manual] == "manual"
        assert len(at.get("image")) == 3  # the selected image, the neighbour grid, the manual grid


def test_every_colour_option_on_every_embedding_and_page(cli_demo_lake, demo, monkeypatch):
    selected = _ids(cli_demo_lake, "generated")[0]
    for info in demo.embeddings:
        options = ["class", "source", "split", *colour_columns(demo, info.ref)]
        assert {"samples.seed", "samples.model_id", "compare.real_fraction"} <= set(options)
        assert not {"compare.source", "compare.split", "compare.class_id"} & set(options)  # repeats of the built-in colourings
        at = open_app(cli_demo_lake, monkeypatch, {"emb": info.ref, "sel": selected})
        for option in options:
            at.selectbox(key="w_color").set_value(option).run()
            points = scatter_points(at)
            if option not in ("class", "source", "split"):
                assert "value" in points.columns and len(points) == open_lake(cli_demo_lake).num_samples
        if info.dims == 3:
            at.radio(key="w_page").set_value("3d").run()
            for option in options:
                at.selectbox(key="w_color").set_value(option).run()
                data = json.loads(at.get("deck_gl_json_chart")[0].proto.json)["layers"][0]["data"]
                assert len(data) == open_lake(cli_demo_lake).num_samples and all(len(p["rgb"]) == 3 for p in data[:5])


def test_compare_page_leads_with_the_headline_metrics(cli_demo_lake, demo, monkeypatch):
    for info in demo.embeddings:
        at = open_app(cli_demo_lake, monkeypatch, {"emb": info.ref, "page": "compare"})
        attrs = dict(open_lake(cli_demo_lake).root[f"analysis/compare/{info.key}"].attrs)
        text = markdown_text(at)
        for label, name in (("Fréchet distance", "frechet_distance"), ("Precision", "precision"), ("Recall", "recall"), ("Density", "density"), ("Coverage", "coverage")):
            assert f"**{label}: {format_value(attrs[name])}**" in text
        assert "5-nearest-neighbour ball" in text  # the k the analysis used
        space = " ".join(c.value for c in at.caption)
        assert f"PCA scores of the standardised activations (50 components) of layer {attrs['layer']} at sigma {format_value(attrs['sigma'])}" in space
        per_class = next(t.value for t in at.dataframe if "precision" in t.value.columns)
        assert list(per_class.columns[:4]) == ["class_id", "class", "n_real", "n_generated"]
        assert len(per_class) == 8 and "281: tabby" in set(per_class["class"])
        spec = json.loads(at.get("vega_lite_chart")[0].proto.spec)
        heat, points = spec["layer"]
        assert heat["encoding"]["color"]["scale"]["scheme"] == "purplegreen"  # no orange in the heatmap
        colours = dict(zip(points["encoding"]["color"]["scale"]["domain"], points["encoding"]["color"]["scale"]["range"]))
        assert colours == {"generated": "#1a1a1a", "real": "#E69F00"}


def test_3d_button_opens_the_3d_embedding_of_the_same_layer_and_sigma(cli_demo_lake, demo, monkeypatch):
    for key in sorted({e.key for e in demo.embeddings}):
        two = next(e.ref for e in demo.embeddings if e.key == key and e.dims == 2)
        three = next(e.ref for e in demo.embeddings if e.key == key and e.dims == 3)
        at = open_app(cli_demo_lake, monkeypatch, {"emb": two})
        at.radio(key="w_page").set_value("3d").run()
        assert at.session_state["view"].embedding == three and len(at.get("deck_gl_json_chart")) == 1
        assert not any("needs a 3D embedding" in c.value for c in at.caption)
        at.radio(key="w_page").set_value("explore").run()
        assert at.session_state["view"].embedding == two
