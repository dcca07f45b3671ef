"""Prompt clustering (analysis/prompts/<name>): pure parts, the command on small and larger prompt tables, errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from analysis import AnalysisError, PromptParams, list_analyses, normalise_rows, pca_map, run_prompts
from analysis.cli import main
from analysis.prompts import MIN_UMAP_PROMPTS
from lake import LakeWriter, Provenance, open_lake
from lake.layout import prompt_id, t2i_prompts_spec
from tests.analysis.conftest import build_lake, synthetic_table
from tests.analysis.t2i_lake import MID, write_t2i_model
from tests.conftest import run_cli, tree_digest

QUIET = {"log": lambda _: None, "progress": False}


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    from sklearn.metrics import adjusted_rand_score

    return adjusted_rand_score(a, b) == 1.0


def test_normalise_rows_gives_unit_rows_and_keeps_zero_rows() -> None:
    x = np.array([[3.0, 4.0], [0.0, 0.0], [-2.0, 0.0]])
    out = normalise_rows(x)
    assert out.dtype == np.float32 and np.allclose(out, [[0.6, 0.8], [0, 0], [-1, 0]])
    assert np.allclose(normalise_rows(x * 1000), out)


def test_pca_map_is_zero_padded_for_few_prompts_and_sign_stable() -> None:
    assert np.array_equal(pca_map(np.ones((1, 5))), np.zeros((1, 2), np.float32))
    two = pca_map(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    assert two.shape == (2, 2) and np.all(two[:, 1] == 0) and two[0, 0] == pytest.approx(-two[1, 0]) and two[0, 0] != 0
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (6, 4))
    coords = pca_map(x)
    # The first axis carries the most variance, and the map is the projection on the top two principal axes.
    assert coords[:, 0].var() >= coords[:, 1].var()
    from sklearn.decomposition import PCA

    reference = PCA(2).fit_transform(x)
    assert np.allclose(np.abs(coords), np.abs(reference), atol=1e-5)
    # Signs are fixed by the data (svd_flip), not by LAPACK: sklearn's PCA uses the same rule.
    assert np.allclose(coords, reference, atol=1e-5)


def test_three_prompts_get_three_clusters_and_a_pca_map_in_table_order(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    model = write_t2i_model(lake, n_prompts=3, n_topics=3, modules=(MID,))
    lines: list[str] = []
    [outcome] = run_prompts(lake, model.name, log=lines.append, progress=False)
    assert not outcome.reused and outcome.group == f"analysis/prompts/{model.name}"
    ds = xr.open_zarr(lake, group=outcome.group)
    assert list(ds["prompt_id"].values) == model.prompt_ids and list(ds["prompt"].values) == model.prompts
    assert sorted(ds["cluster"].values.tolist()) == [0, 1, 2] and ds["embedding"].shape == (3, 2)
    assert np.isfinite(ds["embedding"].values).all() and len({tuple(r) for r in ds["embedding"].values.tolist()}) == 3
    attrs = ds.attrs
    assert attrs["map_method"] == "pca" and attrs["n_clusters"] == 3 and attrs["n_clusters_requested"] == 8
    assert attrs["family"] == "sdxl" and attrs["source_group"] == f"t2i/{model.name}/prompts" and attrs["n_rows"] == 3
    assert "has 3 prompts, fewer than the 8 clusters asked; using 3 clusters" in " ".join(lines) and any("PCA of the normalised embeddings" in line for line in lines)
    assert run_prompts(lake, model.name, **QUIET)[0].reused


def test_many_prompts_cluster_by_topic_whatever_their_scale_with_a_cosine_umap_map(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    model = write_t2i_model(lake, n_prompts=90, samples_per_prompt=1, n_topics=3, modules=(MID,))
    # The pooled vectors' norms range over 40x; only their directions tell the topics apart.
    norms = np.linalg.norm(model.pooled, axis=1)
    assert norms.max() / norms.min() > 5
    [outcome] = run_prompts(lake, model.name, PromptParams(clusters=3, fit_size=60), **QUIET)
    ds = xr.open_zarr(lake, group=outcome.group)
    assert same_partition(ds["cluster"].values, model.topic)
    embedding = ds["embedding"].values
    assert np.isfinite(embedding).all()
    attrs = ds.attrs
    assert attrs["map_method"] == "umap" and "cosine" in attrs["map_description"] and attrs["fit_rows"] == 60
    assert "transformed" in attrs["map_description"] and MIN_UMAP_PROMPTS <= 90
    # The map keeps the topics apart: each prompt's nearest other prompt on the map shares its topic.
    d = ((embedding[:, None] - embedding[None]) ** 2).sum(axis=2)
    np.fill_diagonal(d, np.inf)
    assert (model.topic[d.argmin(axis=1)] == model.topic).mean() > 0.95


def test_new_prompts_make_the_result_stale_and_a_rerun_recomputes(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    model = write_t2i_model(lake, n_prompts=4, modules=(MID,))
    run_prompts(lake, model.name, **QUIET)
    listed = [r for r in list_analyses(lake)["analyses"] if r["kind"] == "prompts"]
    assert [(r["key"], r["stale"], r["n_rows"]) for r in listed] == [(model.name, False, 4)]
    text = "a brand new prompt"
    with LakeWriter.open(lake, Provenance(job="test more prompts"), create=False) as writer:
        writer.table(t2i_prompts_spec(model.name, model.pooled.shape[1], {})).append({
            "pooled": np.ones((1, model.pooled.shape[1]), np.float32), "prompt_id": np.array([prompt_id(text)], dtype=object),
            "prompt": np.array([text], dtype=object), "negative_prompt": np.array([""], dtype=object), "class_id": np.array([-1], np.int16)})
        writer.commit()
    assert [r["stale"] for r in list_analyses(lake)["analyses"] if r["kind"] == "prompts"] == [True]
    [again] = run_prompts(lake, model.name, **QUIET)
    assert not again.reused and list(open_lake(lake).column(again.group, "prompt"))[-1] == text
    assert [r["stale"] for r in list_analyses(lake)["analyses"] if r["kind"] == "prompts"] == [False]


def test_without_a_name_every_model_with_prompts_is_clustered(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_t2i_model(lake, name="dmd2-sdxl-4step", n_prompts=3, modules=(MID,))
    write_t2i_model(lake, name="dmd2-sd15-1step", family="sd15", n_prompts=5, modules=("mid_block.attentions.0",), timesteps=(999,),
                    sigmas=(14.6,), seed=1)
    write_t2i_model(lake, name="no-prompts", n_prompts=2, modules=(), write_prompts=False, seed=2)
    lines: list[str] = []
    outcomes = run_prompts(lake, log=lines.append, progress=False)
    assert [(o.key, o.summary["n_rows"]) for o in outcomes] == [("dmd2-sd15-1step", 5), ("dmd2-sdxl-4step", 3)]
    assert "--name not given; clustering the prompts of dmd2-sd15-1step, dmd2-sdxl-4step" in lines
    models = {m["name"]: m for m in list_analyses(lake)["t2i_models"]}
    assert models["dmd2-sd15-1step"]["family"] == "sd15" and models["no-prompts"]["prompts"] == 0


def test_errors_are_one_line_and_leave_the_lake_unchanged(tmp_path: Path) -> None:
    imagenet = build_lake(tmp_path / "imagenet", synthetic_table(n_real=20, n_generated=20, nan_rows=0))
    before = tree_digest(imagenet)
    result = run_cli("analysis", "prompts", "--lake", str(imagenet))
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: {imagenet}: holds no text-to-image models (t2i/<name>); run `python -m ingest generate-t2i` first"]
    assert tree_digest(imagenet) == before

    lake = tmp_path / "lake"
    write_t2i_model(lake, name="dmd2-sdxl-4step", n_prompts=3, modules=(MID,))
    write_t2i_model(lake, name="bare", n_prompts=2, modules=(), write_prompts=False, seed=2)
    before = tree_digest(lake)
    result = run_cli("analysis", "prompts", "--lake", str(lake), "--name", "dmd2-sdxl-1step")
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: {lake}: no text-to-image model 'dmd2-sdxl-1step'; the lake has: bare, dmd2-sdxl-4step"]
    result = run_cli("analysis", "prompts", "--lake", str(lake), "--name", "bare")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "t2i/bare/prompts is missing" in result.stderr
    result = run_cli("analysis", "prompts", "--lake", str(lake), "--name", "Not.A.Name")
    assert result.returncode == 2 and "--name 'Not.A.Name': not a model name" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("analysis", "prompts", "--lake", str(lake), "--clusters", "0")
    assert result.returncode == 2 and "argument --clusters: '0' must be at least 1" in result.stderr
    with pytest.raises(AnalysisError, match="--clusters 0: must be at least 1"):
        run_prompts(lake, "dmd2-sdxl-4step", PromptParams(clusters=0), **QUIET)
    assert tree_digest(lake) == before


def test_cli_prompts_json_and_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lake = tmp_path / "lake"
    write_t2i_model(lake, n_prompts=5, modules=(MID,))
    assert main(["prompts", "--lake", str(lake), "--name", "dmd2-sdxl-4step", "--clusters", "2", "--no-progress", "--json"]) == 0
    [outcome] = json.loads(capsys.readouterr().out)
    assert outcome["analysis"] == "prompts" and outcome["summary"]["n_clusters"] == 2 and outcome["summary"]["map_method"] == "pca"
    assert main(["list", "--lake", str(lake)]) == 0
    printed = capsys.readouterr().out
    assert "text-to-image models" in printed and "analysis/prompts/dmd2-sdxl-4step" in printed
    result = run_cli("analysis", "prompts", "--help")
    for flag in ("--name", "--clusters", "--seed", "--n-neighbors", "--min-dist", "--fit-size", "--force", "--json"):
        assert flag in result.stdout
