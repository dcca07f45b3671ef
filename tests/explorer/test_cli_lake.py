"""The explorer on the lake `make demo` builds (the `cli_demo_lake` session fixture runs the
Makefile's own steps: ingest npz/jpeg, generate and probe with the micro random-weight
model, `analysis run` for two layer/sigma keys, then text-to-image samples of the tiny SDXL
components and `analysis run` on one of their keys), clicked through as a new user would.

Each AppTest run fails on any error box or exception (`apptest.CheckedAppTest`); the
facts and neighbours shown are checked against what the CLI wrote.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from apptest import markdown_text, open_app, scatter_points, scatter_roles
from explorer.common import format_value
from explorer.session import LakeSession
from explorer.sidebar import colour_columns, model_groups
from lake import open_lake
from lake.layout import T2I_SPLIT, parse_key, parse_model_id, split_t2i_layer

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


def _t2i_ids(lake: Path) -> list[str]:
    root = open_lake(lake).root
    ids, splits = np.asarray(root["samples/sample_id"][:]), np.asarray(root["samples/split"][:])
    return [str(i) for i in ids[splits == T2I_SPLIT]]


def _heun_ids(lake: Path) -> list[str]:
    """The teacher stand-in's Heun samples: made after the probes (for the A/B page), on no map."""
    samples = open_lake(lake).root["samples"]
    return [str(i) for i, m in zip(samples["sample_id"][:], samples["model_id"][:], strict=True)
            if m and parse_model_id(str(m)).heun is not None]


def _is_t2i(key: str) -> bool:
    return split_t2i_layer(parse_key(key).layer) is not None


def _key_rows(lake: Path, key: str) -> int:
    """Rows of a key's analysis tables: the samples its activation table holds."""
    return int(open_lake(lake).root[f"analysis/pca/{key}/sample_id"].shape[0])


def _row_of(lake: Path, group: str, sample_id: str) -> int:
    ids = np.asarray(open_lake(lake).root[f"{group}/sample_id"][:])
    return int(np.flatnonzero(ids == sample_id)[0])


def test_first_page_says_the_demo_uses_random_weights(cli_demo_lake, monkeypatch):
    at = open_app(cli_demo_lake, monkeypatch)
    notes = [i.value for i in at.info if "random weights" in i.value]
    assert len(notes) == 1
    assert "micro-random-seed0" in notes[0] and "--checkpoint pytorch_model.bin --preset dmd2-imagenet64" in notes[0]
    assert "generated samples" in notes[0]
    key = next(e.key for e in LakeSession(cli_demo_lake).embeddings if e.ref == at.session_state["view"].embedding)
    assert not _is_t2i(key)  # the first page shows an ImageNet key: every real and ImageNet-generated sample
    lake = open_lake(cli_demo_lake)
    expected = lake.num_samples - len(_t2i_ids(cli_demo_lake)) - len(_heun_ids(cli_demo_lake))
    assert len(scatter_points(at)) == _key_rows(cli_demo_lake, key) == expected


@pytest.mark.parametrize("source", ["real", "generated"])
@pytest.mark.parametrize("dims", [2, 3])
def test_selecting_a_point_shows_its_facts_and_stored_neighbours(cli_demo_lake, demo, monkeypatch, source, dims):
    t2i_ids = _t2i_ids(cli_demo_lake)
    for key in sorted({e.key for e in demo.embeddings}):
        text_to_image = _is_t2i(key)
        if text_to_image and source == "real":
            continue  # a text-to-image key holds only that model's (generated) samples
        ref = next(e.ref for e in demo.embeddings if e.key == key and e.dims == dims)
        if text_to_image:
            selected, manual = t2i_ids[5], t2i_ids[7]
        else:
            selected = [i for i in _ids(cli_demo_lake, source) if i not in t2i_ids][5]
            manual = [i for i in _ids(cli_demo_lake, "generated" if source == "real" else "real") if i not in t2i_ids][7]
        at = open_app(cli_demo_lake, monkeypatch, {"emb": ref})
        at.session_state["view"] = replace(at.session_state["view"], selected=selected, manual=(manual,))
        at.run()
        text = markdown_text(at)
        root = open_lake(cli_demo_lake).root
        sample = _row_of(cli_demo_lake, "samples", selected)
        assert f"**source**: {source}" in text or text_to_image
        assert f"**split**: {root['samples/split'][sample]}" in text or text_to_image  # text columns shown as text
        if text_to_image:
            # The prompt coordinates replace the class facts, and the steps' x0 previews follow.
            name = split_t2i_layer(parse_key(key).layer)[0]
            t2i = f"t2i/{name}/samples"
            trow = _row_of(cli_demo_lake, t2i, selected)
            assert f"**prompt**: {root[f'{t2i}/prompt'][trow]}" in text
            assert f"**seed · index**: {root[f'{t2i}/seed'][trow]} · {root[f'{t2i}/index'][trow]}" in text
            assert "**Steps** · the x0 estimate after each of the 4 steps" in text
        else:
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
        # The selected image (and for text-to-image samples the step previews), the neighbour grid, the manual grid.
        assert len(at.get("image")) == (4 if text_to_image else 3)


