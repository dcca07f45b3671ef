"""A lake made by an earlier main (commit 8dd3ecd, tests/fixtures/README.md) still works.

Opened and read through the typed API, its analyses are reused bit for bit (not recomputed),
its ingest jobs resume without adding a row, and the explorer shows it without an error
(tests/explorer/test_legacy_explorer.py). The `legacy_lake` fixture is in tests/conftest.py.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from tests.conftest import run_cli, tree_digest

CLASSES = "281,967,657,670"


def data_digest(lake: Path) -> str:
    """Every file's name and bytes except the job records (provenance), the model registry (which the next
    writing job fills in for an old lake) and the consolidated root metadata."""
    digest = hashlib.sha256()
    for file in sorted(p for p in lake.rglob("*") if p.is_file()):
        relative = file.relative_to(lake)
        if relative.parts[0] in ("provenance", "models") or str(relative) in ("zarr.json", ".dmd2viz.lock"):
            continue
        digest.update(str(relative).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def test_the_old_lake_reads_through_the_typed_api(legacy_lake: Path) -> None:
    from lake import open_lake
    from lake.layout import parse_sample_id

    lake = open_lake(legacy_lake)
    assert lake.num_samples == 24 + 24 + 4 + 2 + 12
    assert lake.models() == []  # made before the model registry: its one ImageNet model owns the unprefixed groups
    assert lake.activation_layers() == ["dmd2-sdxl-4step.mid_block.attentions.0", "enc.8x8_block2"]
    assert lake.activation_sigmas("enc.8x8_block2") == [2.0, 10.0]
    kinds = sorted({parse_sample_id(str(i)).kind for i in lake.sample_ids()})
    assert kinds == ["edit", "gen", "in64", "t2i"]
    assert lake.t2i_models() == ["dmd2-sdxl-4step"]
    assert lake.lineage().sizes["sample"] == 2


def test_analyses_of_the_old_lake_are_reused_bit_for_bit(legacy_lake: Path) -> None:
    before = tree_digest(legacy_lake)
    for args in (("--layer", "bottleneck", "--sigma", "2"), ("--layer", "dmd2-sdxl-4step.mid", "--timestep", "499")):
        out = run_cli("analysis", "run", "--lake", str(legacy_lake), *args, check=True).stdout
        assert "reused" in out and "computed" not in out, out
    out = run_cli("analysis", "trajectory", "--lake", str(legacy_lake), "--layer", "bottleneck", check=True).stdout
    assert "reused" in out and "computed" not in out, out
    assert tree_digest(legacy_lake) == before


def test_ingest_jobs_on_the_old_lake_resume_without_adding_rows(legacy_lake: Path, tmp_path: Path) -> None:
    legacy_lake = Path(shutil.copytree(legacy_lake, tmp_path / "legacy"))  # it gains a registry: the shared copy stays old
    before = data_digest(legacy_lake)
    run_cli("ingest", "generate", "--lake", str(legacy_lake), "--preset", "tiny", "--num-samples", "24", "--seed", "0",
            "--samples-per-class", "6", "--classes", CLASSES, "--layers", "bottleneck", "--no-progress", check=True)
    run_cli("ingest", "activations", "--lake", str(legacy_lake), "--preset", "tiny", "--layers", "bottleneck",
            "--sigmas", "2,10", "--source", "all", "--no-progress", check=True)
    assert data_digest(legacy_lake) == before
    from lake import open_lake

    # The one model that made its unprefixed tables is now registered as the lake's first, named after its preset.
    assert [(m.name, m.model_id, m.weights) for m in open_lake(legacy_lake).models()] == [("tiny", "tiny-random-seed0", "random")]
