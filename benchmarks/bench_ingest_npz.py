"""Benchmark: `python -m ingest npz` against merely decompressing the same NPZ.

Builds an ImageNet64-format NPZ of photographic crops (default 60,000 images, from the
demo photographs), then in one run times `np.load(path)["data"]` (the baseline: just
decompressing) and the full ingest into a fresh lake (a real subprocess), and prints
JSON with their ratio (baseline / ingest; >= 0.7 is the target) and the ingest's peak RSS.

    python benchmarks/bench_ingest_npz.py [--images 60000] [--workdir DIR] [--repeat 2]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def build_input(path: Path, images: int) -> None:
    """Photographic 64x64 crops (real content compresses like real ImageNet64, unlike noise)."""
    from ingest.demo_data import PHOTOS, box_resize, load_photo, random_crop
    from lake.classes import imagenet_classes

    table = imagenet_classes()
    photos = [(load_photo(spec), table.imagenet64_labels[table.class_id_by_wnid[wnid]]) for spec, wnid in PHOTOS]
    data = np.empty((images, 12288), dtype=np.uint8)
    labels = np.empty(images, dtype=np.int64)
    for i in range(images):
        photo, label = photos[i % len(photos)]
        crop = box_resize(random_crop(photo, np.random.default_rng([7, i])))
        data[i] = crop.transpose(2, 0, 1).reshape(-1)
        labels[i] = label
    np.savez_compressed(path, data=data, labels=labels, mean=data.mean(axis=0))


def time_load(path: Path) -> float:
    start = time.perf_counter()
    with np.load(path) as npz:
        data = npz["data"]
    elapsed = time.perf_counter() - start
    del data
    return elapsed


def time_ingest(path: Path, lake: Path) -> tuple[float, float]:
    """Wall time and peak RSS (MB) of the ingest subprocess.

    RSS is sampled every 10 ms with psutil: the kernel's ru_maxrss for a child counts
    the parent's pages at fork (here the baseline's decompressed array), not the job's.
    """
    import psutil

    shutil.rmtree(lake, ignore_errors=True)
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "ingest", "npz", str(path), "--lake", str(lake), "--no-progress"], cwd=REPO)
    watched, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        try:
            peak = max(peak, watched.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"ingest failed with status {process.returncode}")
    return elapsed, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=60_000, help="images in the generated NPZ (default 60000)")
    parser.add_argument("--workdir", default=None, help="where to build the input and lake (default: a temp dir)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each measurement; the best is reported")
    args = parser.parse_args()

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-npz-"))
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / f"train_data_batch_1_{args.images}.npz"
    if not source.exists():
        build_input(source, args.images)
    time_load(source)  # warm the page cache so both sides read from memory
    load_s = min(time_load(source) for _ in range(args.repeat))
    runs = [time_ingest(source, workdir / "lake") for _ in range(args.repeat)]
    ingest_s = min(r[0] for r in runs)
    lake_bytes = sum(f.stat().st_size for f in (workdir / "lake").rglob("*") if f.is_file())
    print(json.dumps({
        "benchmark": "ingest_npz",
        "images": args.images,
        "npz_bytes": source.stat().st_size,
        "decompressed_bytes": args.images * 12288,
        "baseline_np_load_s": round(load_s, 3),
        "ingest_s": round(ingest_s, 3),
        "ratio_load_over_ingest": round(load_s / ingest_s, 3),
        "ingest_images_per_s": round(args.images / ingest_s),
        "ingest_peak_rss_mb": round(max(r[1] for r in runs), 1),
        "lake_bytes": lake_bytes,
    }, indent=2))
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
