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


def stored_attrs(lake: Path, group: str) -> dict:
    from lake import open_lake

    return dict(open_lake(lake).root[group].attrs)


def test_run_exact_below_reaches_the_knn_graph(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["run", "--lake", str(lake), "--layer", "bottleneck", "--sigma", "2", "--no-progress", "--json", "--pca-dim", "6"]
    assert main([*args, "--exact-below", "50"]) == 0  # fewer than the table's ~390 rows
    capsys.readouterr()
    knn = stored_attrs(lake, f"analysis/knn/{KEY}")
    assert knn["n_rows"] > 50 and knn["method"] == "nndescent" and knn["parameters"]["exact_below"] == 50
    assert main([*args, "--exact-below", "1000"]) == 0  # more than the table's rows
    outcomes = {o["analysis"]: o["reused"] for o in json.loads(capsys.readouterr().out)}
    assert outcomes["pca"] and outcomes["umap"] and not outcomes["knn"]
    knn = stored_attrs(lake, f"analysis/knn/{KEY}")
    assert knn["method"] == "exact" and knn["recall_estimate"] == 1.0 and knn["parameters"]["exact_below"] == 1000
    assert stored_attrs(lake, f"analysis/compare/{KEY}")["parameters"]["exact_below"] == 1000


# Flags of `run` that steer how it runs or prints rather than what a step computes;
# each is checked on its own below.
BEHAVIOUR_FLAGS = {"help", "lake", "layer", "sigma", "timestep", "scheduler", "force", "no_progress", "json", "max_classes"}
# A non-default value for every other flag of `run`: (command-line words, value the step stores).
NON_DEFAULT = {
    "n_neighbors": (["--n-neighbors", "7"], 7),
    "min_dist": (["--min-dist", "0.25"], 0.25),
    "metric": (["--metric", "manhattan"], "manhattan"),
    "seed": (["--seed", "3"], 3),
    "fit_size": (["--fit-size", "100"], 100),
    "full_fit": (["--full-fit"], True),
    "pca_dim": (["--pca-dim", "6"], 6),
    "k": (["--k", "4"], 4),
    "exact": (["--exact"], True),
    "exact_below": (["--exact-below", "50"], 50),
    "compare_k": (["--compare-k", "3"], 3),
    "max_per_set": (["--max-per-set", "60"], 60),
    "clusters": (["--clusters", "3"], 3),
}
# Where a step stores a flag under another name (compare's own `--k` is the run's `--compare-k`).
STORED_AS = {("compare", "compare_k"): "k"}


def flag_dests(parser) -> set[str]:
    return {action.dest for action in parser._actions}


def test_every_run_flag_reaches_every_step_whose_command_has_it(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from analysis.cli import build_parser

    [subparsers] = [a for a in build_parser()._actions if a.dest == "command"]
    commands = subparsers.choices
    run_flags = flag_dests(commands["run"])
    assert run_flags - BEHAVIOUR_FLAGS == set(NON_DEFAULT), "a new `run` flag needs a value in NON_DEFAULT"
    words = [w for dest in NON_DEFAULT for w in NON_DEFAULT[dest][0]]
    common = ["--lake", str(lake), "--layer", "bottleneck", "--sigma", "2", "--no-progress"]
    assert main(["run", *common, *words, "--scheduler", "synchronous", "--json"]) == 0
    groups: dict[str, list[str]] = {}
    for outcome in json.loads(capsys.readouterr().out):
        assert not outcome["reused"]
        groups.setdefault(outcome["analysis"], []).append(outcome["group"])
    assert sorted(groups) == ["clusters", "compare", "knn", "pca", "umap"] and len(groups["umap"]) == 2
    checked = set()
    for step, paths in groups.items():
        concerned = (run_flags & flag_dests(commands[step])) - BEHAVIOUR_FLAGS
        assert concerned, step
        for path in paths:
            parameters = stored_attrs(lake, path)["parameters"]
            for dest in concerned:
                stored = STORED_AS.get((step, dest), dest)
                assert parameters[stored] == NON_DEFAULT[dest][1], f"run --{dest.replace('_', '-')} did not reach {step} ({path})"
                checked.add(dest)
    assert checked == set(NON_DEFAULT)  # every flag concerns some step, and got there
    assert stored_attrs(lake, f"analysis/pca/{KEY}")["scheduler"] == "local synchronous"

    # The same flags again: everything is reused; --max-classes cuts the compare table it prints.
    assert main(["run", *common, *words, "--max-classes", "1"]) == 0
    printed = capsys.readouterr().out
    assert "computed" not in printed and printed.count("reused") == 7 and "overall" in printed  # header + 6 steps
    assert "... 3 more classes" in printed  # 4 classes in the table, 1 printed
    # --force recomputes every step.
    assert main(["run", *common, *words, "--force", "--json"]) == 0
    assert not any(o["reused"] for o in json.loads(capsys.readouterr().out))
