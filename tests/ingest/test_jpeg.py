"""`python -m ingest jpeg`: centre crop + box resize, RGB conversion, classes from folders, errors."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from PIL import Image

from lake import imagenet_classes
from tests.conftest import photo_like_images, run_cli, tree_digest

GOLDFISH, TENCH = "n01443537", "n01440764"


def ingest(*args):
    return run_cli("ingest", "jpeg", "--no-progress", *map(str, args))


@pytest.fixture
def jpeg_root(tmp_path):
    root = tmp_path / "ILSVRC" / "train"
    (root / GOLDFISH).mkdir(parents=True)
    (root / TENCH).mkdir(parents=True)
    big = np.kron(photo_like_images(1, 5)[0], np.ones((4, 6, 1), np.uint8))  # 256x384, not square
    Image.fromarray(big).save(root / GOLDFISH / "a.png")
    Image.fromarray(big[:, :, 0], mode="L").save(root / GOLDFISH / "b_gray.JPEG", quality=95)
    Image.fromarray(big).convert("CMYK").save(root / TENCH / "c_cmyk.jpg", quality=95)
    Image.fromarray(photo_like_images(1, 6)[0]).save(root / TENCH / "d.JPEG", quality=95)
    (root / TENCH / "notes.txt").write_text("not an image, not an image suffix: ignored")
    return root, big


def test_centre_crop_box_resize_and_classes(jpeg_root, tmp_path):
    root, big = jpeg_root
    result = ingest(root, "--lake", tmp_path / "lake", "--workers", "2")
    assert result.returncode == 0, result.stderr
    ds = xr.open_zarr(tmp_path / "lake", group="samples")
    # Folders in sorted wnid order (tench n01440764 before goldfish n01443537), files sorted within.
    assert ds.sample_id.values.tolist() == [f"jpeg/{TENCH}/c_cmyk.jpg", f"jpeg/{TENCH}/d.JPEG", f"jpeg/{GOLDFISH}/a.png", f"jpeg/{GOLDFISH}/b_gray.JPEG"]
    assert ds.origin.values[2] == f"{GOLDFISH}/a.png"
    table = imagenet_classes()
    assert ds.class_id.values.tolist() == [table.class_id_by_wnid[w] for w in (TENCH, TENCH, GOLDFISH, GOLDFISH)]
    # Centre crop of the 256x384 PNG is columns 64..320; box filter = mean of each 4x4 block.
    square = big[:, 64:320].astype(np.float64)
    expected = square.reshape(64, 4, 64, 4, 3).mean(axis=(1, 3))
    assert np.abs(ds.image.values[2].astype(np.float64) - expected).max() <= 1.0
    gray = ds.image.values[3]
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()  # grayscale -> RGB
    assert ds.image.values[0].std() > 5  # CMYK decoded to a real RGB picture


def test_rerun_is_idempotent(jpeg_root, tmp_path):
    root, _ = jpeg_root
    lake = tmp_path / "lake"
    assert ingest(root, "--lake", lake, "--limit", "2").returncode == 0
    digest = tree_digest(lake / "samples")
    assert ingest(root, "--lake", lake, "--limit", "2").returncode == 0
    assert tree_digest(lake / "samples") == digest
    assert ingest(root, "--lake", lake).returncode == 0
    assert xr.open_zarr(lake, group="samples").sizes["sample"] == 4


def test_unknown_wnid_folder_and_broken_image(jpeg_root, tmp_path):
    root, _ = jpeg_root
    lake = tmp_path / "lake"
    assert ingest(root, "--lake", lake, "--limit", "1").returncode == 0
    before = tree_digest(lake)
    (root / "n99999999").mkdir()
    result = ingest(root, "--lake", lake)
    assert result.returncode == 2 and "n99999999" in result.stderr and "wnid" in result.stderr
    (root / "n99999999").rmdir()
    (root / TENCH / "e_broken.JPEG").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    result = ingest(root, "--lake", lake)
    assert result.returncode == 2 and "e_broken.JPEG" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert tree_digest(lake) == before