def test_every_colour_option_on_every_embedding_and_page(cli_demo_lake, demo, monkeypatch):
    selected = _ids(cli_demo_lake, "generated")[0]
    for info in demo.embeddings:
        options = ["class", "source", "split", *colour_columns(demo, info.ref)]
        rows = _key_rows(cli_demo_lake, info.key)
        if _is_t2i(info.key):  # no real samples, so no compare table; clusters and prompts instead
            assert {"samples.seed", "samples.model_id"} <= set(options) and not any(o.startswith("compare.") for o in options)
        else:
            assert {"samples.seed", "samples.model_id", "compare.real_fraction"} <= set(options)
        assert not {"compare.source", "compare.split", "compare.class_id"} & set(options)  # repeats of the built-in colourings
        at = open_app(cli_demo_lake, monkeypatch, {"emb": info.ref, "sel": selected})
        for option in options:
            at.selectbox(key="w_color").set_value(option).run()
            points = scatter_points(at)
            if option not in ("class", "source", "split"):
                assert "value" in points.columns and len(points) == rows
        if info.dims == 3:
            at.radio(key="w_page").set_value("3d").run()
            for option in options:
                at.selectbox(key="w_color").set_value(option).run()
                data = json.loads(at.get("deck_gl_json_chart")[0].proto.json)["layers"][0]["data"]
                assert len(data) == rows and all(len(p["rgb"]) == 3 for p in data[:5])


def test_compare_page_leads_with_the_headline_metrics(cli_demo_lake, demo, monkeypatch):
    for info in demo.embeddings:
        at = open_app(cli_demo_lake, monkeypatch, {"emb": info.ref, "page": "compare"})
        if _is_t2i(info.key):  # analysis run skips compare there, and the page says why
            assert any("nothing real" in i.value for i in at.info)
            continue
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


