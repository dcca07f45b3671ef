"""`ingest activations` on a lake that also holds text-to-image samples: the ImageNet denoiser
probes real and ImageNet-generated samples only (text-to-image ones have class -1 or another
model family), and naming one with --ids is a one-line refusal."""
from __future__ import annotations

import numpy as np
import pytest

from ingest.activations import probe_activations
from ingest.cli import main
from ingest.errors import InputError
from ingest.core.models import ModelSpec
from ingest.core import reconstruct_sample
from ingest.pipeline import SampleBatch, SampleSink
from lake import LakeWriter, Provenance, open_lake
from lake.layout import T2I_SPLIT
from models import LAYER_ALIASES
from tests.conftest import photo_like_images, tree_digest


def lake_with_t2i_rows(path):
    """3 real samples, then 2 text-to-image rows (one with no class, one with a class)."""
    with LakeWriter.open(path, Provenance(job="test")) as writer:
        sink = SampleSink(writer)
        sink.write(SampleBatch(images=photo_like_images(3, 1), sample_ids=[f"real/{i}" for i in range(3)],
                               class_ids=np.array([1, 2, 3]), origins=["test"] * 3, source="real", split="val"))
        sink.write(SampleBatch(images=photo_like_images(2, 2), sample_ids=["t2i/m/abc/s0/0", "t2i/m/abd/s0/0"],
                               class_ids=np.array([-1, 281]), origins=["t2i m: a cat"] * 2, source="generated",
                               split=T2I_SPLIT))
    return path


def test_source_all_skips_text_to_image_samples(tmp_path):
    lake = lake_with_t2i_rows(tmp_path / "lake")
    assert main(["activations", "--lake", str(lake), "--preset", "tiny", "--device", "cpu", "--no-progress",
                 "--layers", "bottleneck", "--sigmas", "2", "--source", "all"]) == 0
    table = open_lake(lake).activations(LAYER_ALIASES["bottleneck"])
    assert sorted(table["sample_id"].values.tolist()) == ["real/0", "real/1", "real/2"]
    assert bool(np.asarray(table["probed"].values).all())
    # On-demand reconstructions rerun the sample's whole compute block, text-to-image rows included.
    rebuilt = reconstruct_sample(lake, "real/2", device="cpu")
    assert rebuilt.x0_hat.shape == (1, 64, 64, 3) and rebuilt.sigmas == [2.0]


def test_naming_a_text_to_image_sample_is_refused_in_one_line(tmp_path):
    lake = lake_with_t2i_rows(tmp_path / "lake")
    before = tree_digest(lake)
    with pytest.raises(InputError) as refused:
        probe_activations(lake, ModelSpec(preset="tiny", device="cpu"), "bottleneck", "2",
                          sample_ids=["real/0", "t2i/m/abd/s0/0"], progress=False)
    message = str(refused.value)
    assert "t2i/m/abd/s0/0 is a text-to-image sample" in message and "\n" not in message
    assert tree_digest(lake) == before
