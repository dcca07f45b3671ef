"""The commit protocol: readers see only commits, errors restore, a killed writer is rolled back."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr

from lake import SAMPLES, LakeLockedError, LakeWriter, NotALakeError, Provenance, SchemaVersionError, open_lake
from lake.schema import SCHEMA_ATTR
from tests.conftest import REPO, tree_digest


def batch(tag: int, n: int) -> dict:
    return {
        "image": np.full((n, 64, 64, 3), tag, np.uint8),
        "sample_id": [f"t{tag}/{i}" for i in range(n)],
        "source": ["real"] * n,
        "split": ["train"] * n,
        "class_id": np.full(n, tag, np.int16),
        "wnid": ["n01440764"] * n,
        "class_name": ["tench"] * n,
        "origin": ["test"] * n,
        "seed": np.full(n, -1),
        "model_id": [""] * n,
    }


def test_plain_xarray_reads_labelled_samples(tmp_path):
    lake = tmp_path / "lake"
    with LakeWriter.open(lake, Provenance(job="test")) as writer:
        writer.table(SAMPLES).append(batch(3, 300))
    ds = xr.open_zarr(lake, group="samples")
    assert ds.sizes["sample"] == 300
    assert ds.image.dims == ("sample", "y", "x", "channel") and ds.image.dtype == np.uint8
    assert {"sample_id", "source", "split", "class_id", "wnid", "class_name", "origin"} <= set(ds.coords)
    assert ds.sample_id.values[299] == "t3/299"
    assert int(ds.image[5].max()) == 3
    [record] = open_lake(lake).provenance()
    assert record["job"] == "test" and record["status"] == "complete" and record["rows_added"] == {"samples": 300}


def test_uncommitted_rows_are_invisible_and_errors_restore_the_lake(tmp_path):
    lake = tmp_path / "lake"
    with LakeWriter.open(lake, Provenance(job="first")) as writer:
        writer.table(SAMPLES).append(batch(1, 10))
    before = tree_digest(lake)
    with pytest.raises(RuntimeError):
        with LakeWriter.open(lake, Provenance(job="second")) as writer:
            table = writer.table(SAMPLES)
            table.append(batch(2, 7))
            writer.commit()
            table.append(batch(3, 5))
            assert open_lake(lake).num_samples == 17  # committed rows visible, the rest not
            raise RuntimeError("bad input discovered mid-job")
    assert tree_digest(lake) == before
    assert open_lake(lake).num_samples == 10


def test_killed_writer_is_rolled_back_on_next_open(tmp_path):
    lake = tmp_path / "lake"
    script = textwrap.dedent(
        f"""
        import os, numpy as np
        from lake import LakeWriter, Provenance, SAMPLES
        from tests.lake.test_writer import batch
        with LakeWriter.open({str(lake)!r}, Provenance(job="killed")) as writer:
            table = writer.table(SAMPLES)
            table.append(batch(1, 20)); writer.commit()
            table.append(batch(2, 300))
            os.kill(os.getpid(), 9)
        """
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=False)
    assert open_lake(lake).num_samples == 20
    with LakeWriter.open(lake, Provenance(job="next")) as writer:
        table = writer.table(SAMPLES)
        assert table.num_rows == 20  # the uncommitted 300 rows were rolled back
        table.append(batch(4, 3))
    ds = xr.open_zarr(lake, group="samples")
    assert ds.sample_id.values.tolist() == [f"t1/{i}" for i in range(20)] + [f"t4/{i}" for i in range(3)]
    statuses = {r["job"]: (r["status"], r["rows_added"].get("samples")) for r in open_lake(lake).provenance()}
    assert statuses == {"killed": ("killed", 20), "next": ("complete", 3)}
    assert int(ds.image[21].max()) == 4


def test_second_writer_is_refused(tmp_path):
    lake = tmp_path / "lake"
    with LakeWriter.open(lake, Provenance(job="a")):
        with pytest.raises(LakeLockedError, match="being written"):
            with LakeWriter.open(lake, Provenance(job="b")):
                pass


def test_not_a_lake_and_newer_schema_are_refused(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("hello")
    with pytest.raises(NotALakeError, match="not a DMD2 Visualizer lake"):
        LakeWriter.open(other, Provenance(job="x")).__enter__()
    lake = tmp_path / "lake"
    with LakeWriter.open(lake, Provenance(job="a")):
        pass
    doc = json.loads((lake / "zarr.json").read_text())
    doc["attributes"][SCHEMA_ATTR] = 99
    (lake / "zarr.json").write_text(json.dumps(doc))
    with pytest.raises(SchemaVersionError, match="newer"):
        open_lake(lake)


def test_interrupt_keeps_committed_batches(tmp_path):
    lake = tmp_path / "lake"
    with pytest.raises(KeyboardInterrupt):
        with LakeWriter.open(lake, Provenance(job="interrupted")) as writer:
            table = writer.table(SAMPLES)
            table.append(batch(1, 8))
            writer.commit()
            table.append(batch(2, 4))  # in flight when Ctrl-C arrives
            raise KeyboardInterrupt
    assert xr.open_zarr(lake, group="samples").sample_id.values.tolist() == [f"t1/{i}" for i in range(8)]
    [record] = open_lake(lake).provenance()
    assert record["status"] == "interrupted" and record["rows_added"]["samples"] == 8


def test_a_new_lake_has_an_empty_samples_group_plain_readers_open(tmp_path):
    lake = tmp_path / "lake"
    with pytest.raises(RuntimeError):
        with LakeWriter.open(lake, Provenance(job="dies before its first commit")) as writer:
            writer.table(SAMPLES).append(batch(1, 5))
            raise RuntimeError("stop")
    ds = xr.open_zarr(lake, group="samples")
    assert ds.sizes["sample"] == 0 and ds.image.shape == (0, 64, 64, 3) and ds.image.dtype == np.uint8
    assert set(ds.coords) == {c.name for c in SAMPLES.columns if c.coord}
    assert ds.class_id.dtype == np.int16 and ds.seed.dtype == np.int64
    assert ds.image.encoding["chunks"] == (256, 64, 64, 3)
    opened = open_lake(lake)
    assert opened.num_samples == 0 and opened.samples().sizes["sample"] == 0 and len(opened.sample_ids()) == 0
    assert opened.provenance() == []
    # The first rows then go into the same arrays.
    with LakeWriter.open(lake, Provenance(job="second")) as writer:
        writer.table(SAMPLES).append(batch(2, 3))
    assert xr.open_zarr(lake, group="samples").sample_id.values.tolist() == ["t2/0", "t2/1", "t2/2"]


def test_creation_is_staged_beside_the_lake_and_abandoned_staging_is_removed(tmp_path):
    from lake.store import STAGING_PREFIX, create_lake

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)  # a process that has exited
    prefix = STAGING_PREFIX.format(name="lake")
    abandoned, running = tmp_path / f"{prefix}{dead_pid}", tmp_path / f"{prefix}{os.getppid()}"
    for folder in (abandoned, running):
        folder.mkdir()
        (folder / "zarr.json").write_text("{}")
    (tmp_path / "lake").mkdir()  # an empty directory is replaced by the complete lake
    create_lake(tmp_path / "lake", {})
    assert not abandoned.exists() and running.exists()  # a live creator's folder is left alone
    assert sorted(p.name for p in (tmp_path / "lake").iterdir()) == ["samples", "zarr.json"]
    assert open_lake(tmp_path / "lake").has("samples")
    with pytest.raises(NotALakeError):
        create_lake(tmp_path / "lake", {})


def test_creation_builds_in_place_when_nothing_can_be_made_beside_the_lake(tmp_path, monkeypatch):
    from pathlib import Path

    from lake.store import STAGING_PREFIX, create_lake

    real_mkdir = Path.mkdir

    def refuse_staging(self, *args, **kwargs):  # what a read-only parent folder does (root ignores modes)
        if self.name.startswith(STAGING_PREFIX.format(name="lake")):
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    (tmp_path / "lake").mkdir()
    monkeypatch.setattr(Path, "mkdir", refuse_staging)
    create_lake(tmp_path / "lake", {})
    assert xr.open_zarr(tmp_path / "lake", group="samples").sizes["sample"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lake"]


def test_temp_files_a_killed_writer_left_are_removed_by_the_next_writer(tmp_path):
    # kill -9 during an atomic write (zarr's `zarr.<uuid>.partial`, ours `<name>.<pid>.partial`)
    # leaves its temp file; the next writer, holding the lock, deletes every one of them.
    lake = tmp_path / "lake"
    with LakeWriter.open(lake, Provenance(job="first")) as writer:
        writer.table(SAMPLES).append(batch(1, 10))
    orphans = [lake / "samples" / "class_id" / "zarr.0123abcd.partial", lake / "samples" / "image" / "c" / "zarr.json.999.partial", lake / "zarr.json.42.partial"]
    for orphan in orphans:
        orphan.parent.mkdir(parents=True, exist_ok=True)
        orphan.write_text("{")
    with LakeWriter.open(lake, Provenance(job="second")) as writer:
        writer.table(SAMPLES).append(batch(2, 5))
    assert not [p for p in lake.rglob("*.partial")]
    assert open_lake(lake).num_samples == 15
