"""lake.layout owns every path, the analysis key and the table specs; the typed readers and
the writer's group swap work on real Zarr stores."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from lake import LakeWriter, Provenance, open_lake
from lake import layout
from lake.layout import AnalysisKey, LayerShape, activations_spec, parse_key


def test_key_round_trips_and_names_every_result_group() -> None:
    key = AnalysisKey("enc.8x8_block2", 0.5)
    assert key.name == "enc.8x8_block2@sigma0.5"
    assert parse_key(key.name) == key
    assert parse_key("dec.8x8_in0@sigma80") == AnalysisKey("dec.8x8_in0", 80.0)
    assert key.pca_group == "analysis/pca/enc.8x8_block2@sigma0.5"
    assert key.embedding_group("umap2d") == "analysis/embeddings/enc.8x8_block2@sigma0.5/umap2d"
    assert key.knn_group == layout.analysis_group("knn", key) == "analysis/knn/enc.8x8_block2@sigma0.5"
    assert key.activations_group == "activations/enc.8x8_block2"
    # The float32 value is what the key names: 0.1 prints as 0.1, not 0.10000000149.
    assert AnalysisKey("x", float(np.float32(0.1))).name == "x@sigma0.1"


@pytest.mark.parametrize("text", ["enc.8x8_block2", "@sigma2", "enc@sigmaabc"])
def test_bad_keys_are_one_line_value_errors(text: str) -> None:
    with pytest.raises(ValueError, match=repr(text).replace("[", r"\[")) as info:
        parse_key(text)
    assert "\n" not in str(info.value)


def test_unknown_analysis_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown analysis kind 'umap'"):
        layout.analysis_group("umap", "x@sigma2")


def test_activation_spec_chunks_the_sigma_axis_one_wide(tmp_path: Path) -> None:
    spec = activations_spec("enc.8x8_block2", LayerShape(8, 8, 8), [0.5, 2.0], True, {"model_id": "m", "noise_seed": 0})
    assert spec.column("mean").chunks[1:] == (1, 8)
    assert spec.column("probed").chunks[1:] == (1,)
    assert spec.column("spatial").chunks[1:] == (1, 8, 8, 8)
    assert spec.column("sample_id").chunks == (spec.column("sample_id").rows_per_chunk,)
    with LakeWriter.open(tmp_path / "lake", Provenance(job="test")) as writer:
        table = writer.table(spec)
        table.append({
            "mean": np.ones((3, 2, 8), np.float32), "probed": np.ones((3, 2), bool),
            "spatial": np.ones((3, 2, 8, 8, 8), np.float16), "sample_id": np.array(["a", "b", "c"], dtype=object),
            "source": np.array(["real"] * 3, dtype=object), "class_id": np.zeros(3, np.int16),
        })
        table.extend_axis("sigma", [10.0])
    meta = json.loads((tmp_path / "lake" / "activations" / "enc.8x8_block2" / "mean" / "zarr.json").read_text())
    assert meta["shape"] == [3, 3, 8]
    assert meta["chunk_grid"]["configuration"]["chunk_shape"][1:] == [1, 8]
    lake = open_lake(tmp_path / "lake")
    assert lake.activation_layers() == ["enc.8x8_block2"]
    assert lake.activation_sigmas("enc.8x8_block2") == [0.5, 2.0, 10.0]
    # The new sigma's cells read as not probed (NaN, False); the old ones are untouched.
    at10 = lake.activations("enc.8x8_block2", 10)
    assert at10["mean"].dims == ("sample", "channel")
    assert np.isnan(at10["mean"].values).all() and not at10["probed"].values.any()
    np.testing.assert_array_equal(lake.activations("enc.8x8_block2", 2)["mean"].values, np.ones((3, 8)))
    with pytest.raises(KeyError, match="no sigma 7"):
        lake.activations("enc.8x8_block2", 7)


def test_typed_readers_read_committed_columns_attrs_and_results(tmp_path: Path) -> None:
    key = AnalysisKey("enc.8x8_block2", 2.0)
    path = tmp_path / "lake"
    with LakeWriter.open(path, Provenance(job="test")) as writer:
        staged = writer.staged(key.knn_group)
        table = staged.table(layout.knn_spec(key, 2, {"analysis": "knn", "key": key.name}))
        labels = {"sample_id": np.array(["a", "b", "c"], dtype=object), "source": np.array(["real"] * 3, dtype=object),
                  "class_id": np.zeros(3, np.int16), "split": np.array([""] * 3, dtype=object),
                  "sample_row": np.arange(3)}
        rows = np.array([[1, 2], [0, 2], [0, 1]])
        table.append({**labels, "neighbor_id": labels["sample_id"][rows], "neighbor_row": rows,
                      "distance": np.arange(6, dtype=np.float32).reshape(3, 2)})
        staged.write_array("note", np.array(["x", "y"], dtype=object), ("n",))
        staged.publish()
    lake = open_lake(path)
    assert lake.result_attrs("knn", key) == {"analysis": "knn", "key": key.name}
    assert lake.result("knn", key)["neighbor_row"].dims == ("sample", "k")
    assert lake.shape(key.knn_group, "distance") == (3, 2)
    assert lake.shape(key.knn_group, "missing") is None
    np.testing.assert_array_equal(lake.column(key.knn_group, "neighbor_row", cols=slice(0, 1)), rows[:, :1])
    np.testing.assert_array_equal(lake.column(key.knn_group, "neighbor_row", [2, 0]), rows[[2, 0]])
    assert list(lake.column(key.knn_group, "note")) == ["x", "y"]
    assert lake.results("knn") == [key.knn_group]
    assert lake.attrs("analysis/nothing") == {}
    # The provenance record counts the rows under the final path, not the staging one.
    assert lake.provenance()[-1]["rows_added"] == {key.knn_group: 3}


def test_swap_replaces_an_old_result_and_leaves_no_staging_or_trash(tmp_path: Path) -> None:
    key = AnalysisKey("l", 2.0)
    path = tmp_path / "lake"
    for value in (1.0, 2.0):
        with LakeWriter.open(path, Provenance(job="test")) as writer:
            staged = writer.staged(key.compare_group)
            staged.write_array("value", np.array([value]), ("one",))
            staged.publish()
    lake = open_lake(path)
    np.testing.assert_array_equal(lake.column(key.compare_group, "value"), [2.0])
    assert xr.open_zarr(path, group=key.compare_group)["value"].values.tolist() == [2.0]
    leftovers = [p for p in (path / "analysis" / "compare").iterdir() if "staging" in p.name]
    assert leftovers == [] and not (path / ".dmd2viz-trash").exists()


def test_a_failed_session_drops_the_staged_group_and_keeps_the_old_one(tmp_path: Path) -> None:
    key = AnalysisKey("l", 2.0)
    path = tmp_path / "lake"
    with LakeWriter.open(path, Provenance(job="test")) as writer:
        staged = writer.staged(key.compare_group)
        staged.write_array("value", np.array([1.0]), ("one",))
        staged.publish()
    before = (path / "zarr.json").read_text()
    with pytest.raises(RuntimeError, match="boom"):
        with LakeWriter.open(path, Provenance(job="test")) as writer:
            staged = writer.staged(key.compare_group)
            staged.write_array("value", np.array([9.0]), ("one",))
            raise RuntimeError("boom")
    assert (path / "zarr.json").read_text() == before
    np.testing.assert_array_equal(open_lake(path).column(key.compare_group, "value"), [1.0])
    assert not any("staging" in name for name in os.listdir(path / "analysis" / "compare"))


# --------------------------------------------------------------------------- text-to-image tables


def test_t2i_names_ids_and_layers_round_trip() -> None:
    assert layout.prompt_id("a photo of a cat") == layout.prompt_id("a photo of a cat", "")
    assert layout.prompt_id("a photo of a cat") != layout.prompt_id("a photo of a cat", "blurry")
    assert layout.prompt_id("ab", "c") != layout.prompt_id("a", "bc")  # the separator keeps the two fields apart
    pid = layout.prompt_id("a photo of a cat")
    assert len(pid) == 12 and int(pid, 16) >= 0
    assert layout.t2i_sample_id("dmd2-sdxl-4step", pid, 3, 7) == f"t2i/dmd2-sdxl-4step/{pid}/s3/7"
    layer = layout.t2i_layer("dmd2-sdxl-4step", "mid_block.attentions.0", residual=True)
    assert layer == "dmd2-sdxl-4step.mid_block.attentions.0+update"
    assert layout.split_t2i_layer(layer) == ("dmd2-sdxl-4step", "mid_block.attentions.0", True)
    assert layout.split_t2i_layer("dmd2-sdxl-4step.down_blocks.2.attentions.1") == ("dmd2-sdxl-4step", "down_blocks.2.attentions.1", False)
    for block in ("enc.8x8_block2", "dec.8x8_in0", "out_conv", "bottleneck"):
        assert layout.split_t2i_layer(block) is None
    for bad in ("Upper", "with.dot", "", "-lead", "x" * 65):
        with pytest.raises(ValueError, match="not a model name"):
            layout.check_t2i_name(bad)
    assert layout.preview_size(1024, 1024) == (256, 256)
    assert layout.preview_size(768, 1344) == (146, 256)
    assert layout.preview_size(64, 64) == (64, 64)


def test_t2i_tables_read_back_through_the_typed_readers_and_plain_xarray(tmp_path: Path) -> None:
    name, timesteps, sigmas = "tiny-sdxl", [999, 749, 499, 249], [14.6, 3.2, 1.6, 0.77]
    path = tmp_path / "lake"
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 96, 128, 3), dtype=np.uint8)
    x0 = rng.integers(0, 256, (2, 4, 96, 128, 3), dtype=np.uint8)
    pid = layout.prompt_id("a red bus")
    with LakeWriter.open(path, Provenance(job="test")) as writer:
        samples = writer.table(layout.t2i_samples_spec(name, 96, 128, timesteps, {"family": "sdxl", "unet_sha256": "ab"}))
        samples.append({"image": images, "x0": x0, "sample_id": [layout.t2i_sample_id(name, pid, 0, i) for i in range(2)],
                        "prompt_id": [pid] * 2, "prompt": ["a red bus"] * 2, "negative_prompt": [""] * 2,
                        "guidance": np.zeros(2, np.float32), "seed": np.zeros(2, np.int64), "index": np.arange(2),
                        "class_id": np.full(2, 779, np.int16)})
        prompts = writer.table(layout.t2i_prompts_spec(name, 8, {"family": "sdxl"}))
        prompts.append({"pooled": np.ones((1, 8), np.float32), "prompt_id": [pid], "prompt": ["a red bus"],
                        "negative_prompt": [""], "class_id": np.array([779], np.int16)})
        acts = writer.table(layout.t2i_activations_spec(name, "mid_block.attentions.0", LayerShape(16, 4, 4), timesteps,
                                                        sigmas, keep_spatial=True, attrs={"model_id": name}))
        acts.append({"mean": np.ones((2, 4, 16), np.float32), "probed": np.ones((2, 4), bool),
                     "spatial": np.zeros((2, 4, 16, 4, 4), np.float16), "sample_id": ["a", "b"],
                     "source": ["generated"] * 2, "class_id": np.full(2, 779, np.int16)})
    lake = open_lake(path)
    assert lake.t2i_models() == [name]
    identity = lake.t2i_model(name)
    assert identity["family"] == "sdxl" and identity["timesteps"] == timesteps and (identity["height"], identity["width"]) == (96, 128)
    ds = lake.t2i_samples(name)
    assert ds["image"].dims == ("sample", "y", "x", "channel") and ds["image"].shape == (2, 96, 128, 3)
    assert ds["x0"].dims == ("sample", "timestep", "preview_y", "preview_x", "channel")
    assert list(ds["timestep"].values) == timesteps
    np.testing.assert_array_equal(ds["x0"].values, x0)
    assert list(ds["prompt"].values) == ["a red bus"] * 2
    assert lake.t2i_prompts(name)["pooled"].dims == ("prompt", "feature")
    layer = layout.t2i_layer(name, "mid_block.attentions.0")
    assert layer in lake.activation_layers()
    np.testing.assert_allclose(lake.activation_sigmas(layer), sigmas, rtol=1e-6)
    assert lake.attrs(layout.activations_group(layer))["timesteps"] == timesteps
    # Notebook users read the same tables with plain xarray.
    plain = xr.open_zarr(path, group=layout.t2i_samples_group(name))
    assert plain["sample_id"].values[1] == layout.t2i_sample_id(name, pid, 0, 1)


def test_sigma_position_finds_a_sigma_typed_as_keys_print_it() -> None:
    from lake.reader import sigma_position

    stored = [float(np.float32(14.614641)), float(np.float32(1.6128937)), 2.0]
    assert sigma_position(stored, 14.6146) == 0 and sigma_position(stored, 1.61289) == 1
    assert sigma_position(stored, 2) == 2 and sigma_position(stored, 14.61) is None
