"""`python -m ingest npz`: pixel-exact, label conversion, order, selection, resume, bad input."""
from __future__ import annotations

import subprocess
import sys
import zipfile

import numpy as np
import pytest
import xarray as xr

from lake import imagenet_classes, open_lake
from tests.conftest import REPO, run_cli, tree_digest


def ingest(*args: str):
    return run_cli("ingest", "npz", "--no-progress", *map(str, args))


def test_pixel_exact_with_converted_labels(npz_factory, tmp_path):
    labels = np.array([1, 2, 449, 1000, 1, 17, 300])
    path, images, _ = npz_factory("train_data_batch_1.npz", 7, labels=labels)
    result = ingest(path, "--lake", tmp_path / "lake", "--batch-size", "3")
    assert result.returncode == 0, result.stderr
    ds = xr.open_zarr(tmp_path / "lake", group="samples")
    np.testing.assert_array_equal(ds.image.values, images)
    table = imagenet_classes()
    expected = table.class_ids_from_imagenet64(labels)
    assert ds.class_id.values.tolist() == expected.tolist()
    assert ds.class_id.values[0] == 278 and ds.wnid.values[0] == "n02119789" and ds.class_name.values[0] == "kit_fox"
    assert ds.sample_id.values.tolist() == [f"in64/train_data_batch_1/{i}" for i in range(7)]
    assert ds.origin.values[3] == "train_data_batch_1.npz#row=3"
    assert set(ds.split.values.tolist()) == {"train"} and set(ds.source.values.tolist()) == {"real"}


def test_uncompressed_npz_and_numeric_file_order(npz_factory, tmp_path):
    p10, _, _ = npz_factory("train_data_batch_10.npz", 2, seed=10)
    p2, _, _ = npz_factory("train_data_batch_2.npz", 2, seed=2, compressed=False)
    pval, _, _ = npz_factory("val_data.npz", 2, seed=3)
    assert ingest(p10, pval, p2, "--lake", tmp_path / "lake").returncode == 0
    ds = xr.open_zarr(tmp_path / "lake", group="samples")
    assert [s.rsplit("/", 1)[0] for s in ds.sample_id.values[::2]] == [
        "in64/train_data_batch_2", "in64/train_data_batch_10", "in64/val_data"]
    assert ds.split.values.tolist() == ["train"] * 4 + ["val"] * 2


def batch_folder(npz_factory, tmp_path, name="batches"):
    """A folder as ImageNet64 ships it, plus things that are not NPZ files."""
    folder = tmp_path / name
    folder.mkdir()
    for stem, seed in (("train_data_batch_10", 10), ("train_data_batch_2", 2), ("val_data", 3)):
        npz_factory(f"{name}/{stem}.npz", 3, seed=seed)
    (folder / "README.txt").write_text("not an npz")
    (folder / "nested").mkdir()
    npz_factory(f"{name}/nested/train_data_batch_1.npz", 2, seed=1)  # subfolders are not searched
    return folder


def test_folder_takes_its_npz_files_in_numeric_order(npz_factory, tmp_path):
    folder = batch_folder(npz_factory, tmp_path)
    result = ingest(folder, "--lake", tmp_path / "lake", "--batch-size", "2")
    assert result.returncode == 0, result.stderr
    ds = xr.open_zarr(tmp_path / "lake", group="samples")
    assert ds.sample_id.values.tolist() == [
        f"in64/{stem}/{row}" for stem in ("train_data_batch_2", "train_data_batch_10", "val_data") for row in range(3)]
    # The same lake as naming the files one by one, in any order, chunk for chunk.
    files = [folder / "val_data.npz", folder / "train_data_batch_10.npz", folder / "train_data_batch_2.npz"]
    assert ingest(*files, "--lake", tmp_path / "by_file").returncode == 0
    assert tree_digest(tmp_path / "lake" / "samples") == tree_digest(tmp_path / "by_file" / "samples")


