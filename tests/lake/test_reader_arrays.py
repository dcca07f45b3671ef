"""Lake.arrays / array_info describe stored arrays without reading them, and
Lake.column(native=True) keeps the stored dtype: what the explorer reads through."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lake import LakeWriter, Provenance, open_lake
from lake import layout
from lake.layout import AnalysisKey


def _compare_lake(path: Path) -> AnalysisKey:
    key = AnalysisKey("enc.8x8_block2", 2.0)
    with LakeWriter.open(path, Provenance(job="test")) as writer:
        staged = writer.staged(key.compare_group)
        table = staged.table(layout.compare_spec(key, 2, {"analysis": "compare"}))
        table.append({
            "real_fraction": np.array([0.5, 1.0, 0.0], np.float32),
            "nearest_real_distance": np.array([1.0, 2.0, np.nan], np.float32),
            "sample_id": np.array(["a", "b", "c"], dtype=object), "source": np.array(["real", "real", "generated"], dtype=object),
            "class_id": np.array([3, 3, 7], np.int16), "split": np.array(["val", "val", ""], dtype=object),
            "sample_row": np.array([0, 1, -1]),
        })
        staged.write_array("class", np.array([3, 7], np.int16), ("class",))
        staged.publish()
    return key


def test_arrays_describe_every_array_of_a_group_sorted_by_name(tmp_path: Path) -> None:
    key = _compare_lake(tmp_path / "lake")
    lake = open_lake(tmp_path / "lake")
    arrays = {a.name: a for a in lake.arrays(key.compare_group)}
    assert list(arrays) == sorted(arrays)
    assert {"real_fraction", "nearest_real_distance", "sample_id", "source", "class_id", "split", "sample_row", "class"} <= set(arrays)
    assert arrays["real_fraction"].shape == (3,) and arrays["real_fraction"].dtype == np.float32
    assert arrays["real_fraction"].dims == ("sample",) and arrays["real_fraction"].per_sample
    assert arrays["class"].dims == ("class",) and not arrays["class"].per_sample
    assert arrays["sample_id"].dtype.kind in "TO"
    assert arrays["class_id"].dtype == np.int16 and arrays["class_id"].ndim == 1
    assert lake.array_info(key.compare_group, "sample_row") == arrays["sample_row"]
    assert lake.array_info(key.compare_group, "sample_row").chunks[0] >= 1
    assert lake.array_info(key.compare_group, "missing") is None
    assert lake.arrays("analysis/compare/nothing@sigma1") == []


def test_column_native_keeps_the_stored_string_dtype_and_the_default_gives_objects(tmp_path: Path) -> None:
    key = _compare_lake(tmp_path / "lake")
    lake = open_lake(tmp_path / "lake")
    native = lake.column(key.compare_group, "sample_id", native=True)
    assert native.dtype.kind == "T" and list(native) == ["a", "b", "c"]
    assert lake.column(key.compare_group, "sample_id").dtype == object
    assert list(lake.column(key.compare_group, "source", slice(1, 3), native=True)) == ["real", "generated"]
    np.testing.assert_array_equal(lake.column(key.compare_group, "sample_row", [2, 0], native=True), [-1, 0])