def test_the_demo_holds_two_models_probing_the_same_real_images(cli_demo_lake, demo):
    lake = open_lake(cli_demo_lake)
    first, teacher = lake.models()
    assert (first.name, first.weights) == ("micro", "random")
    assert (teacher.name, teacher.weights, teacher.preset) == ("teacher-stand-in", "checkpoint", "micro")
    student = lake.activations("enc.8x8_block2", 2.0)
    stand_in = lake.activations("teacher-stand-in.enc.8x8_block2", 2.0)
    real = set(_ids(cli_demo_lake, "real"))
    assert real <= set(stand_in["sample_id"].values.tolist()) and real <= set(student["sample_id"].values.tolist())
    assert stand_in.attrs["model_id"] == teacher.model_id != student.attrs["model_id"]
    keys = {info.key for info in demo.embeddings}
    assert {"enc.8x8_block2@sigma2", "teacher-stand-in.enc.8x8_block2@sigma2"} <= keys  # analysed like the first
    # and compared with it: every probed block of the first model against the stand-in's, on the shared samples
    cka = xr.open_zarr(cli_demo_lake, group="analysis/cka/micro~teacher-stand-in@sigma2")
    assert list(cka["first_layer"].values) == ["dec.8x8_in0", "enc.8x8_block2"]
    assert list(cka["second_layer"].values) == ["teacher-stand-in.enc.8x8_block2"]
    assert cka.attrs["n_shared"] == len(stand_in["sample_id"]) and np.all((cka["cka"].values > 0) & (cka["cka"].values < 1))
    # and each sample's neighbourhood in both is a colour of the first model's map, aligned by sample id
    change = xr.open_zarr(cli_demo_lake, group="analysis/neighbourhood/enc.8x8_block2@sigma2~teacher-stand-in.enc.8x8_block2@sigma2")
    ref = next(e.ref for e in demo.embeddings if e.key == "enc.8x8_block2@sigma2" and e.dims == 2)
    column = "vs teacher-stand-in.enc.8x8_block2@sigma2.neighbourhood_change"
    assert column in [c.ref for c in demo.columns(ref)]
    shown = dict(zip(np.asarray(demo.frame(ref).sample_id, dtype=object).astype(str), demo.column_values(ref, column)))
    stored = dict(zip(np.asarray(change["sample_id"].values, dtype=object).astype(str), change["neighbourhood_change"].values))
    assert stored and all(shown[i] == v for i, v in stored.items()) and 0 < np.mean(list(stored.values())) <= 1


def test_the_model_picker_groups_the_embeddings_by_model(cli_demo_lake, demo, monkeypatch):
    teacher = [e.ref for e in demo.embeddings if e.layer.startswith("teacher-stand-in.")]
    at = open_app(cli_demo_lake, monkeypatch)
    picker = at.selectbox(key="w_model")
    assert picker.options == ["micro (the lake's first model)", "dmd2-sdxl-4step · text-to-image", "teacher-stand-in · ImageNet"]
    assert picker.value == "" and all(not r.startswith("teacher-stand-in.") for r in at.selectbox(key="w_embedding").options)

    picker.set_value("teacher-stand-in").run()  # choosing a model shows its first embedding
    assert at.session_state["view"].embedding == teacher[0] and at.selectbox(key="w_embedding").value == teacher[0]
    assert len(at.selectbox(key="w_embedding").options) == len(teacher) == 2  # its 2D and 3D UMAPs
    assert len(scatter_points(at)) == _key_rows(cli_demo_lake, teacher[0].split("/")[0])  # every probed sample drawn

    opened = open_app(cli_demo_lake, monkeypatch, {"emb": teacher[1]})  # a link to a teacher embedding selects its model
    assert opened.selectbox(key="w_model").value == "teacher-stand-in" and opened.session_state["view"].embedding == teacher[1]
    opened.selectbox(key="w_model").set_value("").run()
    first = next(g for g in model_groups(LakeSession(cli_demo_lake)) if g.name == "")
    assert opened.session_state["view"].embedding == first.refs[0]


def test_compare_models_page_draws_the_stored_cka_table(cli_demo_lake, monkeypatch):
    from apptest import chart_datasets

    stored = xr.open_zarr(cli_demo_lake, group="analysis/cka/micro~teacher-stand-in@sigma2")
    at = open_app(cli_demo_lake, monkeypatch, {"page": "models"})
    assert at.radio(key="w_page").value == "models"
    assert at.selectbox(key="w_cka_table").options == ["micro vs teacher-stand-in · sigma 2"]
    caption = " ".join(c.value for c in at.caption)
    assert f"on the {stored.attrs['n_shared']:,} samples both probed at sigma 2" in caption
    spec, frames = chart_datasets(at, 0)
    assert spec["layer"][0]["encoding"]["color"]["scale"]["domain"] == [0, 1]
    cells = frames["cells"].set_index(["first_layer", "second_layer"])["cka"]
    for first in stored["first_layer"].values:
        for second in stored["second_layer"].values:
            assert cells[(first, second)] == float(stored["cka"].sel(first_layer=first, second_layer=second))
    table = at.dataframe[0].value  # the CKA matrix comes first; the generated sets' table follows
    assert list(table.index) == ["dec.8x8_in0", "enc.8x8_block2"]