def test_folders_and_files_mixed_each_file_once(npz_factory, tmp_path):
    folder = batch_folder(npz_factory, tmp_path)
    other = tmp_path / "more"
    other.mkdir()
    npz_factory("more/train_data_batch_3.npz", 2, seed=4)
    # The folder's own file named again (by another spelling) and the folder twice: taken once.
    args = [folder / "val_data.npz", other / "train_data_batch_3.npz", folder, f"{folder}/../batches/val_data.npz", folder]
    result = ingest(*args, "--lake", tmp_path / "lake")
    assert result.returncode == 0, result.stderr
    ids = xr.open_zarr(tmp_path / "lake", group="samples").sample_id.values.tolist()
    assert [i.rsplit("/", 1)[0] for i in ids] == ["in64/train_data_batch_2"] * 3 + ["in64/train_data_batch_3"] * 2 + [
        "in64/train_data_batch_10"] * 3 + ["in64/val_data"] * 3
    assert len(set(ids)) == len(ids)
    inputs = [f["path"] for f in open_lake(tmp_path / "lake").provenance()[-1]["inputs"]]
    assert len(inputs) == 4


def test_bad_paths_are_one_line_errors_and_leave_the_lake_unchanged(npz_factory, tmp_path):
    good, _, _ = npz_factory("train_data_batch_1.npz", 4)
    lake = tmp_path / "lake"
    assert ingest(good, "--lake", lake).returncode == 0
    before = tree_digest(lake)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no batches here")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    npz_factory("elsewhere/train_data_batch_1.npz", 2, seed=9)
    cases = [
        ([good, empty], f"{empty}: is a folder with no .npz files"),
        ([good, tmp_path / "missing_dir"], f"{tmp_path / 'missing_dir'}: does not exist"),
        ([tmp_path / "gone.npz"], f"{tmp_path / 'gone.npz'}: does not exist"),
        ([good, elsewhere], "two different files named train_data_batch_1.npz"),
    ]
    for paths, message in cases:
        result = ingest(*paths, "--lake", lake)
        assert result.returncode == 2, (paths, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert tree_digest(lake) == before
    assert not (tmp_path / "new_lake").exists()
    assert ingest(empty, "--lake", tmp_path / "new_lake").returncode == 2
    assert not (tmp_path / "new_lake").exists()


def test_rerun_adds_nothing_and_larger_limit_adds_the_difference(npz_factory, tmp_path):
    path, images, _ = npz_factory("train_data_batch_1.npz", 50)
    lake = tmp_path / "lake"
    assert ingest(path, "--lake", lake, "--limit", "20").returncode == 0
    assert ingest(path, "--lake", lake, "--limit", "20").returncode == 0
    assert open_lake(lake).num_samples == 20
    assert ingest(path, "--lake", lake, "--limit", "35", "--batch-size", "4").returncode == 0
    ds = xr.open_zarr(lake, group="samples")
    assert ds.sample_id.values.tolist() == [f"in64/train_data_batch_1/{i}" for i in range(35)]
    np.testing.assert_array_equal(ds.image.values, images[:35])
    jobs = [r["rows_added"].get("samples", 0) for r in open_lake(lake).provenance()]
    assert jobs == [20, 0, 15]


def test_balanced_subset_by_class(npz_factory, tmp_path):
    labels = np.array([1, 2, 1, 3, 1, 2, 2, 1])  # ImageNet64 labels
    path, _, _ = npz_factory("train_data_batch_1.npz", 8, labels=labels)
    kit_fox, eng_setter = imagenet_classes().class_ids_from_imagenet64(np.array([1, 2]))
    wnid = imagenet_classes().wnids[eng_setter]
    result = ingest(path, "--lake", tmp_path / "lake", "--classes", f"{kit_fox},{wnid}", "--per-class", "2")
    assert result.returncode == 0, result.stderr
    ds = xr.open_zarr(tmp_path / "lake", group="samples")
    assert ds.sample_id.values.tolist() == [f"in64/train_data_batch_1/{i}" for i in (0, 1, 2, 5)]


def corrupt(path, how):
    if how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "not a zip":
        path.write_text("this is not an npz file")
    elif how == "flipped bytes":
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("data.npy")
        data = bytearray(path.read_bytes())
        middle = info.header_offset + 100 + info.compress_size // 2
        data[middle : middle + 64] = bytes(64)
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["truncated", "not a zip", "flipped bytes"])
def test_corrupt_file_leaves_lake_unchanged(npz_factory, tmp_path, how):
    good, _, _ = npz_factory("train_data_batch_1.npz", 30, seed=1)
    bad, _, _ = npz_factory("train_data_batch_2.npz", 600, seed=2)
    lake = tmp_path / "lake"
    assert ingest(good, "--lake", lake, "--limit", "10").returncode == 0
    before = tree_digest(lake)
    corrupt(bad, how)
    result = ingest(good, bad, "--lake", lake, "--batch-size", "8")
    assert result.returncode == 2
    assert "train_data_batch_2.npz" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert tree_digest(lake) == before


