"""Text-to-image tables as analysis keys: site aliases, --timestep, sigmas by their printed form, `run` and `list`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analysis import AnalysisError, resolve_key
from analysis.cli import main
from analysis.keys import describe_layer, t2i_family, timestep_of_sigma
from lake import open_lake
from tests.analysis.conftest import build_lake, synthetic_table
from tests.analysis.t2i_lake import DOWN, MID, SDXL_SIGMAS, write_t2i_model
from tests.conftest import run_cli, tree_digest

SDXL = "dmd2-sdxl-4step"


@pytest.fixture
def t2i_lake(tmp_path: Path) -> Path:
    lake = tmp_path / "lake"
    write_t2i_model(lake, name=SDXL, n_prompts=6, samples_per_prompt=3)
    return lake


def key_of(lake: Path, layer: str | None, sigma: float | None = None, timestep: int | None = None):  # noqa: ANN201
    return resolve_key(open_lake(lake), layer, sigma, timestep)


def test_site_aliases_name_the_canonical_layer_and_say_so(t2i_lake: Path) -> None:
    key, notes = key_of(t2i_lake, f"{SDXL}.mid", 1.0)
    assert key.layer == f"{SDXL}.{MID}" and key.sigma == 1.0
    assert notes == [f"layer {SDXL}.mid = {SDXL}.{MID} (site alias of sdxl)"]
    key, _ = key_of(t2i_lake, f"{SDXL}.down2.attn1", 1.0)
    assert key.layer == f"{SDXL}.{DOWN}"
    # The canonical module name needs no note; a bare site alias works while one model has that site.
    assert key_of(t2i_lake, f"{SDXL}.{MID}", 1.0)[1] == []
    key, notes = key_of(t2i_lake, "down2.attn1", 1.0)
    assert key.layer == f"{SDXL}.{DOWN}" and "the only text-to-image model with site down2.attn1" in notes[0]
    # sd15's site names are not sdxl's: up1.attn0 is no site of an sdxl model.
    with pytest.raises(AnalysisError, match=r"no activations for layer 'dmd2-sdxl-4step.up1.attn0'; the lake has: "
                       rf"{SDXL}.{DOWN} \({SDXL}.down2.attn1\), {SDXL}.{MID} \({SDXL}.mid\)$"):
        key_of(t2i_lake, f"{SDXL}.up1.attn0")


def test_aliases_follow_each_models_family_and_a_shared_bare_alias_is_refused(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_t2i_model(lake, name=SDXL, n_prompts=3, modules=(MID, "up_blocks.0.attentions.0"))
    # The sd15 model's family is only in its samples table's attrs (not its activation tables').
    write_t2i_model(lake, name="dmd2-sd15-1step", family="sd15", n_prompts=3, modules=(MID, "up_blocks.1.attentions.0"),
                    timesteps=(999,), sigmas=(14.6,), seed=1, family_in_activations=False)
    opened = open_lake(lake)
    assert t2i_family(opened, "dmd2-sd15-1step") == "sd15" and t2i_family(opened, SDXL) == "sdxl"
    assert key_of(lake, "dmd2-sd15-1step.up1.attn0")[0].layer == "dmd2-sd15-1step.up_blocks.1.attentions.0"
    assert key_of(lake, f"{SDXL}.up0.attn0")[0].layer == f"{SDXL}.up_blocks.0.attentions.0"
    assert key_of(lake, "up1.attn0")[0].layer == "dmd2-sd15-1step.up_blocks.1.attentions.0"
    assert describe_layer(opened, "dmd2-sd15-1step.up_blocks.1.attentions.0") == "dmd2-sd15-1step.up_blocks.1.attentions.0 (dmd2-sd15-1step.up1.attn0)"
    with pytest.raises(AnalysisError, match=r"layer 'mid' is a site of several text-to-image models; name one: dmd2-sd15-1step.mid, dmd2-sdxl-4step.mid$"):
        key_of(lake, "mid")


def test_timestep_names_a_step_of_t2i_tables_only(t2i_lake: Path, tmp_path: Path) -> None:
    key, notes = key_of(t2i_lake, f"{SDXL}.mid", timestep=749)
    assert key.sigma == float(np.float32(SDXL_SIGMAS[1])) and notes[-1] == "--timestep 749 = sigma 3.33078"
    assert timestep_of_sigma(open_lake(t2i_lake), key.layer, key.sigma) == 749
    with pytest.raises(AnalysisError, match=rf"activations/{SDXL}.{MID} has no timestep 500; it has: 999, 749, 499, 249$"):
        key_of(t2i_lake, f"{SDXL}.mid", timestep=500)
    with pytest.raises(AnalysisError, match="give --sigma or --timestep, not both"):
        key_of(t2i_lake, f"{SDXL}.mid", 1.0, 499)
    imagenet = build_lake(tmp_path / "imagenet", synthetic_table(n_real=20, n_generated=20, nan_rows=0))
    with pytest.raises(AnalysisError, match=r"--timestep applies to text-to-image tables; activations/enc.8x8_block2 is indexed by "
                       r"sigma only \(use --sigma: 0.5, 2\)$"):
        key_of(imagenet, "bottleneck", timestep=999)


def test_sigmas_resolve_by_their_printed_form_and_defaults_name_the_timestep(t2i_lake: Path) -> None:
    # Keys and `list` print sigmas with 6 digits; the printed value finds the stored float32 sigma.
    key, _ = key_of(t2i_lake, f"{SDXL}.mid", 14.6146)
    assert key.sigma == float(np.float32(SDXL_SIGMAS[0])) and key.name == f"{SDXL}.{MID}@sigma14.6146"
    key, notes = key_of(t2i_lake, f"{SDXL}.mid")
    assert notes[-1] == ("--sigma not given; using 14.6146 = timestep 999 (the first of 14.6146 (timestep 999), "
                         "3.33078 (timestep 749), 1 (timestep 499), 0.29118 (timestep 249))")
    with pytest.raises(AnalysisError, match=r"has no sigma 2; it has: 14.6146 \(timestep 999\), 3.33078 \(timestep 749\)"):
        key_of(t2i_lake, f"{SDXL}.mid", 2.0)


def test_imagenet_keys_resolve_as_before(tmp_path: Path) -> None:
    lake = build_lake(tmp_path / "imagenet", synthetic_table(n_real=20, n_generated=20, nan_rows=0))
    assert key_of(lake, "bottleneck", 2.0) == (key_of(lake, "enc.8x8_block2", 2.0)[0], ["layer bottleneck = enc.8x8_block2"])
    assert key_of(lake, None)[1] == ["--layer not given; using enc.8x8_block2", "--sigma not given; using 0.5 (the first of 0.5, 2)"]
    with pytest.raises(AnalysisError, match=r"no activations for layer 'no.such_layer'; the lake has: enc.8x8_block2$"):
        key_of(lake, "no.such_layer")


def test_list_names_t2i_tables_with_their_site_and_timesteps(t2i_lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--lake", str(t2i_lake), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    mid = next(t for t in listing["activations"] if t["layer"] == f"{SDXL}.{MID}")
    assert mid == {"layer": f"{SDXL}.{MID}", "sigmas": ["14.6146", "3.33078", "1", "0.29118"], "rows": 18, "model": SDXL,
                   "site": f"{SDXL}.mid", "timesteps": [999, 749, 499, 249]}
    assert listing["t2i_models"] == [{"name": SDXL, "family": "sdxl", "timesteps": [999, 749, 499, 249], "samples": 18, "prompts": 6,
                                      "layers": [f"{SDXL}.{DOWN}", f"{SDXL}.{MID}"]}]
    assert main(["list", "--lake", str(t2i_lake)]) == 0
    printed = capsys.readouterr().out
    assert f"{SDXL}.mid " in printed and "999, 749, 499, 249" in printed and "text-to-image models" in printed


def test_errors_name_the_flag_and_leave_the_lake_unchanged(t2i_lake: Path) -> None:
    before = tree_digest(t2i_lake)
    result = run_cli("analysis", "pca", "--lake", str(t2i_lake), "--layer", f"{SDXL}.nope")
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: {t2i_lake}: no activations for layer '{SDXL}.nope'; the lake has: {SDXL}.{DOWN} ({SDXL}.down2.attn1), "
        f"{SDXL}.{MID} ({SDXL}.mid)"]
    result = run_cli("analysis", "trajectory", "--lake", str(t2i_lake), "--layer", f"{SDXL}.nope")
    assert result.returncode == 2 and "no activations for layer" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("analysis", "umap", "--lake", str(t2i_lake), "--layer", f"{SDXL}.mid", "--sigma", "1", "--timestep", "999")
    assert result.returncode == 2 and "not allowed with argument" in result.stderr
    result = run_cli("analysis", "knn", "--lake", str(t2i_lake), "--layer", f"{SDXL}.mid", "--timestep", "-1")
    assert result.returncode == 2 and "argument --timestep: '-1' must not be negative" in result.stderr
    assert tree_digest(t2i_lake) == before
    help_text = run_cli("analysis", "run", "--help").stdout
    assert "--timestep" in help_text and "--clusters" in help_text and "site alias" in help_text


def test_run_on_a_t2i_layer_clusters_maps_prompts_and_skips_compare_with_a_reason(t2i_lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["run", "--lake", str(t2i_lake), "--layer", f"{SDXL}.mid", "--timestep", "499", "--pca-dim", "6", "--no-progress", "--json"]
    assert main(args) == 0
    captured = capsys.readouterr()
    outcomes = json.loads(captured.out)
    key = f"{SDXL}.{MID}@sigma1"
    assert [(o["analysis"], o["key"]) for o in outcomes] == [
        ("pca", key), ("umap", key), ("umap", key), ("knn", key), ("clusters", key), ("prompts", SDXL)]
    assert not any(o["reused"] for o in outcomes)
    assert (f"skipping compare: {key} holds only generated samples (a text-to-image model's table: every sample is generated, "
            "nothing real to compare with)") in captured.err.splitlines()
    assert f"layer {SDXL}.mid = {SDXL}.{MID} (site alias of sdxl)" in captured.err
    lake = open_lake(t2i_lake)
    assert lake.result_attrs("clusters", key)["n_clusters"] == 8 and lake.result_attrs("prompts", SDXL)["n_clusters"] == 6
    # The same again is all reused; the plain (non-JSON) output prints the table without a compare section.
    assert main(args[:-1]) == 0
    printed = capsys.readouterr().out
    assert printed.count("reused") == 7 and "computed" not in printed and "overall" not in printed
    # Queries take the same layer and timestep.
    sample = lake.column(f"analysis/pca/{key}", "sample_id")[0]
    assert main(["query", "--lake", str(t2i_lake), "--layer", f"{SDXL}.mid", "--timestep", "499", "--sample-id", sample, "--k", "2", "--json"]) == 0
    assert [n["rank"] for n in json.loads(capsys.readouterr().out)] == [1, 2]


def test_end_to_end_on_a_lake_built_by_the_generate_t2i_job(tmp_path: Path) -> None:
    """The tiny SDXL base and DMD2 UNet through `python -m ingest generate-t2i`, then `python -m analysis` on its lake."""
    from models.t2i import build_tiny_base, save_tiny_dmd2_unet

    base = build_tiny_base(tmp_path / "base", "sdxl", size=32)
    unet = save_tiny_dmd2_unet(base, tmp_path / "unet.bin")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a photo of a cat\na photo of a dog\nthe sea at night\n")
    lake = tmp_path / "lake"
    run_cli("ingest", "generate-t2i", "--lake", str(lake), "--base", str(base), "--checkpoint", str(unet), "--prompts", str(prompts),
            "--samples-per-prompt", "4", "--height", "32", "--width", "32", "--layers", "mid", "--device", "cpu", "--no-progress",
            check=True, timeout=900)
    layer = f"{SDXL}.{MID}"
    assert open_lake(lake).activation_layers() == [layer]

    result = run_cli("analysis", "run", "--lake", str(lake), "--layer", f"{SDXL}.mid", "--timestep", "749", "--json", check=True)
    outcomes = json.loads(result.stdout)
    assert [o["analysis"] for o in outcomes] == ["pca", "umap", "umap", "knn", "clusters", "prompts"]
    assert "skipping compare:" in result.stderr and "--timestep 749 = sigma" in result.stderr
    opened = open_lake(lake)
    key = outcomes[0]["key"]
    assert key.startswith(f"{layer}@sigma") and opened.result_attrs("pca", key)["sigma"] == opened.activation_sigmas(layer)[1]
    # Clusters: one per sample, rows as the PCA table's, joined to the samples table (split t2i).
    clusters = opened.result("clusters", key)
    assert list(clusters["sample_id"].values) == list(opened.result("pca", key)["sample_id"].values)
    assert len(clusters["sample_id"]) == 12 and set(clusters["split"].values) == {"t2i"} and (clusters["sample_row"].values >= 0).all()
    assert set(clusters["cluster"].values.tolist()) <= set(range(8))
    # Prompts: one row per prompt of t2i/<name>/prompts, in its order, each its own cluster (3 prompts, k = 3).
    stored = opened.t2i_prompts(SDXL)
    clustered = opened.result("prompts", SDXL)
    assert list(clustered["prompt_id"].values) == list(stored["prompt_id"].values)
    assert sorted(clustered["prompt"].values.tolist()) == ["a photo of a cat", "a photo of a dog", "the sea at night"]
    assert sorted(clustered["cluster"].values.tolist()) == [0, 1, 2] and clustered.attrs["map_method"] == "pca"

    again = run_cli("analysis", "prompts", "--lake", str(lake), "--json", check=True)
    assert [o["reused"] for o in json.loads(again.stdout)] == [True]


def test_residual_update_tables_take_the_alias_with_their_suffix(t2i_lake: Path) -> None:
    from lake import LakeWriter, Provenance
    from lake.layout import LayerShape, t2i_activations_spec

    sample_ids = open_lake(t2i_lake).column(f"activations/{SDXL}.{MID}", "sample_id")
    n = len(sample_ids)
    spec = t2i_activations_spec(SDXL, MID, LayerShape(4, 1, 1), (999, 749, 499, 249), SDXL_SIGMAS, False, {"family": "sdxl"}, residual=True)
    with LakeWriter.open(t2i_lake, Provenance(job="test residual"), create=False) as writer:
        writer.table(spec).append({"mean": np.random.default_rng(0).normal(size=(n, 4, 4)).astype(np.float32), "probed": np.ones((n, 4), bool),
                                   "sample_id": sample_ids, "source": np.full(n, "generated", dtype=object), "class_id": np.full(n, -1, np.int16)})
        writer.commit()
    key, notes = key_of(t2i_lake, f"{SDXL}.mid+update", timestep=249)
    assert key.layer == f"{SDXL}.{MID}+update" and key.sigma == float(np.float32(SDXL_SIGMAS[3]))
    assert notes[0] == f"layer {SDXL}.mid+update = {SDXL}.{MID}+update (site alias of sdxl)"
    assert key_of(t2i_lake, f"{SDXL}.mid", 1.0)[0].layer == f"{SDXL}.{MID}"  # the plain alias still means the block output
    assert describe_layer(open_lake(t2i_lake), f"{SDXL}.{MID}+update") == f"{SDXL}.{MID}+update ({SDXL}.mid+update)"


def test_run_without_a_prompts_table_skips_prompts_with_a_note(tmp_path: Path) -> None:
    from analysis import RunConfig, run_all

    lake = tmp_path / "lake"
    write_t2i_model(lake, name=SDXL, n_prompts=4, samples_per_prompt=3, modules=(MID,), write_prompts=False)
    lines: list[str] = []
    outcomes = run_all(lake, f"{SDXL}.mid", None, RunConfig(pca_dim=4, clusters=3), log=lines.append, progress=False, timestep=999)
    assert [o.analysis for o in outcomes] == ["pca", "umap", "umap", "knn", "clusters"]
    assert f"skipping prompts: model {SDXL} has no prompts in t2i/{SDXL}/prompts" in lines
    assert open_lake(lake).result_attrs("clusters", outcomes[-1].key)["n_clusters"] == 3
