"""Small, real lakes for the explorer tests, written through the lake API.

`build_lake` writes a samples table with real-looking images (crops of scikit-image's
bundled photographs, or colour gradients where scikit-image is absent), then, as the
analysis job would, PCA scores, a 2D and a 3D embedding with one cluster per class, a
k-NN graph computed with scikit-learn and a real-vs-generated comparison.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from lake import SAMPLES, ColumnSpec, LakeWriter, Provenance, TableSpec, imagenet_classes
from lake.schema import STRING

KEY = "enc.8x8_block2@sigma2"
NAME_2D = "umap2d-n15-d0.1-euclidean-s42"
NAME_3D = "umap3d-n15-d0.1-euclidean-s42"
CLASSES = (1, 9, 130, 207, 281, 417)  # goldfish, ostrich, flamingo, golden retriever, tabby, balloon
STORED_K = 8


@dataclass(frozen=True)
class BuiltLake:
    path: Path
    sample_ids: np.ndarray  # samples table order
    class_ids: np.ndarray
    sources: np.ndarray
    features: np.ndarray  # the "activations" the analysis groups were computed from (samples order)
    analysis_order: np.ndarray  # samples row of each analysis-table row


def _photos() -> list[np.ndarray]:
    try:
        from skimage import data

        return [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    except Exception:
        y, x = np.mgrid[0:256, 0:256]
        return [np.stack([x, y, (x + y) // 2], axis=-1).astype(np.uint8), np.stack([y, 255 - x, x], axis=-1).astype(np.uint8)]


def make_images(class_ids: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """One 64x64 crop per sample, the photo and tint chosen by class, the crop by a per-sample seed."""
    photos = _photos()
    images = np.zeros((len(class_ids), 64, 64, 3), dtype=np.uint8)
    for i, (cid, seed) in enumerate(zip(class_ids, seeds)):
        rng = np.random.default_rng([int(cid), int(seed)])
        photo = photos[int(cid) % len(photos)]
        size = int(rng.integers(96, min(photo.shape[:2])))
        top = int(rng.integers(0, photo.shape[0] - size))
        left = int(rng.integers(0, photo.shape[1] - size))
        step = size // 64
        crop = photo[top : top + 64 * step : step, left : left + 64 * step : step].astype(np.float32)
        tint = 0.75 + 0.5 * np.random.default_rng(int(cid)).random(3)
        images[i] = np.clip(crop * tint, 0, 255).astype(np.uint8)
    return images


def build_lake(
    path: Path,
    per_group: int = 20,
    shuffle_analysis: bool = False,
    with_analysis: bool = True,
    extra_compare: dict[str, tuple[str, np.ndarray]] | None = None,
) -> BuiltLake:
    """Write a small lake at `path`: len(CLASSES) classes x {real, generated} x per_group samples.

    `extra_compare` adds per-sample columns to the comparison table: name -> (lake dtype,
    values in samples order), e.g. bool or string columns as other analysis versions write them.
    """
    classes = imagenet_classes()
    class_ids, sources, ids, splits, origins, seeds = [], [], [], [], [], []
    for cid in CLASSES:
        for source in ("real", "generated"):
            for j in range(per_group):
                class_ids.append(cid)
                sources.append(source)
                if source == "real":
                    row = len(ids)
                    ids.append(f"in64/train_data_batch_1/{row}")
                    splits.append("train" if j % 4 else "val")
                    origins.append(f"train_data_batch_1.npz#row={row}")
                    seeds.append(-1)
                else:
                    ids.append(f"gen/dmd2-test/s7/{len(ids)}")
                    splits.append("generated")
                    origins.append("generator:dmd2-test")
                    seeds.append(1000 + len(ids))
    n = len(ids)
    class_ids_a = np.array(class_ids, dtype=np.int16)
    sources_a = np.array(sources, dtype=object)
    seeds_a = np.array(seeds, dtype=np.int64)
    images = make_images(class_ids_a, np.arange(n))
    with LakeWriter.open(path, Provenance(job="test ingest")) as writer:
        writer.table(SAMPLES).append(
            {
                "image": images,
                "sample_id": np.array(ids, dtype=object),
                "source": sources_a,
                "split": np.array(splits, dtype=object),
                "class_id": class_ids_a,
                "wnid": np.array([classes.wnids[c] for c in class_ids], dtype=object),
                "class_name": np.array([classes.names[c] for c in class_ids], dtype=object),
                "origin": np.array(origins, dtype=object),
                "seed": seeds_a,
                "model_id": np.array(["dmd2-test" if s == "generated" else "" for s in sources], dtype=object),
            }
        )
    # Features: a cluster per class, generated samples shifted a little off the real ones.
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 6, size=(1000, 16))
    features = centres[class_ids_a.astype(int)] + rng.normal(0, 1, size=(n, 16))
    features[sources_a == "generated", :2] += 1.5
    order = np.random.default_rng(1).permutation(n) if shuffle_analysis else np.arange(n)
    built = BuiltLake(path, np.array(ids, dtype=object), class_ids_a, sources_a, features, order)
    if with_analysis:
        write_analysis(built, splits=np.array(splits, dtype=object), extra_compare=extra_compare)
    return built


def _table(path: str, columns: tuple[ColumnSpec, ...], **kw: object) -> TableSpec:
    return TableSpec(path=path, row_dim="sample", columns=columns, **kw)  # type: ignore[arg-type]


def write_analysis(built: BuiltLake, splits: np.ndarray, extra_compare: dict[str, tuple[str, np.ndarray]] | None = None) -> None:
    """PCA scores, 2D/3D embeddings, a k-NN graph and a comparison, in `built.analysis_order`."""
    from sklearn.decomposition import PCA
    from sklearn.neighbors import NearestNeighbors

    order = built.analysis_order
    feats = built.features[order]
    ids = built.sample_ids[order]
    labels = {
        "sample_id": ids,
        "source": built.sources[order],
        "class_id": built.class_ids[order],
        "split": splits[order],
    }
    label_columns = (ColumnSpec("sample_id", STRING), ColumnSpec("source", STRING), ColumnSpec("class_id", "int16"), ColumnSpec("split", STRING))
    # As the analysis package writes them: every per-sample table also carries `sample_row`
    # (except the 3D embedding here, standing in for lakes written before it existed).
    row_column = (ColumnSpec("sample_row", "int64"),)
    rows = {"sample_row": order.astype(np.int64)}
    pca = PCA(n_components=8, random_state=0).fit(feats)
    scores = pca.transform(feats).astype(np.float32)
    nn = NearestNeighbors(n_neighbors=STORED_K + 1).fit(scores)
    distance, index = nn.kneighbors(scores)
    distance, index = distance[:, 1:].astype(np.float32), index[:, 1:]  # drop self
    is_real = built.sources[order] == "real"
    real_nn = NearestNeighbors(n_neighbors=2).fit(scores[is_real])
    real_d, _ = real_nn.kneighbors(scores)
    nearest_real = np.where(is_real, real_d[:, 1], real_d[:, 0]).astype(np.float32)
    real_fraction = is_real[index].mean(axis=1).astype(np.float32)

    with LakeWriter.open(built.path, Provenance(job="test analysis")) as writer:
        writer.table(
            _table(f"analysis/pca/{KEY}", (ColumnSpec("scores", "float32", (8,), ("component",), coord=False), ColumnSpec("sample_id", STRING), *row_column))
        ).append({"scores": scores, "sample_id": ids, **rows})
        writer.group(f"analysis/pca/{KEY}").create_array(
            "explained_variance_ratio", data=pca.explained_variance_ratio_.astype(np.float32), dimension_names=("component",)
        )
        for name, dims in ((NAME_2D, 2), (NAME_3D, 3)):
            coords = (scores[:, :dims] * np.float32(0.5)).astype(np.float32)
            spec = _table(
                f"analysis/embeddings/{KEY}/{name}",
                (ColumnSpec("embedding", "float32", (dims,), ("axis",), coord=False), *label_columns, *(row_column if dims == 2 else ())),
                fixed_coords={"axis": np.array(["x", "y", "z"][:dims], dtype=np.dtypes.StringDType())},
                attrs={"method": "umap", "n_neighbors": 15, "min_dist": 0.1, "metric": "euclidean", "seed": 42, "trustworthiness": 0.91},
            )
            writer.table(spec).append({"embedding": coords, **labels, **(rows if dims == 2 else {})})
        writer.table(
            _table(
                f"analysis/knn/{KEY}",
                (
                    ColumnSpec("neighbor_id", STRING, (STORED_K,), ("k",), coord=False),
                    ColumnSpec("neighbor_row", "int64", (STORED_K,), ("k",), coord=False),
                    ColumnSpec("distance", "float32", (STORED_K,), ("k",), coord=False),
                    ColumnSpec("sample_id", STRING),
                    *row_column,
                ),
                attrs={"k": STORED_K, "space": "pca"},
            )
        ).append({"neighbor_id": ids[index], "neighbor_row": index.astype(np.int64), "distance": distance, "sample_id": ids, **rows})
        compare_path = f"analysis/compare/{KEY}"
        writer.table(
            _table(
                compare_path,
                (
                    ColumnSpec("real_fraction", "float32", coord=False),
                    ColumnSpec("nearest_real_distance", "float32", coord=False),
                    *(ColumnSpec(name, dtype, coord=False) for name, (dtype, _) in (extra_compare or {}).items()),
                    ColumnSpec("sample_id", STRING),
                    *row_column,
                ),
                attrs={"mean_real_fraction_of_generated": float(real_fraction[~is_real].mean()), "k": STORED_K},
            )
        ).append(
            {
                "real_fraction": real_fraction,
                "nearest_real_distance": nearest_real,
                **{name: np.asarray(values)[order] for name, (_, values) in (extra_compare or {}).items()},
                "sample_id": ids,
                **rows,
            }
        )
        group = writer.group(compare_path)
        class_list = np.array(CLASSES, dtype=np.int16)
        cls = built.class_ids[order]
        group.create_array("class", data=class_list, dimension_names=("class",))
        group.create_array("n_real", data=np.array([int(((cls == c) & is_real).sum()) for c in CLASSES], np.int64), dimension_names=("class",))
        group.create_array(
            "mean_real_fraction",
            data=np.array([float(real_fraction[(cls == c) & ~is_real].mean()) for c in CLASSES], np.float32),
            dimension_names=("class",),
        )


@pytest.fixture(scope="session")
def small_lake(tmp_path_factory: pytest.TempPathFactory) -> BuiltLake:
    return build_lake(tmp_path_factory.mktemp("explorer") / "lake")


@pytest.fixture(scope="session")
def shuffled_lake(tmp_path_factory: pytest.TempPathFactory) -> BuiltLake:
    return build_lake(tmp_path_factory.mktemp("explorer") / "shuffled", per_group=8, shuffle_analysis=True)


@pytest.fixture(scope="session")
def samples_only_lake(tmp_path_factory: pytest.TempPathFactory) -> BuiltLake:
    return build_lake(tmp_path_factory.mktemp("explorer") / "samples_only", per_group=3, with_analysis=False)


@pytest.fixture(autouse=True)
def explorer_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    """Explorer tests run in debug mode: an error re-raises (an exception element) instead of a one-line box."""
    monkeypatch.setenv("DMD2VIZ_DEBUG", "1")


def typed_columns(n: int) -> dict[str, tuple[str, np.ndarray]]:
    """Per-sample comparison columns of every type a lake can hold, with missing values: bool, text ('' = missing), int, float (NaN)."""
    i = np.arange(n)
    note = np.array(["" if k % 2 == 0 else f"near_dup*{k}" for k in i], dtype=object)
    score = np.where(i % 5 == 0, np.nan, i / 10).astype(np.float32)
    return {"memorised": ("bool", i % 3 == 0), "note": (STRING, note), "rank": ("int64", i.astype(np.int64)), "score": ("float32", score)}


@pytest.fixture(scope="session")
def typed_lake(tmp_path_factory: pytest.TempPathFactory) -> BuiltLake:
    """A small lake whose comparison table also carries bool, text, int and float columns with missing values."""
    per_group = 6
    n = len(CLASSES) * 2 * per_group
    return build_lake(tmp_path_factory.mktemp("explorer") / "typed", per_group=per_group, extra_compare=typed_columns(n))
