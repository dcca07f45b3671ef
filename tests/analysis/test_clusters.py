"""k-means clusters of a key's PCA scores: the out-of-core core (analysis.clustering), the step, the command."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import analysis.clustering as km
from analysis import AnalysisError, ClustersConfig, RunConfig, list_analyses, run_clusters, run_pca
from analysis.cli import main
from analysis.clustering import RowSource, init_size, kmeans
from analysis.steps import ClustersStep, CompareStep
from lake import open_lake
from tests.analysis.conftest import build_lake, synthetic_table
from tests.analysis.t2i_lake import MID, write_t2i_model
from tests.conftest import run_cli, tree_digest

QUIET = {"log": lambda _: None, "progress": False}


def blobs(n: int, k: int, dims: int, seed: int = 0, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 8, (k, dims))
    truth = rng.integers(0, k, n)
    return (centres[truth] + spread * rng.normal(0, 1, (n, dims))).astype(np.float32), truth


def memory_source(x: np.ndarray, reads: list[tuple[int, int]] | None = None) -> RowSource:
    def block(start: int, stop: int) -> np.ndarray:
        if reads is not None:
            reads.append((start, stop))
        return x[start:stop]

    return RowSource(len(x), x.shape[1], block, lambda rows: x[rows])


def nearest(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    return np.argmin(((x[:, None, :].astype(np.float64) - centres[None]) ** 2).sum(axis=2), axis=1)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two labelings group the rows identically (cluster numbers may differ)."""
    from sklearn.metrics import adjusted_rand_score

    return adjusted_rand_score(a, b) == 1.0


def test_kmeans_is_identical_whatever_the_block_size_and_streams_in_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    x, _ = blobs(3 * km.SEGMENT_ROWS + 123, 6, 5, spread=3.0)  # overlapping blobs: several Lloyd passes
    init = np.arange(0, len(x), 7)
    cached = kmeans(memory_source(x), 6, 3, init)
    monkeypatch.setattr(km, "CACHE_BYTES", 0)  # stream every pass
    results = {}
    for block_rows in (1, 5000, km.SEGMENT_ROWS, 10**6):
        reads: list[tuple[int, int]] = []
        results[block_rows] = kmeans(memory_source(x, reads), 6, 3, init, block_rows=block_rows)
        # Streaming really reads in blocks: never more than a block (rounded to whole segments) at once.
        assert max(stop - start for start, stop in reads) <= max(block_rows, km.SEGMENT_ROWS) + km.SEGMENT_ROWS
    assert cached.iterations > 1
    for result in results.values():
        assert np.array_equal(result.labels, cached.labels) and np.array_equal(result.centers, cached.centers)
        assert result.inertia == cached.inertia and result.iterations == cached.iterations


def test_kmeans_finds_separated_clusters_as_well_as_sklearn() -> None:
    from sklearn.cluster import KMeans

    x, truth = blobs(6000, 5, 8)
    result = kmeans(memory_source(x), 5, 0, np.arange(0, 6000, 3))
    assert result.converged and same_partition(result.labels, truth)
    assert sorted(result.sizes.tolist()) == sorted(np.bincount(truth).tolist())
    reference = KMeans(5, random_state=0, n_init=1).fit(x)
    assert result.inertia <= reference.inertia_ * 1.001
    # The labels are each row's nearest centre, and the inertia is theirs.
    assert np.array_equal(result.labels, nearest(x, result.centers))
    assert result.inertia == pytest.approx(((x - result.centers[result.labels]) ** 2).sum(), rel=1e-6)


def test_kmeans_labels_belong_to_the_returned_centres_even_when_stopped_early() -> None:
    x, _ = blobs(2000, 8, 3, spread=6.0)
    result = kmeans(memory_source(x), 8, 1, np.arange(0, 2000, 40), max_iter=1)
    assert result.iterations == 1 and not result.converged
    assert np.array_equal(result.labels, nearest(x, result.centers))


def test_kmeans_relocates_empty_clusters_and_refuses_bad_k() -> None:
    # Three distinct rows, five clusters: some start empty; they are moved to far rows, never NaN.
    x = np.repeat(np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=np.float32), 50, axis=0)
    result = kmeans(memory_source(x), 5, 0, np.arange(len(x)))
    assert np.isfinite(result.centers).all() and set(result.labels.tolist()) <= set(range(5))
    assert len(set(result.labels.tolist())) == 3 and result.inertia == 0.0
    with pytest.raises(AnalysisError, match="1 <= k <= rows"):
        kmeans(memory_source(x), len(x) + 1, 0, np.arange(len(x)))
    assert init_size(10, 3) == 10 and init_size(10**6, 4) == km.INIT_ROWS and init_size(10**6, 5000) == 5000 * km.INIT_PER_CLUSTER


