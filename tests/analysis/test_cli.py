"""`python -m analysis`: the commands end to end, JSON output, friendly one-line errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.cli import main
from tests.conftest import run_cli, tree_digest

KEY = "enc.8x8_block2@sigma2"


def test_run_then_list_query_and_compare(lake: Path, table, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--lake", str(lake), "--layer", "bottleneck", "--sigma", "2", "--no-progress"]
    assert main(["run", *args, "--pca-dim", "8", "--json"]) == 0
    captured = capsys.readouterr()
    outcomes = json.loads(captured.out)
    assert [o["analysis"] for o in outcomes] == ["pca", "umap", "umap", "knn", "compare"]
    assert not any(o["reused"] for o in outcomes)
    assert "layer bottleneck = enc.8x8_block2" in captured.err
    groups = {o["group"] for o in outcomes}
    assert f"analysis/embeddings/{KEY}/umap3d-n15-d0.1-euclidean-s42-pca8" in groups

    assert main(["run", *args, "--pca-dim", "8", "--json"]) == 0
    assert all(o["reused"] for o in json.loads(capsys.readouterr().out))

    assert main(["list", "--lake", str(lake), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["activations"] == [{"layer": "enc.8x8_block2", "sigmas": ["0.5", "2"], "rows": len(table.sample_ids)}]
    kinds = sorted(r["kind"] for r in listing["analyses"])
    assert kinds == ["compare", "knn", "pca", "umap", "umap"] and not any(r.get("stale") for r in listing["analyses"])

    target = str(table.sample_ids[5])
    assert main(["query", "--lake", str(lake), "--layer", "bottleneck", "--sigma", "2", "--sample-id", target, "--k", "3", "--json"]) == 0
    neighbours = json.loads(capsys.readouterr().out)
    assert [n["rank"] for n in neighbours] == [1, 2, 3] and all(n["sample_id"] != target for n in neighbours)

    assert main(["compare", *args, "--pca-dim", "8"]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[1].split()[:1] == ["scope"] and "overall" in printed and "1: goldfish" in printed

    # A new PCA makes the derived results stale until they are recomputed.
    assert main(["pca", *args, "--pca-dim", "8", "--force"]) == 0
    capsys.readouterr()
    assert main(["list", "--lake", str(lake), "--json"]) == 0
    stale = {r["kind"]: r.get("stale") for r in json.loads(capsys.readouterr().out)["analyses"]}
    assert stale == {"pca": None, "umap": True, "knn": True, "compare": True}


def test_errors_are_one_line_exit_2_and_leave_the_lake_unchanged(lake: Path) -> None:
    before = tree_digest(lake)
    result = run_cli("analysis", "pca", "--lake", str(lake), "--layer", "no.such_layer", "--sigma", "2")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {lake}: no activations for layer 'no.such_layer'; the lake has: enc.8x8_block2"
    ]
    result = run_cli("analysis", "knn", "--lake", str(lake), "--sigma", "3")
    assert result.returncode == 2 and "has no sigma 3; it has: 0.5, 2" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("analysis", "list", "--lake", str(lake.parent / "missing"))
    assert result.returncode == 2 and "no lake here" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("analysis", "umap", "--lake", str(lake), "--components", "4")
    assert result.returncode == 2 and "invalid choice" in result.stderr
    result = run_cli("analysis", "umap", "--lake", str(lake), "--metric", "nope")
    assert result.returncode == 2 and "--metric 'nope': not a UMAP metric" in result.stderr
    assert tree_digest(lake) == before


def test_help_explains_every_command() -> None:
    result = run_cli("analysis", "--help")
    assert result.returncode == 0
    for command in ("pca", "umap", "knn", "compare", "run", "query", "list"):
        assert command in result.stdout
    result = run_cli("analysis", "run", "--help")
    for flag in ("--scheduler", "--fit-size", "--full-fit", "--compare-k", "--exact", "--force", "--json"):
        assert flag in result.stdout
