"""Benchmark: explorer server time per page and per interaction at ImageNet scale (1.28M points).

Builds a synthetic lake through the lake API (samples with a cheap constant image
pattern written in big batches, a 2D embedding of 1000 class clusters, 8-D PCA scores,
a k-NN graph of the 2D coordinates computed with scikit-learn, a comparison group),
then drives the real app headless with Streamlit's AppTest and times each script run:
the first page (cold caches: opening the lake and loading the embedding) and each
interaction (rerun, class filter, colour change, selecting a point, zooming, k beyond
the stored graph). The baseline, in the same run, is a raw numpy scan of the same
data: read the coordinates from the lake and `np.histogram2d` all of them, which is
the least any uncached view of every point costs. Prints JSON.

    python benchmarks/bench_explorer.py [--points 1280000] [--workdir DIR] [--keep]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
KEY = "enc.8x8_block2@sigma2"
NAME = "umap2d-n15-d0.1-euclidean-s42"
BATCH = 16_384  # rows per append: bounded memory (the image batch is a broadcast view)
STORED_K = 10


def _ids(start: int, stop: int) -> np.ndarray:
    return np.array([f"in64/train_data_batch_{1 + i // 128_000}/{i}" for i in range(start, stop)], dtype=object)


def build_lake(path: Path, points: int) -> None:
    from tqdm import tqdm

    from lake import SAMPLES, ColumnSpec, LakeWriter, Provenance, TableSpec, imagenet_classes
    from lake.schema import STRING

    classes = imagenet_classes()
    y, x = np.mgrid[0:64, 0:64]
    pattern = np.stack([x * 4, y * 4, (x + y) * 2], axis=-1).astype(np.uint8)
    rng = np.random.default_rng(0)
    centres = rng.uniform(-40, 40, size=(1000, 8)).astype(np.float32)
    label = (
        ColumnSpec("sample_id", STRING),
        ColumnSpec("source", STRING),
        ColumnSpec("class_id", "int16"),
        ColumnSpec("split", STRING),
        ColumnSpec("sample_row", "int64"),  # as the analysis package writes it
    )
    with LakeWriter.open(path, Provenance(job="bench explorer")) as writer:
        samples = writer.table(SAMPLES)
        pca = writer.table(TableSpec(f"analysis/pca/{KEY}", "sample", (ColumnSpec("scores", "float32", (8,), ("component",), coord=False), ColumnSpec("sample_id", STRING), ColumnSpec("sample_row", "int64"))))
        emb = writer.table(
            TableSpec(
                f"analysis/embeddings/{KEY}/{NAME}",
                "sample",
                (ColumnSpec("embedding", "float32", (2,), ("axis",), coord=False), *label),
                fixed_coords={"axis": np.array(["x", "y"], dtype=np.dtypes.StringDType())},
                attrs={"method": "umap", "trustworthiness": 0.9},
            )
        )
        compare = writer.table(
            TableSpec(f"analysis/compare/{KEY}", "sample", (ColumnSpec("real_fraction", "float32", coord=False), ColumnSpec("sample_id", STRING), ColumnSpec("sample_row", "int64")))
        )
        coords_all = np.empty((points, 2), np.float32)
        for start in tqdm(range(0, points, BATCH), desc="writing samples", unit="batch"):
            stop = min(start + BATCH, points)
            n = stop - start
            index = np.arange(start, stop)
            class_id = (index % 1000).astype(np.int16)
            generated = index % 5 == 0
            ids = _ids(start, stop)
            source = np.where(generated, "generated", "real").astype(object)
            split = np.where(generated, "generated", np.where(index % 50 == 1, "val", "train")).astype(object)
            samples.append(
                {
                    "image": np.broadcast_to(pattern, (n, 64, 64, 3)),
                    "sample_id": ids,
                    "source": source,
                    "split": split,
                    "class_id": class_id,
                    "wnid": np.array(classes.wnids, dtype=object)[class_id],
                    "class_name": np.array(classes.names, dtype=object)[class_id],
                    "origin": np.full(n, "bench", dtype=object),
                    "seed": np.where(generated, index, -1).astype(np.int64),
                    "model_id": np.where(generated, "bench", "").astype(object),
                }
            )
            noise = np.random.default_rng([1, start]).normal(0, 1.5, size=(n, 8)).astype(np.float32)
            features = centres[class_id] + noise
            coords = features[:, :2] * np.float32(0.25)
            coords_all[start:stop] = coords
            pca.append({"scores": features, "sample_id": ids, "sample_row": index.astype(np.int64)})
            emb.append({"embedding": coords, "sample_id": ids, "source": source, "class_id": class_id, "split": split, "sample_row": index.astype(np.int64)})
            compare.append({"real_fraction": np.random.default_rng([2, start]).random(n).astype(np.float32), "sample_id": ids, "sample_row": index.astype(np.int64)})
            writer.commit()
        from sklearn.neighbors import NearestNeighbors

        t = time.perf_counter()
        distance, index = NearestNeighbors(n_neighbors=STORED_K + 1).fit(coords_all).kneighbors(coords_all)
        print(f"k-NN graph: {time.perf_counter() - t:.1f} s", file=sys.stderr)
        knn = writer.table(
            TableSpec(
                f"analysis/knn/{KEY}",
                "sample",
                (
                    ColumnSpec("neighbor_id", STRING, (STORED_K,), ("k",), coord=False),
                    ColumnSpec("neighbor_row", "int64", (STORED_K,), ("k",), coord=False),
                    ColumnSpec("distance", "float32", (STORED_K,), ("k",), coord=False),
                    ColumnSpec("sample_id", STRING),
                    ColumnSpec("sample_row", "int64"),
                ),
            )
        )
        for start in tqdm(range(0, points, BATCH), desc="writing k-NN", unit="batch"):
            stop = min(start + BATCH, points)
            rows = index[start:stop, 1:]
            knn.append(
                {
                    "neighbor_id": np.array([f"in64/train_data_batch_{1 + i // 128_000}/{i}" for i in rows.ravel()], dtype=object).reshape(rows.shape),
                    "neighbor_row": rows.astype(np.int64),
                    "distance": distance[start:stop, 1:].astype(np.float32),
                    "sample_id": _ids(start, stop),
                    "sample_row": np.arange(start, stop, dtype=np.int64),
                }
            )


def raw_scan(path: Path) -> float:
    """Baseline: read every coordinate from the lake and bin them all (no caching)."""
    import zarr

    start = time.perf_counter()
    coords = np.asarray(zarr.open_group(str(path), mode="r")[f"analysis/embeddings/{KEY}/{NAME}/embedding"][:])
    np.histogram2d(coords[:, 0], coords[:, 1], bins=90)
    return time.perf_counter() - start


def timed(at, label: str, results: dict[str, float]) -> None:
    start = time.perf_counter()
    at.run()
    results[label] = round(time.perf_counter() - start, 4)
    if at.exception or at.error:
        raise RuntimeError(f"{label}: {[e.value for e in at.exception] + [e.value for e in at.error]}")


def drive_app(path: Path) -> tuple[dict[str, float], dict[str, int]]:
    from streamlit.testing.v1 import AppTest

    os.environ["DMD2VIZ_LAKE"] = str(path)
    sys.argv = ["explorer/app.py"]
    at = AppTest.from_file(str(REPO / "explorer" / "app.py"), default_timeout=300)
    times: dict[str, float] = {}
    timed(at, "first_page", times)
    timed(at, "rerun_no_change", times)
    at.multiselect(key="w_classes").set_value([1, 2, 3])
    timed(at, "filter_3_classes", times)
    at.multiselect(key="w_classes").set_value([])
    timed(at, "clear_class_filter", times)
    at.selectbox(key="w_color").set_value("source")
    timed(at, "colour_by_source", times)
    at.selectbox(key="w_color").set_value("compare.real_fraction")
    timed(at, "colour_by_metric_first_time", times)
    at.session_state["view"] = replace(at.session_state["view"], selected="in64/train_data_batch_1/12345")
    timed(at, "select_point_knn10", times)
    at.session_state["view"] = replace(at.session_state["view"], manual=("in64/train_data_batch_3/300000",))
    timed(at, "toggle_manual_neighbour", times)
    at.session_state["view"] = replace(at.session_state["view"], window=(-2.0, 2.0, -2.0, 2.0))
    timed(at, "zoom_window", times)
    at.number_input(key="w_k").set_value(STORED_K + 20)
    timed(at, "k30_brute_force_pca", times)
    at.session_state["view"] = replace(at.session_state["view"], window=None)
    timed(at, "reset_zoom", times)
    at.radio(key="w_page").set_value("compare")
    timed(at, "real_vs_generated_page", times)
    caption = next((c.value for c in at.caption if "points" in c.value), "")
    return times, {"drawn_cap": at.session_state["view"].max_points, "caption_chars": len(caption)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=1_280_000, help="number of samples/points in the synthetic lake (default 1,280,000)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to build the lake (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the lake afterwards (reused by a later run with the same --workdir and --points)")
    args = parser.parse_args()
    if args.points < 1000:
        parser.error("--points must be at least 1000")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-explorer-"))
    lake = workdir / f"lake-{args.points}"
    try:
        build_s = None
        if not (lake / "zarr.json").exists():
            shutil.rmtree(lake, ignore_errors=True)
            start = time.perf_counter()
            build_lake(lake, args.points)
            build_s = round(time.perf_counter() - start, 1)
        baseline = min(raw_scan(lake) for _ in range(3))
        times, info = drive_app(lake)
        interactions = {k: v for k, v in times.items() if k not in ("first_page", "colour_by_metric_first_time")}
        print(
            json.dumps(
                {
                    "benchmark": "explorer",
                    "points": args.points,
                    "build_lake_s": build_s,
                    "baseline_raw_numpy_scan_s": round(baseline, 4),
                    "server_time_s": times,
                    "ratio_to_baseline": {k: round(v / baseline, 2) for k, v in times.items()},
                    "max_interaction_s": max(interactions.values()),
                    "targets": {"first_page_s": 3.0, "interaction_s": 0.5},
                    **info,
                },
                indent=2,
            )
        )
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
