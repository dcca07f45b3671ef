"""The Noise levels page on the CLI-built demo lake's text-to-image layer: a prompt's sample
follows its four steps (timesteps 999, 749, 499, 249 as sigmas) through the joint embedding
`analysis trajectory` made, and the strip under the map is its stored x0 per step, never an
offer to run the ImageNet denoiser on it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from apptest import chart_datasets, markdown_text, open_app
from lake import open_lake
from lake.layout import T2I_SPLIT, t2i_samples_group

pytestmark = pytest.mark.timeout(1800)  # waits for the session's demo build

LAYER = "dmd2-sdxl-4step.mid_block.attentions.0"


def test_a_text_to_image_samples_path_is_its_steps_and_the_strip_its_previews(cli_demo_lake: Path, monkeypatch):
    lake = open_lake(cli_demo_lake)
    assert LAYER in lake.joint_embedding_layers()
    ids, splits = lake.column("samples", "sample_id"), lake.column("samples", "split")
    sample = str(ids[splits == T2I_SPLIT][3])
    at = open_app(cli_demo_lake, monkeypatch, query={"sel": sample})
    at.radio(key="w_page").set_value("noise").run()
    at.selectbox(key="w_noise_layer").set_value(LAYER).run()
    _, frames = chart_datasets(at, 0)
    paths = frames["paths"]
    mine = paths[paths["role"] == "selected"].sort_values("order")
    joint = lake.joint_embedding(LAYER)
    row = int(np.flatnonzero(np.asarray(joint["sample_id"].values) == sample)[0])
    sigmas = np.asarray(joint["sigma"].values)
    order = np.argsort(-sigmas)  # from the noisiest step (timestep 999) down
    np.testing.assert_array_equal(mine[["x", "y"]].to_numpy(np.float32), np.asarray(joint["embedding"].values[row])[order])
    assert len(mine) == 4
    images = [i for image in at.get("image") for i in image.proto.imgs]
    timesteps = lake.t2i_model("dmd2-sdxl-4step")["timesteps"]
    assert [i.caption.split(" · ")[0] for i in images] == [f"t={t}" for t in timesteps]
    assert not [b for b in at.button if "Compute its reconstructions" in b.label]
    assert "x0 estimate after each step" in " ".join(c.value for c in at.caption)
    assert lake.has(t2i_samples_group("dmd2-sdxl-4step"))
    assert f"**Along the path of** `{sample}` · 4 steps of text-to-image model `dmd2-sdxl-4step`" in markdown_text(at)