def save_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"labels": np.ones(3, np.int64)}, "missing 'data'"),
        ({"data": np.zeros((3, 12288), np.uint8)}, "missing 'labels'"),
        ({"data": np.zeros((3, 12000), np.uint8), "labels": np.ones(3, np.int64)}, "wrong row length 12000"),
        ({"data": np.zeros((3, 12288), np.uint8), "labels": np.array([1, 0, 5])}, "label 0 is outside 1..1000 at row 1"),
        ({"data": np.zeros((3, 12288), np.uint8), "labels": np.array([1, 1001, 5])}, "label 1001"),
        ({"data": np.zeros((3, 12288), np.uint8), "labels": np.ones(4, np.int64)}, "3 images but 4 labels"),
    ],
)
def test_malformed_arrays_are_one_line_errors(tmp_path, npz_factory, arrays, message):
    lake = tmp_path / "lake"
    good, _, _ = npz_factory("train_data_batch_1.npz", 4)
    assert ingest(good, "--lake", lake).returncode == 0
    before = tree_digest(lake)
    bad = save_npz(tmp_path / "val_data.npz", **arrays)
    result = ingest(bad, "--lake", lake)
    assert result.returncode == 2
    assert message in result.stderr and "val_data.npz" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert tree_digest(lake) == before


def test_bad_lake_and_flags(tmp_path, npz_factory):
    good, _, _ = npz_factory("train_data_batch_1.npz", 4)
    not_lake = tmp_path / "photos"
    not_lake.mkdir()
    (not_lake / "a.txt").write_text("x")
    result = ingest(good, "--lake", not_lake)
    assert result.returncode == 2 and "not a DMD2 Visualizer lake" in result.stderr
    assert sorted(p.name for p in not_lake.iterdir()) == ["a.txt"]
    result = ingest(good, "--lake", tmp_path / "lake", "--classes", "notaclass")
    assert result.returncode == 2 and "--classes" in result.stderr
    result = ingest(good, "--lake", tmp_path / "lake", "--batch-size", "0")
    assert result.returncode == 2 and "--batch-size" in result.stderr
    assert not (tmp_path / "lake").exists()


def test_help_explains_flags_without_importing_torch():
    result = run_cli("ingest", "npz", "--help")
    assert result.returncode == 0
    for flag in ("--lake", "--split", "--limit", "--classes", "--per-class", "--batch-size"):
        assert flag in result.stdout
    for words in ("folders", "taken once", "numeric order"):
        assert words in " ".join(result.stdout.split())
    check = "import sys; from ingest.cli import build_parser; build_parser(); print('torch' in sys.modules, 'zarr' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == "False False", out.stderr