def test_the_step_writes_one_cluster_per_pca_row_and_matches_the_topics(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    model = write_t2i_model(lake, n_prompts=15, samples_per_prompt=4, n_topics=3)
    layer = f"{model.name}.{MID}"
    lines: list[str] = []
    outcome = run_clusters(lake, "dmd2-sdxl-4step.mid", None, ClustersConfig(clusters=3, pca_dim=6), log=lines.append, progress=False,
                           timestep=499)
    assert not outcome.reused and outcome.key == f"{layer}@sigma1" and outcome.summary["n_clusters"] == 3
    result = xr.open_zarr(lake, group=outcome.group)
    pca = open_lake(lake).result("pca", outcome.key)
    # Rows and order of the PCA table, with its label columns.
    assert list(result["sample_id"].values) == list(pca["sample_id"].values) == model.sample_ids
    assert list(result["split"].values) == ["t2i"] * len(model.sample_ids)
    assert same_partition(result["cluster"].values, model.sample_topic)
    attrs = result.attrs
    assert attrs["analysis"] == "clusters" and attrs["pca_run_id"] == open_lake(lake).result_attrs("pca", outcome.key)["run_id"]
    assert attrs["parameters"] == {"clusters": 3, "seed": 42, "pca_dim": 6} and sum(attrs["cluster_sizes"]) == len(model.sample_ids)
    assert any("--timestep 499 = sigma 1" in line for line in lines)

    again = run_clusters(lake, layer, 1.0, ClustersConfig(clusters=3, pca_dim=6), **QUIET)
    assert again.reused
    other_seed = run_clusters(lake, layer, 1.0, ClustersConfig(clusters=3, pca_dim=6, seed=5), **QUIET)
    assert not other_seed.reused and same_partition(xr.open_zarr(lake, group=outcome.group)["cluster"].values, model.sample_topic)

    # A new PCA makes the clusters stale (list says so) until they are recomputed.
    run_pca(lake, layer, 1.0, pca_dim=6, force=True, **QUIET)
    listed = {r["kind"]: r for r in list_analyses(lake)["analyses"] if r["key"] == outcome.key}
    assert listed["clusters"]["stale"] is True
    assert not run_clusters(lake, layer, 1.0, ClustersConfig(clusters=3, pca_dim=6, seed=5), **QUIET).reused
    assert not {r["kind"]: r for r in list_analyses(lake)["analyses"] if r["key"] == outcome.key}["clusters"]["stale"]


def test_the_step_is_block_size_independent_on_a_lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = synthetic_table(n_real=2 * km.SEGMENT_ROWS, n_generated=1000, n_classes=6, n_channel=10, nan_rows=0)
    lake = build_lake(tmp_path / "lake", table, rows_per_chunk=1024)
    monkeypatch.setattr(km, "CACHE_BYTES", 0)
    labels = []
    for block_rows in (km.SEGMENT_ROWS, 3 * km.SEGMENT_ROWS):
        outcome = run_clusters(lake, "bottleneck", 2, ClustersConfig(clusters=6, pca_dim=5), block_rows=block_rows, force=True, **QUIET)
        labels.append(open_lake(lake).column(outcome.group, "cluster"))
    assert len(labels[0]) == len(table.sample_ids) and np.array_equal(labels[0], labels[1])


def test_k_is_capped_at_the_rows_with_a_note(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_t2i_model(lake, n_prompts=3, samples_per_prompt=2, modules=(MID,))
    lines: list[str] = []
    outcome = run_clusters(lake, None, None, ClustersConfig(pca_dim=4), log=lines.append, progress=False)
    assert outcome.summary["n_clusters"] == 6 and "has 6 rows, fewer than the 8 clusters asked; using 6 clusters" in " ".join(lines)
    assert sorted(open_lake(lake).column(outcome.group, "cluster").tolist()) == list(range(6))


def test_run_clusters_imagenet_only_when_asked_and_t2i_always() -> None:
    assert not any(isinstance(s, ClustersStep) for s in RunConfig().steps("enc.8x8_block2"))
    assert not any(isinstance(s, ClustersStep) for s in RunConfig().steps())
    t2i = RunConfig(seed=3, pca_dim=7).steps(f"dmd2-sdxl-4step.{MID}")
    assert [type(s).__name__ for s in t2i][-2:] == ["ClustersStep", "CompareStep"]
    assert t2i[-2].config == ClustersConfig(clusters=8, seed=3, pca_dim=7)
    asked = RunConfig(clusters=4).steps("enc.8x8_block2")
    assert isinstance(asked[-1], CompareStep) and asked[-2].config.clusters == 4


def test_cli_clusters_and_its_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lake = tmp_path / "lake"
    write_t2i_model(lake, n_prompts=6, samples_per_prompt=3, modules=(MID,))
    args = ["clusters", "--lake", str(lake), "--layer", "dmd2-sdxl-4step.mid", "--timestep", "999", "--pca-dim", "4", "--no-progress"]
    assert main([*args, "--clusters", "2", "--json"]) == 0
    [outcome] = json.loads(capsys.readouterr().out)
    assert outcome["analysis"] == "clusters" and outcome["summary"]["n_clusters"] == 2
    assert outcome["group"] == f"analysis/clusters/dmd2-sdxl-4step.{MID}@sigma14.6146"

    before = tree_digest(lake)
    result = run_cli("analysis", *args, "--clusters", "0")
    assert result.returncode == 2 and "argument --clusters: '0' must be at least 1" in result.stderr
    result = run_cli("analysis", "clusters", "--lake", str(lake), "--layer", "dmd2-sdxl-4step.mid", "--timestep", "5")
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: {lake}: activations/dmd2-sdxl-4step.{MID} has no timestep 5; it has: 999, 749, 499, 249"]
    with pytest.raises(AnalysisError, match="--clusters 0: must be at least 1"):
        run_clusters(lake, "dmd2-sdxl-4step.mid", None, ClustersConfig(clusters=0), **QUIET)
    assert tree_digest(lake) == before
